"""What virtual keys, rate limits and budgets add to a request: the admission call itself, and end to end.

    python benchmarks/keys_overhead.py [--calls 5000] [--requests 3000]

1. In-process: `KeyAdmission.authenticate + admit` (what the request waits for) and `settle` (what it does
   not wait for, run in the background), with the real pricing stage's estimate, for: an open gateway, a key
   with no limits, and a key with RPM + TPM + day/month/total budgets on `memory://` and on a loopback Redis.
2. End to end: `sluice serve` in front of a zero-latency upstream (benchmarks/zero_upstream.py), sequential
   requests, open gateway vs. the limited key on memory:// and Redis; the gateway's own time per request
   (`x-sluice-overhead-ms`) and the client's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
import uvloop

from sluice.backends import ChatCompletionRequest, Usage
from sluice.compose import AppState, build_state
from sluice.config import parse_config
from sluice.gateway import RequestContext
from sluice.store import create_engine, migrate

ROOT = Path(__file__).resolve().parent.parent
MASTER = "sk-bench-master"
BODY = {"model": "bench", "messages": [{"role": "system", "content": "You are terse."},
                                       {"role": "user", "content": "Say ok sixteen times, please."}],
        "max_tokens": 16}
LIMITED = {"name": "bench", "team": "perf", "models": ["bench*"], "rpm": 10**9, "tpm": 10**12,
           "budget_day_usd": 10**6, "budget_month_usd": 10**6, "budget_total_usd": 10**7}
PRICING = {"models": {"bench": {"input_usd_per_1m": 0.15, "output_usd_per_1m": 0.6}}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not on PATH (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                             "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000


def config(workdir: Path, name: str, upstream_port: int, state_url: str, master: bool) -> dict[str, Any]:
    return {"server": {"master_key": MASTER} if master else {},
            "store": {"url": f"sqlite:///{workdir / name}.db", "log_bodies": "none"},
            "state": {"url": state_url}, "pricing": PRICING,
            "backends": {"zero": {"type": "openai", "base_url": f"http://127.0.0.1:{upstream_port}/v1"}},
            "models": {"bench": {"targets": [{"backend": "zero"}]}}}


async def in_process(workdir: Path, redis_url: str, calls: int) -> None:
    print(f"1. the admission call in-process ({calls:,} sequential calls each; ms)")
    print(f"{'case':<34}{'check P50':>10}{'P99':>8}{'settle P50':>12}{'P99':>8}{'background P50':>16}{'P99':>8}")
    request = ChatCompletionRequest.model_validate(BODY)
    cases: list[tuple[str, str, bool, dict[str, Any] | None]] = [
        ("open gateway (no keys)", "memory://", False, None),
        ("key, no limits", "memory://", True, {"name": "plain"}),
        ("key, RPM+TPM+3 budgets, memory://", "memory://", True, LIMITED),
        ("key, RPM+TPM+3 budgets, Redis", redis_url, True, LIMITED),
    ]
    for index, (label, state_url, master, settings) in enumerate(cases):
        cfg = parse_config(config(workdir, f"inproc{index}", 9, state_url, master))
        await migrate(cfg.store.url)
        state: AppState = build_state(cfg)
        engine = create_engine(cfg.store.url)
        assert state.shared_state is not None and state.admission is not None
        admission = state.admission
        pricing = admission.pricing  # the gateway's pricing, as the composition root hands it to admission
        assert pricing is not None
        await state.shared_state.start()
        await admission.start(engine)
        token = ""
        if settings is not None:
            _, token = await admission.service.create({k: (tuple(v) if k == "models" else v)
                                                       for k, v in settings.items() if k != "name"} |
                                                      {"name": settings["name"]})
        deployment = state.gateway.deployments.get("bench")
        assert deployment is not None
        target = state.gateway.router.pool(deployment, "stable", "chat").targets[0]
        check, settle, background = [], [], []
        for n in range(calls + 200):
            ctx = RequestContext(f"r{n}", "chat", "127.0.0.1")
            ctx.target = target
            t0 = time.perf_counter()
            await admission.authenticate(ctx, token)
            await admission.admit(ctx, request)
            t1 = time.perf_counter()
            ctx.attempts, ctx.usage = 1, Usage(prompt_tokens=20, completion_tokens=16)
            pricing.price(ctx)
            t2 = time.perf_counter()
            admission.settle(ctx)
            t3 = time.perf_counter()
            await admission.settled()
            t4 = time.perf_counter()
            if n >= 200:  # warm-up: caches, tokenizer, connections
                check.append(t1 - t0)
                settle.append(t3 - t2)
                background.append(t4 - t3)
        print(f"{label:<34}{ms(check, 50):>10.3f}{ms(check, 99):>8.3f}{ms(settle, 50):>12.3f}{ms(settle, 99):>8.3f}"
              f"{ms(background, 50):>16.3f}{ms(background, 99):>8.3f}")
        await admission.close()
        await state.shared_state.close()
        await engine.dispose()
    print("(check = authenticate + admit, on the request path; settle = its synchronous part; background = the "
          "settlement task until the state has it, off the request path)\n")


async def sequential(url: str, headers: dict[str, str], count: int) -> tuple[list[float], list[float]]:
    body = orjson.dumps(BODY)
    latency, overhead = [], []
    async with aiohttp.ClientSession(headers={"content-type": "application/json", **headers}) as session:
        for n in range(count + 300):
            started = time.perf_counter()
            async with session.post(url, data=body) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"status {response.status}: {await response.text()}")
                if n >= 300:
                    latency.append(time.perf_counter() - started)
                    overhead.append(float(response.headers["x-sluice-overhead-ms"]) / 1000)
    return latency, overhead


def end_to_end(workdir: Path, redis_url: str, requests: int) -> None:
    print(f"2. end to end through `sluice serve` ({requests:,} sequential requests each; ms)")
    print(f"{'case':<34}{'overhead P50':>13}{'P99':>8}{'latency P50':>13}{'P99':>8}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    up_port = free_port()
    upstream = subprocess.Popen([sys.executable, str(ROOT / "benchmarks/zero_upstream.py"), str(up_port), "16"],
                                env=env)
    try:
        baseline: float | None = None
        for index, (label, state_url, keyed) in enumerate([("open gateway (no keys)", "memory://", False),
                                                           ("key, RPM+TPM+3 budgets, memory://", "memory://", True),
                                                           ("key, RPM+TPM+3 budgets, Redis", redis_url, True)]):
            path = workdir / f"e2e{index}.yaml"
            path.write_text(orjson.dumps(config(workdir, f"e2e{index}", up_port, state_url, keyed)).decode())
            port = free_port()
            gateway = subprocess.Popen([sys.executable, "-m", "sluice", "serve", "--config", str(path), "--port",
                                        str(port), "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL)
            base = f"http://127.0.0.1:{port}"
            try:
                _wait(base + "/health/ready")
                headers: dict[str, str] = {}
                if keyed:
                    secret = _post_json(base + "/admin/keys", LIMITED)["secret"]
                    headers = {"authorization": f"Bearer {secret}"}
                latency, overhead = asyncio.run(sequential(base + "/v1/chat/completions", headers, requests))
            finally:
                gateway.terminate()
                gateway.wait(timeout=30)
            delta = "" if baseline is None else f"   (+{ms(overhead, 50) - baseline:.3f} over open)"
            baseline = ms(overhead, 50) if baseline is None else baseline
            print(f"{label:<34}{ms(overhead, 50):>13.3f}{ms(overhead, 99):>8.3f}{ms(latency, 50):>13.3f}"
                  f"{ms(latency, 99):>8.3f}{delta}")
    finally:
        upstream.terminate()
        upstream.wait(timeout=30)
    print("(overhead = the gateway's own time per request, from x-sluice-overhead-ms: E2E minus upstream and "
          "queue time)")


def _wait(url: str, timeout_s: float = 90) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready")


def _post_json(url: str, body: dict[str, Any]) -> Any:
    import urllib.request

    request = urllib.request.Request(url, data=orjson.dumps(body), method="POST",
                                     headers={"authorization": f"Bearer {MASTER}",
                                              "content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return orjson.loads(response.read())


def run(main: Callable[[], Awaitable[None]]) -> None:
    uvloop.run(main())  # the gateway's event loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=5000, help="admission calls per in-process case")
    parser.add_argument("--requests", type=int, default=3000, help="HTTP requests per end-to-end case")
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="sluice-keys-bench-"))
    redis, redis_url = start_redis(workdir)
    try:
        run(lambda: in_process(workdir, redis_url, args.calls))
        if not args.skip_e2e:
            end_to_end(workdir, redis_url, args.requests)
    finally:
        redis.terminate()
        redis.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
