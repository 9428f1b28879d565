"""Gateway overhead: the same load sent direct to a zero-latency upstream and through `sluice serve`.

    python benchmarks/gateway_overhead.py [--rate 200] [--duration 10] [--wrk-seconds 10] [--guards [rules|default]]

Reports, for non-streaming and streaming chat at a fixed open-loop request rate:
  - client-side latency P50/P99 direct and through the gateway, and their difference;
  - the gateway's own overhead (E2E − upstream wait − queue) from its request log, P50/P99/max;
and the most requests/s one gateway worker serves under `wrk` (closed loop, non-streaming).
The upstream is a raw-asyncio server (benchmarks/zero_upstream.py) so the gateway is what gets measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GUARDS = """safety:
  guards:
    words: {type: keyword, words: [bomb, nerve agent, pipe bomb, ricin, sarin, anthrax spores, detonator, napalm,
                                   thermite, ghost gun]}
    secrets: {type: regex, patterns: ['sk-[A-Za-z0-9]{20,}', 'AKIA[0-9A-Z]{16}', 'ghp_[A-Za-z0-9]{36}',
                                      'xox[baprs]-[A-Za-z0-9-]{10,}', '-----BEGIN (?:RSA )?PRIVATE KEY-----']}
"""
# The guard set docs/safety.md recommends to start with: PII masked both ways, injection heuristics on prompts,
# toxicity on prompts and answers (every 64 characters in streams).
DEFAULT_GUARDS = """safety:
  guards:
    pii: {type: pii}
    injection: {type: injection}
    toxicity: {type: toxicity}
"""
GUARD_SETS = {"rules": ("[words, secrets]", GUARDS), "default": ("[pii, injection, toxicity]", DEFAULT_GUARDS)}
BODY = {"model": "bench", "messages": [{"role": "user", "content": "Say ok sixteen times."}], "max_tokens": 16}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout_s: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status < 500:
                    return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def open_loop(url: str, rate: float, duration_s: float, stream: bool) -> tuple[list[float], int]:
    """Poisson arrivals at `rate`/s for `duration_s`; returns per-request latencies (s) and the error count."""
    rng = np.random.default_rng(0)
    body = orjson.dumps({**BODY, "stream": stream})
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            nonlocal errors
            start = time.perf_counter()
            try:
                async with session.post(url, data=body, headers={"content-type": "application/json"}) as resp:
                    payload = await resp.read()
                    if resp.status != 200 or (stream and not payload.endswith(b"data: [DONE]\n\n")):
                        errors += 1
                        return
            except aiohttp.ClientError:
                errors += 1
                return
            latencies.append(time.perf_counter() - start)

        tasks = []
        begin = time.perf_counter()
        next_at = 0.0
        while next_at < duration_s:
            delay = begin + next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one()))
            next_at += rng.exponential(1 / rate)
        await asyncio.gather(*tasks)
    return latencies, errors


def pct(values: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000 if len(values) else float("nan")


def wrk(url: str, seconds: int, connections: int) -> float:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(f'wrk.method = "POST"\nwrk.body = [[{orjson.dumps(BODY).decode()}]]\n'
                      'wrk.headers["Content-Type"] = "application/json"\n')
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        print(f"  wrk saw {non2xx.group(1)} non-2xx responses")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def overhead_from_log(db: Path, stream: bool, since: float) -> list[float]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT overhead_s FROM request_log WHERE stream = ? AND created_at >= ? "
                            "AND status_code = 200", (stream, since)).fetchall()
    return [row[0] for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per open-loop run")
    parser.add_argument("--wrk-seconds", type=int, default=10, help="seconds of wrk (0 skips it)")
    parser.add_argument("--wrk-connections", type=int, default=32)
    parser.add_argument("--chunks", type=int, default=16, help="output chunks per streamed answer")
    parser.add_argument("--modes", default="non-stream,stream", help="comma-separated: non-stream, stream")
    parser.add_argument("--log-bodies", default="redacted", choices=["full", "redacted", "none"])
    parser.add_argument("--server-args", default="", help="extra `sluice serve` options, e.g. '--loop asyncio'")
    parser.add_argument("--guards", nargs="?", const="rules", choices=sorted(GUARD_SETS),
                        help="run the model with guards (docs/safety.md): `rules`, a keyword guard (10 words) and a "
                             "regex guard (5 patterns), both directions; `default`, pii + injection + toxicity")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="sluice-bench-"))
    up_port, gw_port = free_port(), free_port()
    db = workdir / "bench.db"
    config = workdir / "gateway.yaml"
    config.write_text(
        f"store: {{url: 'sqlite:///{db}', log_bodies: {args.log_bodies}}}\n"
        f"backends:\n  zero: {{type: openai, base_url: 'http://127.0.0.1:{up_port}/v1'}}\n"
        "models:\n  bench: {targets: [{backend: zero}]"
        + (f", guards: {GUARD_SETS[args.guards][0]}" if args.guards else "") + "}\n"
        + (GUARD_SETS[args.guards][1] if args.guards else ""))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    upstream = subprocess.Popen([sys.executable, str(ROOT / "benchmarks/zero_upstream.py"), str(up_port),
                                 str(args.chunks)], env=env)
    gateway = subprocess.Popen([str(BIN / "sluice"), "serve", "--config", str(config), "--port", str(gw_port),
                                "--log-level", "warning", *args.server_args.split()], env=env,
                               stdout=subprocess.DEVNULL)
    direct_url = f"http://127.0.0.1:{up_port}/v1/chat/completions"
    gateway_url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
    try:
        wait_http(f"http://127.0.0.1:{gw_port}/health/ready")
        asyncio.run(open_loop(gateway_url, 50, 1, False))  # warm-up
        print(f"open loop: {args.rate:g} req/s for {args.duration:g} s, {args.chunks} chunks per stream\n")
        print(f"{'mode':<11}{'direct P50':>11}{'P99':>8}{'gateway P50':>13}{'P99':>8}{'Δ P50':>8}{'Δ P99':>8}"
              f"{'overhead P50':>14}{'P99':>8}{'max':>8}{'CPU µs/req':>12}{'errors':>8}")
        for stream in [mode == "stream" for mode in args.modes.split(",")]:
            direct, direct_errors = asyncio.run(open_loop(direct_url, args.rate, args.duration, stream))
            since = time.time()
            cpu_before = cpu_seconds(gateway.pid)
            through, gw_errors = asyncio.run(open_loop(gateway_url, args.rate, args.duration, stream))
            time.sleep(1.0)  # the log writer flushes every 0.25 s
            cpu_per_request_us = (cpu_seconds(gateway.pid) - cpu_before) / max(1, len(through)) * 1e6
            own = overhead_from_log(db, stream, since)
            print(f"{'stream' if stream else 'non-stream':<11}{pct(direct, 50):>11.2f}{pct(direct, 99):>8.2f}"
                  f"{pct(through, 50):>13.2f}{pct(through, 99):>8.2f}"
                  f"{pct(through, 50) - pct(direct, 50):>8.2f}{pct(through, 99) - pct(direct, 99):>8.2f}"
                  f"{pct(own, 50):>14.3f}{pct(own, 99):>8.3f}{max(own) * 1000 if own else 0:>8.2f}"
                  f"{cpu_per_request_us:>12.0f}{direct_errors + gw_errors:>8}")
        print("(ms; overhead = the gateway's own time from its request log; CPU = gateway process CPU time per "
              "request, request log included)")
        if args.wrk_seconds and shutil.which("wrk"):
            direct_rps = wrk(direct_url, args.wrk_seconds, args.wrk_connections)
            gateway_rps = wrk(gateway_url, args.wrk_seconds, args.wrk_connections)
            print(f"\nwrk closed loop, {args.wrk_connections} connections, non-streaming: "
                  f"direct {direct_rps:,.0f} req/s, through one gateway worker {gateway_rps:,.0f} req/s")
    finally:
        for proc in (gateway, upstream):
            proc.terminate()
        for proc in (gateway, upstream):
            proc.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
