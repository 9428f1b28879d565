"""Accuracy of the bench client: its TTFT / ITL / E2E against the simulator's own record of the same requests.

    .venv/bin/python benchmarks/bench_accuracy.py [--rate 200] [--duration 20] [--output-len 32]
        [--clients aiohttp,aiohttp-uvloop,aiohttp-readline,httpx,raw-protocol] [--rounds 1] [--json FILE]

Starts `sluice sim --record-timings` (qwen2.5-0.5b on an H100: 2.3 ms steps, so the simulated GPU is never
the bottleneck) in a subprocess on the real clock, sends Poisson arrivals at `--rate` for `--duration` with
each client in turn (`x-request-id` on every request), then matches every request to `GET /sim/timings` and
reports the client's error: client TTFT − server TTFT, client E2E − server E2E, and per gap client ITL −
server ITL, P50/P99/max in ms; plus the two legs of the TTFT error (request: client start → server arrival;
first token: server write → client read) and the client's CPU per request. Both processes read the same
clock (perf_counter = CLOCK_MONOTONIC, checked at start), so absolute times compare across them.

Clients: `aiohttp` is `sluice.loadtest.client.send_request` on asyncio's loop; `aiohttp-uvloop` the same
function on uvloop (as `sluice bench` runs it); `aiohttp-readline` is the bench's earlier way, one await per
line of `response.content`, on uvloop; `httpx` is httpx `aiter_lines` on asyncio; `raw-protocol` is a bare
asyncio.Protocol HTTP/1.1 client on uvloop that stamps events inside `data_received` (the floor).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np
import orjson
import uvloop

from sluice.loadtest.arrivals import arrival_gaps_s
from sluice.loadtest.client import BenchTarget, request_body, send_request
from sluice.loadtest.datasets import BenchRequest, random_requests
from sluice.loadtest.metrics import RequestResult
from sluice.sim import ServedTimings, parse_timings

MODEL, GPU = "qwen2.5-0.5b", "h100-sxm"
CLIENTS = ("aiohttp", "aiohttp-uvloop", "aiohttp-readline", "httpx", "raw-protocol")
MS = 1e3
NS_PER_S = 1e9
SendFn = Callable[[BenchRequest, str], Awaitable[RequestResult]]


# --- the clock -------------------------------------------------------------------------------------------

def check_shared_clock(samples: int = 20) -> str:
    """perf_counter must be one clock for both processes: a child's reading must fall between two of ours."""
    info = time.get_clock_info("perf_counter")
    if "CLOCK_MONOTONIC" not in info.implementation:
        raise SystemExit(f"perf_counter is {info.implementation}, not CLOCK_MONOTONIC: cross-process times "
                         "cannot be compared here")
    worst_ns = 0
    for _ in range(samples):
        before = time.perf_counter_ns()
        child = int(subprocess.run([sys.executable, "-c", "import time; print(time.perf_counter_ns())"],
                                   capture_output=True, text=True, check=True).stdout)
        after = time.perf_counter_ns()
        if not before <= child <= after:
            raise SystemExit(f"a child process read perf_counter {child} outside [{before}, {after}]")
        worst_ns = max(worst_ns, after - before)
    return (f"{info.implementation}; {samples} child readings all inside the parent's bracket "
            f"(widest {worst_ns / 1e6:.1f} ms)")


# --- the simulator ---------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SimProcess:
    """`sluice sim --record-timings` in a subprocess; ready once uvicorn logs its start-up (no polling)."""

    def __init__(self, model: str, gpu: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sluice", "sim", "--model", model, "--gpu", gpu, "--port", str(self.port),
             "--record-timings", "--log-level", "info"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if "Application startup complete" in line:
                break
        else:
            raise SystemExit(f"sluice sim exited with {self.proc.wait()} before serving")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()  # keep the pipe from filling

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def timings(self) -> list[ServedTimings]:
        return parse_timings(httpx.get(f"{self.url}/sim/timings", timeout=60).json())

    def clear(self) -> None:
        httpx.delete(f"{self.url}/sim/timings").raise_for_status()

    def engine_lag_s(self) -> float:
        return float(httpx.get(f"{self.url}/sim/state").json()["engine_lag_s"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)


# --- the clients -----------------------------------------------------------------------------------------
# Each returns a RequestResult whose start_s is the absolute perf_counter time the request was started.

def _text_of(data: dict[str, Any]) -> str:
    choices = data.get("choices") or []
    return ((choices[0].get("delta") or {}).get("content") or "") if choices else ""


class _Timeline:
    """Stamps of one stream, in the bench client's definitions (TTFT at the first text, end at [DONE])."""

    __slots__ = ("done_s", "start_s", "token_s")

    def __init__(self) -> None:
        self.start_s = time.perf_counter()
        self.token_s: list[float] = []
        self.done_s: float | None = None

    def on_event(self, data: bytes, now_s: float) -> None:
        if data == b"[DONE]":
            self.done_s = now_s
        elif _text_of(orjson.loads(data)):
            self.token_s.append(now_s)

    def result(self, request: BenchRequest) -> RequestResult:
        if self.done_s is None or not self.token_s:
            return RequestResult(success=False, prompt_tokens=request.prompt_tokens, start_s=self.start_s,
                                 error="incomplete")
        gaps = tuple(b - a for a, b in itertools.pairwise(self.token_s))
        return RequestResult(success=True, prompt_tokens=request.prompt_tokens, output_tokens=len(self.token_s),
                             ttft_s=self.token_s[0] - self.start_s, itl_s=gaps, e2e_s=self.done_s - self.start_s,
                             start_s=self.start_s)


def aiohttp_session() -> aiohttp.ClientSession:
    """As `run_benchmark` builds it."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
                                 timeout=aiohttp.ClientTimeout(total=600))


async def with_bench_client(target: BenchTarget, body: Callable[[SendFn], Awaitable[None]]) -> None:
    async with aiohttp_session() as session:
        async def send(request: BenchRequest, request_id: str) -> RequestResult:
            return await send_request(session, target, request, 0.0, request_id=request_id)
        await body(send)


async def with_aiohttp_readline(target: BenchTarget, body: Callable[[SendFn], Awaitable[None]]) -> None:
    """The bench client's earlier way: one await per line of `response.content`."""
    async with aiohttp_session() as session:
        async def send(request: BenchRequest, request_id: str) -> RequestResult:
            timeline = _Timeline()
            async with session.post(target.url, json=request_body(target, request),
                                    headers={"x-request-id": request_id}) as response:
                async for raw in response.content:
                    line = raw.strip()
                    if line.startswith(b"data:"):
                        timeline.on_event(line[5:].strip(), time.perf_counter())
            return timeline.result(request)
        await body(send)


async def with_httpx(target: BenchTarget, body: Callable[[SendFn], Awaitable[None]]) -> None:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=512)
    async with httpx.AsyncClient(limits=limits, timeout=600) as client:
        async def send(request: BenchRequest, request_id: str) -> RequestResult:
            timeline = _Timeline()
            async with client.stream("POST", target.url, json=request_body(target, request),
                                     headers={"x-request-id": request_id}) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        timeline.on_event(line[5:].strip().encode(), time.perf_counter())
            return timeline.result(request)
        await body(send)


class _StreamProtocol(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection reading a chunked SSE answer; every event of a read is stamped
    with the time `data_received` was entered, before any parsing."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.events = bytearray()
        self.in_body = False
        self.timeline: _Timeline | None = None
        self.finished: asyncio.Future[None] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def start(self, head_and_body: bytes, timeline: _Timeline) -> asyncio.Future[None]:
        self.timeline, self.in_body = timeline, False
        self.finished = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(head_and_body)
        return self.finished

    def data_received(self, data: bytes) -> None:
        now_s = time.perf_counter()
        self.buffer += data
        if not self.in_body:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buffer.startswith(b"HTTP/1.1 200"):
                self._finish(RuntimeError(bytes(self.buffer[:200]).decode(errors="replace")))
                return
            del self.buffer[:end + 4]
            self.in_body = True
        while (line_end := self.buffer.find(b"\r\n")) >= 0:
            size = int(self.buffer[:line_end], 16)
            if len(self.buffer) < line_end + 2 + size + 2:
                return
            self.events += self.buffer[line_end + 2:line_end + 2 + size]
            del self.buffer[:line_end + 2 + size + 2]
            while (event_end := self.events.find(b"\n\n")) >= 0:
                event = bytes(self.events[:event_end])
                del self.events[:event_end + 2]
                if event.startswith(b"data:") and self.timeline is not None:
                    self.timeline.on_event(event[5:].strip(), now_s)
            if size == 0:
                self._finish(None)
                return

    def _finish(self, error: Exception | None) -> None:
        if self.finished is not None and not self.finished.done():
            if error is None:
                self.finished.set_result(None)
            else:
                self.finished.set_exception(error)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._finish(exc or ConnectionError("connection closed mid-answer"))


async def with_raw_protocol(target: BenchTarget, body: Callable[[SendFn], Awaitable[None]]) -> None:
    host, port = target.base_url.removeprefix("http://").split(":")
    idle: list[_StreamProtocol] = []
    loop = asyncio.get_running_loop()

    async def send(request: BenchRequest, request_id: str) -> RequestResult:
        timeline = _Timeline()
        payload = orjson.dumps(request_body(target, request))
        head = (f"POST {target.endpoint} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
                f"x-request-id: {request_id}\r\ncontent-length: {len(payload)}\r\n\r\n").encode()
        while idle and idle[-1].closed:  # the server closes connections idle past its keep-alive timeout
            idle.pop()
        protocol = idle.pop() if idle else (await loop.create_connection(_StreamProtocol, host, int(port)))[1]
        await protocol.start(head + payload, timeline)
        idle.append(protocol)
        return timeline.result(request)

    try:
        await body(send)
    finally:
        for protocol in idle:
            if protocol.transport is not None:
                protocol.transport.close()


@dataclass(frozen=True)
class ClientKind:
    name: str
    loop: str  # asyncio | uvloop
    session: Callable[[BenchTarget, Callable[[SendFn], Awaitable[None]]], Awaitable[None]]
    library: str


BENCH_CLIENT = "sluice bench client (aiohttp iter_any + iter_sse)"
KINDS = {kind.name: kind for kind in (
    ClientKind("aiohttp", "asyncio", with_bench_client, BENCH_CLIENT),
    ClientKind("aiohttp-uvloop", "uvloop", with_bench_client, BENCH_CLIENT),
    ClientKind("aiohttp-readline", "uvloop", with_aiohttp_readline, "aiohttp readline per line"),
    ClientKind("httpx", "asyncio", with_httpx, "httpx aiter_lines"),
    ClientKind("raw-protocol", "uvloop", with_raw_protocol, "asyncio.Protocol, stamps in data_received"),
)}


# --- the load --------------------------------------------------------------------------------------------

@dataclass
class Run:
    kind: ClientKind
    results: dict[str, RequestResult] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    sim_cpu_s: float = 0.0
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    engine_lag_ms: float = 0.0


async def open_loop(send: SendFn, requests: Sequence[BenchRequest], rate: float, duration_s: float, tag: str,
                    results: dict[str, RequestResult]) -> None:
    """Poisson arrivals (`run_benchmark`'s gaps), a task per request. Each request goes at its drawn time
    from the start, so the oversleep of `asyncio.sleep` does not pile up and the rate is the one asked for."""
    gaps = arrival_gaps_s(rate, seed=0)
    tasks = []
    start = due = time.perf_counter()
    for index, request in enumerate(itertools.cycle(requests)):
        if due - start >= duration_s:
            break
        request_id = f"{tag}-{index}"

        async def one(request: BenchRequest = request, request_id: str = request_id) -> None:
            results[request_id] = await send(request, request_id)

        tasks.append(asyncio.create_task(one()))
        due += next(gaps)
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
    await asyncio.gather(*tasks)


def run_client(kind: ClientKind, sim: SimProcess, requests: Sequence[BenchRequest], rate: float, duration_s: float,
               warmup_s: float, tag: str) -> Run:
    target = BenchTarget(base_url=sim.url, model=MODEL)
    run = Run(kind)

    async def session() -> None:
        async def body(send: SendFn) -> None:
            await open_loop(send, requests, rate, warmup_s, f"{tag}-warmup", {})
            await asyncio.to_thread(sim.clear)
            run.load_before = os.getloadavg()
            cpu, sim_cpu, wall = time.process_time(), sim.cpu_s(), time.perf_counter()
            await open_loop(send, requests, rate, duration_s, tag, run.results)
            run.wall_s, run.cpu_s = time.perf_counter() - wall, time.process_time() - cpu
            run.sim_cpu_s = sim.cpu_s() - sim_cpu
            run.load_after = os.getloadavg()
        await kind.session(target, body)

    if kind.loop == "uvloop":
        uvloop.run(session())
    else:
        asyncio.run(session())
    run.engine_lag_ms = sim.engine_lag_s() * MS
    return run


# --- the comparison --------------------------------------------------------------------------------------

@dataclass
class Errors:
    """Client minus server, in ms, over the matched requests (ITL: over every matched gap)."""

    ttft: list[float] = field(default_factory=list)
    e2e: list[float] = field(default_factory=list)
    itl: list[float] = field(default_factory=list)
    itl_abs: list[float] = field(default_factory=list)
    send_leg: list[float] = field(default_factory=list)  # server read of the request − client start
    dispatch: list[float] = field(default_factory=list)  # server app entry − server read (the server's own)
    first_token_leg: list[float] = field(default_factory=list)  # client first text read − server write
    done_leg: list[float] = field(default_factory=list)  # client [DONE] read − server write
    server_ttft: list[float] = field(default_factory=list)
    unmatched: int = 0
    failed: int = 0
    gap_count_mismatch: int = 0


def compare(results: dict[str, RequestResult], served: Sequence[ServedTimings]) -> Errors:
    by_id = {record.request_id: record for record in served}
    errors = Errors()
    for request_id, client in results.items():
        server = by_id.get(request_id)
        if not client.success:
            errors.failed += 1
            continue
        if server is None or server.ttft_s is None or server.e2e_s is None:
            errors.unmatched += 1
            continue
        errors.ttft.append((client.ttft_s - server.ttft_s) * MS)
        errors.e2e.append((client.e2e_s - server.e2e_s) * MS)
        received_ns = server.received_ns if server.received_ns is not None else server.arrived_ns
        errors.send_leg.append((received_ns / NS_PER_S - client.start_s) * MS)
        errors.dispatch.append((server.arrived_ns - received_ns) / NS_PER_S * MS)
        errors.first_token_leg.append((client.start_s + client.ttft_s - server.token_ns[0] / NS_PER_S) * MS)
        errors.done_leg.append((client.start_s + client.e2e_s - (server.last_frame_ns or 0) / NS_PER_S) * MS)
        errors.server_ttft.append(server.ttft_s * MS)
        if len(client.itl_s) != len(server.itl_s):
            errors.gap_count_mismatch += 1
            continue
        errors.itl.extend((c - s) * MS for c, s in zip(client.itl_s, server.itl_s, strict=True))
    errors.itl_abs = [abs(value) for value in errors.itl]
    return errors


def quantiles(values_ms: Sequence[float]) -> dict[str, float]:
    if not values_ms:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "min": float("nan")}
    data = np.asarray(values_ms)
    return {"p50": float(np.percentile(data, 50)), "p99": float(np.percentile(data, 99)),
            "max": float(data.max()), "min": float(data.min())}


def summarise(run: Run, errors: Errors) -> dict[str, Any]:
    done = len(run.results)
    return {
        "client": run.kind.name, "loop": run.kind.loop, "library": run.kind.library, "requests": done,
        "matched": len(errors.ttft), "failed": errors.failed, "unmatched": errors.unmatched,
        "gap_count_mismatch": errors.gap_count_mismatch, "wall_s": run.wall_s,
        "achieved_rate": done / run.wall_s if run.wall_s else 0.0,
        "client_cpu_us_per_request": run.cpu_s / done * 1e6 if done else float("nan"),
        "client_cpu_pct": run.cpu_s / run.wall_s * 100 if run.wall_s else 0.0,
        "sim_cpu_pct": run.sim_cpu_s / run.wall_s * 100 if run.wall_s else 0.0,
        "engine_lag_ms": run.engine_lag_ms, "load_before": run.load_before, "load_after": run.load_after,
        "ttft_error_ms": quantiles(errors.ttft), "e2e_error_ms": quantiles(errors.e2e),
        "itl_error_ms": quantiles(errors.itl), "itl_abs_error_ms": quantiles(errors.itl_abs),
        "send_leg_ms": quantiles(errors.send_leg), "dispatch_ms": quantiles(errors.dispatch),
        "first_token_leg_ms": quantiles(errors.first_token_leg), "done_leg_ms": quantiles(errors.done_leg),
        "server_ttft_ms": quantiles(errors.server_ttft),
    }


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    def trio(stats: dict[str, float]) -> str:
        return f"{stats['p50']:.2f} / {stats['p99']:.2f} / {stats['max']:.1f}"

    def duo(stats: dict[str, float]) -> str:
        return f"{stats['p50']:.2f} / {stats['p99']:.2f}"

    print("\n| client | loop | TTFT err | E2E err | abs ITL err | send leg | server dispatch | first-token leg "
          "| CPU µs/req | client CPU % | sim CPU % | load 1m |")
    print("|---|---|---|---|---|---|---|---|---:|---:|---:|---|")
    for row in rows:
        print(f"| {row['client']} | {row['loop']} | {trio(row['ttft_error_ms'])} | {trio(row['e2e_error_ms'])} "
              f"| {trio(row['itl_abs_error_ms'])} | {duo(row['send_leg_ms'])} | {duo(row['dispatch_ms'])} "
              f"| {duo(row['first_token_leg_ms'])} | {row['client_cpu_us_per_request']:,.0f} "
              f"| {row['client_cpu_pct']:.0f} | {row['sim_cpu_pct']:.0f} "
              f"| {row['load_before'][0]:.2f}→{row['load_after'][0]:.2f} |")
    print("(errors in ms, P50 / P99 / max; legs P50 / P99)")
    for row in rows:
        print(f"{row['client']}: {row['matched']}/{row['requests']} matched, {row['failed']} failed, "
              f"{row['unmatched']} unmatched, {row['gap_count_mismatch']} gap-count mismatches, "
              f"{row['achieved_rate']:.1f} req/s, server TTFT P50 {row['server_ttft_ms']['p50']:.1f} ms, "
              f"min TTFT error {row['ttft_error_ms']['min']:.3f} ms, signed ITL err P50 "
              f"{row['itl_error_ms']['p50']:.3f} ms, done leg P50/P99 {row['done_leg_ms']['p50']:.3f} / "
              f"{row['done_leg_ms']['p99']:.3f} ms, engine lag {row['engine_lag_ms']:.2f} ms")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s (Poisson)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of measured load per client")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load first")
    parser.add_argument("--input-len", type=int, default=64)
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--clients", default=",".join(CLIENTS), help=f"comma-separated, of {', '.join(CLIENTS)}")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the client list (interleaved)")
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--gpu", default=GPU)
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)
    kinds = [KINDS[name] for name in args.clients.split(",")]

    print("clock:", check_shared_clock())
    requests = random_requests(256, input_len=args.input_len, output_len=args.output_len, model=args.model)
    sim = SimProcess(args.model, args.gpu)
    rows = []
    try:
        for round_index, kind in itertools.product(range(args.rounds), kinds):
            run = run_client(kind, sim, requests, args.rate, args.duration, args.warmup,
                             tag=f"{kind.name}-r{round_index}")
            row = summarise(run, compare(run.results, sim.timings()))
            row["round"] = round_index
            rows.append(row)
            print(f"{kind.name} round {round_index}: TTFT err P99 {row['ttft_error_ms']['p99']:.3f} ms, "
                  f"CPU {row['client_cpu_us_per_request']:.0f} µs/req", flush=True)
    finally:
        sim.stop()
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
