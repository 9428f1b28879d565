"""Memory soak: the gateway's resident memory (RSS) under a steady request stream, minute by minute.

    .venv/bin/python benchmarks/soak_rss.py                       # 10 minutes at 150 req/s, cost window 300 s
    .venv/bin/python benchmarks/soak_rss.py --minutes 4 --window-s 30 --overlay out/soak_rss_w300.json \\
        --plot out/soak_rss_compare.png                            # the same with a 30 s window, both drawn

What it measures. A self-hosted (GPU-hour priced) backend charges each request a share of the busy GPU time of
the trailing `pricing.gpu.window_s` (docs/cost.md, "Self-hosted: GPU-hours"), so the gateway keeps one
(finished at, weighted tokens) entry per finished request for that long (`sluice/cost/gpu_meter.py`). Under
constant load its memory should therefore grow for one window and then stay flat:
    extra memory ~ rate x window_s x bytes per entry.
This script shows that plateau. It writes a temporary config with one in-process `sim` backend (Llama-3.1-8B
on an H100, priced from the GPU catalog) and a SQLite request log in a temporary directory, starts
`sluice serve` on a free 127.0.0.1 port, waits for /health/ready, then sends an open-loop Poisson stream of
small non-streaming chat requests (max_tokens 8, no temperature, so the response cache does not apply) at
--rate for --minutes. Every --sample-s seconds it reads the gateway's VmRSS from /proc/PID/status. At the end
it prints a per-minute table (RSS, requests sent/ok/errors, latency, gateway CPU), the growth rate while the
window fills and over the last minutes, the bytes one window entry costs (measured in a fresh interpreter),
and saves a plot (RSS vs time, the window marked, the rate x window x bytes model drawn) and the raw
samples as JSON next to it. Everything talks to 127.0.0.1 only; the server is stopped at the end, on error
too. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
MIB = 1024 * 1024
PROMPT = "Name one colour of the rainbow, in one word."


# --- helpers ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """VmRSS of a process (Linux /proc), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sluice serve exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} was not ready after {timeout_s:g} s")


def slope_mib_per_min(t_s: np.ndarray, rss_mib: np.ndarray, lo: float, hi: float) -> float | None:
    """Least-squares growth (MiB/min) of the samples with lo <= t <= hi; None with fewer than 3."""
    pick = (t_s >= lo) & (t_s <= hi)
    if pick.sum() < 3:
        return None
    return float(np.polyfit(t_s[pick] / 60.0, rss_mib[pick], 1)[0])


def entry_bytes(n: int) -> float:
    """RSS per GPUMeter window entry, measured in a fresh interpreter (n overlapping requests, like real load)."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from sluice.cost.gpu_meter import GPUMeter\n"
        "def rss():\n"
        "    for l in Path('/proc/self/status').read_text().splitlines():\n"
        "        if l.startswith('VmRSS:'): return int(l.split()[1]) * 1024\n"
        "n = int(sys.argv[1]); m = GPUMeter(2.99, window_s=1e12); before = rss()\n"
        "for i in range(n):\n"
        "    t = i / 150.0\n"
        "    m.record(t, t + 0.1, (20 + i % 3) * 0.25 + 8)\n"
        "print((rss() - before) / n)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(n)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


# --- load and sampling ---------------------------------------------------------------------------------------


@dataclass
class Counters:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    dropped: int = 0  # not sent: --max-in-flight requests were already outstanding
    latencies: list[float] = field(default_factory=list)  # seconds, ok requests, since the last sample
    priced: int = 0  # ok answers with a non-zero x-sluice-cost-usd (the GPU-hour price applied)


@dataclass
class Sample:
    t_s: float
    rss_bytes: int
    sent: int
    ok: int
    errors: int
    dropped: int
    cpu_s: float
    p50_ms: float
    p99_ms: float


async def run_load(url: str, pid: int, args: argparse.Namespace) -> tuple[list[Sample], Counters, float]:
    """Open-loop Poisson arrivals at args.rate for args.minutes; RSS samples every args.sample_s."""
    duration = args.minutes * 60.0
    body = json.dumps({"model": "soak", "messages": [{"role": "user", "content": PROMPT}],
                       "max_tokens": args.max_tokens}).encode()
    headers = {"content-type": "application/json"}
    c = Counters()
    samples: list[Sample] = []
    in_flight: set[asyncio.Task[None]] = set()
    rng = np.random.default_rng(args.seed)
    timeout = aiohttp.ClientTimeout(total=args.request_timeout_s)
    max_lag = 0.0

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:

        async def one() -> None:
            start = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        c.errors += 1
                        return
                    if float(resp.headers.get("x-sluice-cost-usd", "0") or 0) > 0:
                        c.priced += 1
            except (aiohttp.ClientError, TimeoutError):
                c.errors += 1
                return
            c.ok += 1
            c.latencies.append(time.perf_counter() - start)

        begin = time.perf_counter()

        def take_sample() -> None:
            lat = np.asarray(c.latencies) * 1000 if c.latencies else np.asarray([np.nan])
            samples.append(Sample(time.perf_counter() - begin, rss_bytes(pid), c.sent, c.ok, c.errors, c.dropped,
                                  cpu_seconds(pid), float(np.percentile(lat, 50)), float(np.percentile(lat, 99))))
            c.latencies = []

        async def sampler() -> None:
            k = 1
            while True:
                await asyncio.sleep(max(0.0, begin + k * args.sample_s - time.perf_counter()))
                take_sample()
                k += 1

        take_sample()  # t = 0, before any load
        sampling = asyncio.ensure_future(sampler())
        next_at = 0.0
        try:
            while True:
                next_at += rng.exponential(1.0 / args.rate)
                if next_at >= duration:
                    break
                delay = begin + next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    max_lag = max(max_lag, -delay)
                if len(in_flight) >= args.max_in_flight:
                    c.dropped += 1
                    continue
                task = asyncio.ensure_future(one())
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                c.sent += 1
            await asyncio.sleep(max(0.0, begin + duration - time.perf_counter()))
            if in_flight:  # bounded: whatever is still running after the grace period is cancelled
                _, pending = await asyncio.wait(set(in_flight), timeout=args.request_timeout_s)
                for task in pending:
                    task.cancel()
        finally:
            sampling.cancel()
        if samples[-1].t_s < duration - 1:
            take_sample()
    return samples, c, max_lag


# --- report --------------------------------------------------------------------------------------------------


def report(samples: list[Sample], c: Counters, args: argparse.Namespace, per_entry: float | None,
           max_lag: float) -> dict[str, object]:
    t = np.array([s.t_s for s in samples])
    rss = np.array([s.rss_bytes for s in samples]) / MIB
    w = args.window_s
    print(f"\nsluice serve, sim backend (llama-3.1-8b on h100-sxm, GPU-hour priced), pricing.gpu.window_s = {w:g} s")
    print(f"open loop {args.rate:g} req/s (Poisson) for {args.minutes:g} min, max_tokens {args.max_tokens}, "
          f"RSS every {args.sample_s:g} s\n")
    print(f"{'min':>4}{'RSS MiB':>10}{'Δ MiB':>8}{'sent':>8}{'ok':>8}{'errors':>8}{'ok/s':>8}"
          f"{'P50 ms':>8}{'P99 ms':>8}{'gw CPU %':>10}")
    minutes = list(range(int(t[-1] / 60 + 0.01) + 1))  # a last sample a hair before the end still counts
    prev: Sample | None = None
    rows = []
    for m in minutes:
        i = int(np.argmin(np.abs(t - m * 60)))
        s = samples[i]
        if prev is None:
            print(f"{m:>4.0f}{s.rss_bytes / MIB:>10.1f}{'':>8}{'':>8}{'':>8}{'':>8}{'':>8}{'':>8}{'':>8}{'':>10}")
        else:
            span = s.t_s - prev.t_s
            window = [x for x in samples if prev.t_s < x.t_s <= s.t_s]
            p50 = float(np.nanmedian([x.p50_ms for x in window]))
            p99 = float(np.nanmax([x.p99_ms for x in window]))
            cpu = (s.cpu_s - prev.cpu_s) / span * 100
            print(f"{m:>4.0f}{s.rss_bytes / MIB:>10.1f}{(s.rss_bytes - prev.rss_bytes) / MIB:>+8.2f}"
                  f"{s.sent - prev.sent:>8}{s.ok - prev.ok:>8}{s.errors - prev.errors:>8}"
                  f"{(s.ok - prev.ok) / span:>8.1f}{p50:>8.1f}{p99:>8.1f}{cpu:>10.0f}")
        rows.append({"minute": m, "rss_mib": s.rss_bytes / MIB})
        prev = s
    total_s = samples[-1].t_s
    print(f"\ntotal: sent {c.sent} ({c.sent / total_s:.1f}/s), ok {c.ok} ({c.ok / total_s:.1f}/s), "
          f"errors {c.errors}, dropped {c.dropped}; GPU-priced answers {c.priced}/{c.ok}; "
          f"sender lag max {max_lag * 1000:.0f} ms")

    fill_lo = 60.0 if w >= 180 else 0.0  # skip the first minute's start-up allocations when the window allows
    fill = slope_mib_per_min(t, rss, fill_lo, w)
    tail_lo = max(w, total_s - args.tail_min * 60)
    tail = slope_mib_per_min(t, rss, tail_lo, total_s)
    plateau = float(rss[t >= tail_lo].mean()) if (t >= tail_lo).any() else None
    fmt = lambda v, unit: f"{v:+.2f} {unit}" if v is not None else "n/a (too few samples)"  # noqa: E731
    print(f"growth while the window fills ({fill_lo / 60:.1f}-{w / 60:.1f} min): {fmt(fill, 'MiB/min')}")
    print(f"growth after it is full ({tail_lo / 60:.1f}-{total_s / 60:.1f} min): {fmt(tail, 'MiB/min')}")
    if plateau is not None:
        print(f"plateau (mean RSS {tail_lo / 60:.1f}-{total_s / 60:.1f} min): {plateau:.1f} MiB; "
              f"start {rss[0]:.1f} MiB")
    achieved = c.ok / total_s
    if per_entry is not None:
        model = achieved * w * per_entry / MIB
        print(f"one window entry: {per_entry:.0f} bytes of RSS (GPUMeter, fresh interpreter); model: "
              f"{achieved:.1f} req/s x {w:g} s x {per_entry:.0f} B = {model:.2f} MiB held by the full window, "
              f"filling at {achieved * 60 * per_entry / MIB:.2f} MiB/min")
    return {"window_s": w, "rate": args.rate, "minutes": args.minutes, "achieved_ok_per_s": achieved,
            "entry_bytes": per_entry, "fill_mib_per_min": fill, "tail_mib_per_min": tail, "plateau_mib": plateau,
            "sent": c.sent, "ok": c.ok, "errors": c.errors, "dropped": c.dropped, "per_minute": rows,
            "samples": [s.__dict__ for s in samples]}


def plot(result: dict[str, object], path: Path, overlay: Path | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    runs = [result]
    if overlay is not None:
        runs.append(json.loads(overlay.read_text()))
    colours = ["tab:blue", "tab:orange"]
    for run, colour in zip(runs, colours, strict=False):
        samples = run["samples"]  # type: ignore[index]
        t = np.array([s["t_s"] for s in samples]) / 60
        rss = np.array([s["rss_bytes"] for s in samples]) / MIB
        w = float(run["window_s"])  # type: ignore[arg-type]
        ax.plot(t, rss, marker=".", color=colour,
                label=f"window_s {w:g} s, {float(run['achieved_ok_per_s']):.0f} req/s")  # type: ignore[arg-type]
        ax.axvline(w / 60, color=colour, linestyle=":", linewidth=1)
        ax.annotate(f"window fills ({w:g} s)", (w / 60, ax.get_ylim()[0]), xytext=(3, 5),
                    textcoords="offset points", color=colour, fontsize=8, rotation=90, va="bottom")
        after = t >= 59.0 / 60  # the model starts from the RSS at 1 min, past the start-up allocations
        if run.get("entry_bytes") and after.any():
            rate = float(run["achieved_ok_per_s"])  # type: ignore[arg-type]
            per = float(run["entry_bytes"])  # type: ignore[arg-type]
            held = rate * (np.minimum(t[after] * 60, w) - min(60.0, w)) * per / MIB
            ax.plot(t[after], rss[after][0] + held, color=colour, linestyle="--", linewidth=1, alpha=0.7,
                    label=f"model: + {rate:.0f} entries/s × {per:.0f} B until the window is full")
    ax.set_xlabel("minutes since load started")
    ax.set_ylabel("gateway RSS (MiB)")
    ax.set_title("sluice serve RSS under constant load (sim backend, GPU-hour pricing)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center right", bbox_to_anchor=(1.0, 0.65))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# --- main ----------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=150.0, help="open-loop requests per second (default 150)")
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to send load (default 10)")
    parser.add_argument("--sample-s", type=float, default=10.0, help="seconds between RSS samples (default 10)")
    parser.add_argument("--window-s", type=float, default=300.0,
                        help="pricing.gpu.window_s written to the config (default 300, the built-in default)")
    parser.add_argument("--tail-min", type=float, default=5.0,
                        help="growth 'after the window is full' is fitted over these last minutes (default 5)")
    parser.add_argument("--max-tokens", type=int, default=8, help="max_tokens of each request (default 8)")
    parser.add_argument("--max-in-flight", type=int, default=2000,
                        help="outstanding requests at most; arrivals beyond it are dropped and counted")
    parser.add_argument("--request-timeout-s", type=float, default=30.0, help="client timeout per request")
    parser.add_argument("--seed", type=int, default=0, help="seed of the Poisson arrivals")
    parser.add_argument("--plot", type=Path, default=Path("out/soak_rss.png"), help="PNG to write")
    parser.add_argument("--json", type=Path, default=None,
                        help="raw samples and summary (default: out/soak_rss_w<window>.json)")
    parser.add_argument("--overlay", type=Path, default=None,
                        help="a previous run's JSON to draw on the same plot (e.g. the window_s 30 run)")
    parser.add_argument("--entry-probe", type=int, default=200_000,
                        help="requests recorded into a GPUMeter to measure bytes per entry (0 skips it)")
    parser.add_argument("--replot", type=Path, default=None,
                        help="no run: redraw --plot from a saved JSON (with --overlay, if given)")
    args = parser.parse_args()
    if args.replot is not None:
        plot(json.loads(args.replot.read_text()), args.plot, args.overlay)
        print(f"wrote {args.plot}")
        return 0
    if not Path("/proc/self/status").exists():
        parser.error("needs Linux /proc to read the gateway's RSS")
    json_path = args.json or Path(f"out/soak_rss_w{args.window_s:g}.json")

    workdir = Path(tempfile.mkdtemp(prefix="sluice-soak-"))
    port = free_port()
    config = workdir / "soak.yaml"
    config.write_text(
        f"server: {{host: '{HOST}', port: {port}}}\n"
        f"store: {{url: 'sqlite:///{workdir / 'soak.db'}'}}\n"
        "backends:\n"
        "  gpu: {type: sim, model: llama-3.1-8b, gpu: h100-sxm, max_model_len: 8192}\n"
        "models:\n"
        "  soak: {targets: [{backend: gpu, model: llama-3.1-8b}]}\n"
        f"pricing: {{gpu: {{window_s: {args.window_s}}}}}\n")
    log_path = workdir / "serve.log"
    server: subprocess.Popen[bytes] | None = None
    try:
        per_entry = entry_bytes(args.entry_probe) if args.entry_probe > 0 else None
        with log_path.open("wb") as log:
            server = subprocess.Popen([str(BIN / "sluice"), "serve", "--config", str(config), "--host", HOST,
                                       "--port", str(port), "--log-level", "warning"],
                                      stdout=log, stderr=subprocess.STDOUT, env={**os.environ,
                                                                                 "PYTHONUNBUFFERED": "1"})
        base = f"http://{HOST}:{port}"
        wait_ready(f"{base}/health/ready", server, timeout_s=120)
        print(f"gateway pid {server.pid} ready on {base}; RSS {rss_bytes(server.pid) / MIB:.1f} MiB; "
              f"config {config}", flush=True)
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        samples, counters, max_lag = asyncio.run(run_load(f"{base}/v1/chat/completions", server.pid, args))
        if server.poll() is not None:
            raise RuntimeError(f"sluice serve exited with {server.returncode} during the run")
        result = report(samples, counters, args, per_entry, max_lag)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=1))
        plot(result, args.plot, args.overlay)
        print(f"\nwrote {args.plot} and {json_path}")
        return 0
    except BaseException:
        if log_path.exists():
            tail = log_path.read_text(errors="replace")[-3000:]
            print(f"--- last lines of the gateway log ---\n{tail}", file=sys.stderr)
        raise
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
