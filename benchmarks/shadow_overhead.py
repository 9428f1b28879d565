"""Shadow mode's cost to the primary: the same open-loop load with shadow off, on, and on with a slow shadow.

    .venv/bin/python benchmarks/shadow_overhead.py [--rate 150] [--duration 15] [--rounds 2]

Three `sluice serve` configurations over one zero-latency primary upstream (benchmarks/zero_upstream.py):
  - off:         no shadow target;
  - on:          every request (sample rate 1) mirrored to a second zero-latency upstream;
  - slow shadow: every request mirrored to an upstream that answers after `--slow-s` seconds, with
                 `--slow-concurrency` mirrored calls allowed in flight (so the gateway holds hundreds of
                 open shadow connections while it serves the primaries).
For each, non-streaming and streaming chat at a fixed Poisson rate: client latency P50/P99 of the primary and
its difference from "off", the gateway's own overhead from its request log, and the shadow outcomes from
/metrics. Scenarios are interleaved over `--rounds`; the machine's load average is printed before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_overhead import BIN, ROOT, cpu_seconds, free_port, open_loop, overhead_from_log, pct, wait_http

SCENARIOS = ("off", "on", "slow shadow")


# --- a slow upstream (separate process): answers every request after a fixed delay ------------------------

_BODY = (b'{"id":"chatcmpl-slow","object":"chat.completion","created":0,"model":"slow","choices":[{"index":0,'
         b'"message":{"role":"assistant","content":"ok ok ok"},"finish_reason":"stop"}],'
         b'"usage":{"prompt_tokens":8,"completion_tokens":3,"total_tokens":11}}')
_RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: " + str(len(_BODY)).encode()
             + b"\r\n\r\n" + _BODY)


class _SlowUpstream(asyncio.Protocol):
    delay_s = 1.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at)
                length = int(head[at + 15:stop if stop > 0 else len(head)].strip())
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            asyncio.get_running_loop().call_later(self.delay_s, self._answer)

    def _answer(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(_RESPONSE)  # type: ignore[attr-defined]


async def _serve_slow(port: int, delay_s: float) -> None:
    _SlowUpstream.delay_s = delay_s
    server = await asyncio.get_running_loop().create_server(_SlowUpstream, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


# --- the benchmark -----------------------------------------------------------------------------------------

def write_config(path: Path, db: Path, primary_port: int, shadow_port: int | None, concurrency: int,
                 timeout_s: float) -> None:
    shadow = ""
    if shadow_port is not None:
        shadow = (f"\n    rollout: {{shadow: [{{backend: shadow, model: bench}}], shadow_sample_rate: 1.0, "
                  f"shadow_max_concurrency: {concurrency}}}")
    path.write_text(
        f"store: {{url: 'sqlite:///{db}', log_bodies: redacted}}\n"
        f"shadow: {{timeout_s: {timeout_s}}}\n"
        "backends:\n"
        f"  zero: {{type: openai, base_url: 'http://127.0.0.1:{primary_port}/v1'}}\n"
        + (f"  shadow: {{type: openai, base_url: 'http://127.0.0.1:{shadow_port}/v1'}}\n" if shadow_port else "")
        + f"models:\n  bench:\n    targets: [{{backend: zero}}]{shadow}\n")


def shadow_outcomes(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "sluice_shadow_requests_total":
                out[sample.labels["outcome"]] = out.get(sample.labels["outcome"], 0) + sample.value
    return out


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=150.0, help="open-loop requests per second")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per open-loop run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions of every scenario")
    parser.add_argument("--modes", default="non-stream,stream", help="comma-separated: non-stream, stream")
    parser.add_argument("--slow-s", type=float, default=2.0, help="the slow shadow's answer delay")
    parser.add_argument("--slow-concurrency", type=int, default=1024, help="shadow_max_concurrency when slow")
    parser.add_argument("--serve-slow", nargs=2, metavar=("PORT", "DELAY_S"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_slow:
        import uvloop

        uvloop.run(_serve_slow(int(args.serve_slow[0]), float(args.serve_slow[1])))
        return

    workdir = Path(tempfile.mkdtemp(prefix="sluice-shadow-bench-"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ports = {"primary": free_port(), "fast": free_port(), "slow": free_port()}
    upstreams = [
        subprocess.Popen([sys.executable, str(ROOT / "benchmarks/zero_upstream.py"), str(ports["primary"]), "16"],
                         env=env),
        subprocess.Popen([sys.executable, str(ROOT / "benchmarks/zero_upstream.py"), str(ports["fast"]), "16"],
                         env=env),
        subprocess.Popen([sys.executable, __file__, "--serve-slow", str(ports["slow"]), str(args.slow_s)], env=env),
    ]
    modes = [mode == "stream" for mode in args.modes.split(",")]
    results: dict[tuple[str, bool], list[float]] = {}
    overheads: dict[tuple[str, bool], list[float]] = {}
    outcomes: dict[str, dict[str, float]] = {}
    cpu_us: dict[str, list[float]] = {}
    errors = 0
    print(f"before: {load()}")
    print(f"open loop: {args.rate:g} req/s for {args.duration:g} s per mode, {args.rounds} round(s), "
          f"slow shadow answers after {args.slow_s:g} s\n")
    try:
        for round_index in range(args.rounds):
            for scenario in SCENARIOS:
                shadow_port = {"off": None, "on": ports["fast"], "slow shadow": ports["slow"]}[scenario]
                concurrency = args.slow_concurrency if scenario == "slow shadow" else 64
                db = workdir / f"{scenario.replace(' ', '-')}-{round_index}.db"
                config = workdir / "gateway.yaml"
                write_config(config, db, ports["primary"], shadow_port, concurrency, args.slow_s + 5)
                gw_port = free_port()
                gateway = subprocess.Popen([str(BIN / "sluice"), "serve", "--config", str(config), "--port",
                                            str(gw_port), "--log-level", "warning"], env=env,
                                           stdout=subprocess.DEVNULL)
                try:
                    wait_http(f"http://127.0.0.1:{gw_port}/health/ready")
                    url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
                    asyncio.run(open_loop(url, 50, 1, False))  # warm-up
                    cpu_before, served = cpu_seconds(gateway.pid), 0
                    for stream in modes:
                        since = time.time()
                        latencies, failed = asyncio.run(open_loop(url, args.rate, args.duration, stream))
                        errors += failed
                        served += len(latencies)
                        results.setdefault((scenario, stream), []).extend(latencies)
                        time.sleep(1.0)  # the log writer flushes every 0.25 s
                        overheads.setdefault((scenario, stream), []).extend(overhead_from_log(db, stream, since))
                    cpu_us.setdefault(scenario, []).append(
                        (cpu_seconds(gateway.pid) - cpu_before) / max(1, served) * 1e6)
                    for name, value in shadow_outcomes(gw_port).items():
                        outcomes.setdefault(scenario, {})[name] = outcomes.get(scenario, {}).get(name, 0) + value
                finally:
                    gateway.terminate()
                    gateway.wait(timeout=60)
                print(f"round {round_index + 1}: {scenario} done ({load()})")
    finally:
        for proc in upstreams:
            proc.terminate()
        for proc in upstreams:
            proc.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n{'scenario':<13}{'mode':<11}{'P50':>8}{'P99':>8}{'Δ P50':>8}{'Δ P99':>8}{'ovh P50':>9}{'ovh P99':>9}"
          f"{'requests':>10}")
    for stream in modes:
        base = results[("off", stream)]
        for scenario in SCENARIOS:
            values = results[(scenario, stream)]
            own = overheads[(scenario, stream)]
            print(f"{scenario:<13}{'stream' if stream else 'non-stream':<11}{pct(values, 50):>8.2f}"
                  f"{pct(values, 99):>8.2f}{pct(values, 50) - pct(base, 50):>+8.2f}"
                  f"{pct(values, 99) - pct(base, 99):>+8.2f}{pct(own, 50):>9.3f}{pct(own, 99):>9.3f}"
                  f"{len(values):>10}")
    print("(ms: client-side latency of the primary; Δ against shadow off; ovh = the gateway's own time from its "
          "request log)")
    for scenario in SCENARIOS:
        counts = ", ".join(f"{name} {int(value)}" for name, value in sorted(outcomes.get(scenario, {}).items()))
        cpu = sum(cpu_us[scenario]) / len(cpu_us[scenario])
        print(f"{scenario}: gateway CPU {cpu:,.0f} µs per primary request; shadow outcomes: {counts or '-'}")
    print(f"client errors: {errors}")
    print(f"after: {load()}")


if __name__ == "__main__":
    main()
