"""Upstream HTTP client choice: aiohttp vs httpx relaying JSON and SSE from a zero-latency loopback upstream.

    .venv/bin/python benchmarks/http_clients.py [--seconds 2.0] [--chunks 64]

The upstream is a raw ASGI app on uvicorn (httptools, uvloop) in a separate process, so its CPU is not
counted; it writes every SSE event in its own HTTP chunk and yields to its loop between events (or sleeps
`--itl-ms` in the paced scenario). The client runs on uvloop with one pooled session per library and
measures, per scenario and concurrency: responses/s, latency P50/P99, wall time per chunk, client CPU
(`time.process_time`) per response and per chunk, and in how many blocks the library handed a stream over
(aiohttp `iter_any`: one per network read; httpx `aiter_raw`: one per HTTP chunk). Each row is run `--rounds`
times, interleaved with the other client; the round with the least client CPU per response is shown.

Streaming is read as "sse" = raw blocks (aiohttp `iter_any`, httpx `aiter_raw`) through sluice's own
`iter_sse` (the adapter's path); "sse via readline" = aiohttp's line iterator into `iter_sse` (the adapter's
earlier path); "lines" = each library's own line iterator, only counting `data:` lines.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import orjson

from sluice.backends.sse import iter_sse

REQUEST_BODY = orjson.dumps({
    "model": "bench", "stream": False, "max_tokens": 64,
    "messages": [{"role": "system", "content": "You are terse."},
                 {"role": "user", "content": "Count from one to sixty-four, one word per number."}],
})
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}


# --- upstream (separate process) -------------------------------------------------------------------------

def _sse_events(chunks: int) -> list[bytes]:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": "bench",
            "system_fingerprint": None}

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + orjson.dumps({**base, "choices": choices, **extra}) + b"\n\n"

    events = [event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                      "finish_reason": None}])]
    events += [event([{"index": 0, "delta": {"content": f" word{i}"}, "logprobs": None, "finish_reason": None}])
               for i in range(chunks)]
    events.append(event([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]))
    events.append(event([], usage={"prompt_tokens": 24, "completion_tokens": chunks,
                                   "total_tokens": 24 + chunks}))
    events.append(b"data: [DONE]\n\n")
    return events


def serve_upstream(port: int, chunks: int) -> None:
    """`/json` answers a chat.completion; `/stream/<itl_ms>` streams `chunks` tokens, `itl_ms` apart."""
    import uvicorn

    events = _sse_events(chunks)
    answer = orjson.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "word " * chunks},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 24, "completion_tokens": chunks, "total_tokens": 24 + chunks}})
    json_start = {"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]}
    sse_start = {"type": "http.response.start", "status": 200,
                 "headers": [(b"content-type", b"text/event-stream; charset=utf-8")]}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        path: str = scope["path"]
        if not path.startswith("/stream/"):
            await send(json_start)
            await send({"type": "http.response.body", "body": answer})
            return
        itl_s = float(path.removeprefix("/stream/")) / 1000
        await send(sse_start)
        for event in events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
            await asyncio.sleep(itl_s)  # 0 still yields, so each event leaves in its own write
        await send({"type": "http.response.body", "body": b""})

    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", lifespan="off",
                log_level="warning", access_log=False, backlog=4096)


def start_upstream(chunks: int) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--chunks", str(chunks)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("upstream did not start")


# --- clients ---------------------------------------------------------------------------------------------

class AiohttpClient:
    name = "aiohttp"

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                             timeout=aiohttp.ClientTimeout(total=60))

    async def post_json(self) -> tuple[int, int]:
        async with self.session.post(self.base_url + "/json", data=REQUEST_BODY, headers=HEADERS) as resp:
            await resp.read()
        return 0, 1

    async def stream_sse(self, path: str) -> tuple[int, int]:
        block_count = 0

        async def blocks() -> Any:
            nonlocal block_count
            async for block in resp.content.iter_any():
                block_count += 1
                yield block

        async with self.session.post(self.base_url + path, data=REQUEST_BODY, headers=HEADERS) as resp:
            events = [event async for event in iter_sse(blocks())]
        return len(events), block_count

    async def stream_sse_readline(self, path: str) -> tuple[int, int]:
        async with self.session.post(self.base_url + path, data=REQUEST_BODY, headers=HEADERS) as resp:
            events = [event async for event in iter_sse(resp.content)]  # aiohttp's readline per line
        return len(events), 0

    async def stream_lines(self, path: str) -> tuple[int, int]:
        events = 0
        async with self.session.post(self.base_url + path, data=REQUEST_BODY, headers=HEADERS) as resp:
            async for line in resp.content:
                if line.startswith(b"data:"):
                    events += 1
        return events, 0

    async def close(self) -> None:
        await self.session.close()


class HttpxClient:
    name = "httpx"

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
        self.client = httpx.AsyncClient(limits=limits, timeout=60)

    async def post_json(self) -> tuple[int, int]:
        await self.client.post(self.base_url + "/json", content=REQUEST_BODY, headers=HEADERS)  # reads the body
        return 0, 1

    async def stream_sse(self, path: str) -> tuple[int, int]:
        block_count = 0

        async def blocks() -> Any:
            nonlocal block_count
            async for block in resp.aiter_raw():
                block_count += 1
                yield block

        async with self.client.stream("POST", self.base_url + path, content=REQUEST_BODY,
                                      headers=HEADERS) as resp:
            events = [event async for event in iter_sse(blocks())]
        return len(events), block_count

    async def stream_lines(self, path: str) -> tuple[int, int]:
        events = 0
        async with self.client.stream("POST", self.base_url + path, content=REQUEST_BODY,
                                      headers=HEADERS) as resp:
            async for line in resp.aiter_lines():
                if line.startswith("data:"):
                    events += 1
        return events, 0

    async def close(self) -> None:
        await self.client.aclose()


Client = AiohttpClient | HttpxClient


# --- measurement -----------------------------------------------------------------------------------------

@dataclass(slots=True, frozen=True)
class Result:
    scenario: str
    client: str
    concurrency: int
    responses: int
    per_s: float
    p50_ms: float
    p99_ms: float
    wall_us_per_chunk: float | None
    cpu_us_per_response: float
    cpu_us_per_chunk: float | None
    client_cpu_pct: float
    blocks_per_response: float | None  # what the library handed over: reads (aiohttp), HTTP chunks (httpx)


async def measure(scenario: str, client: Client, op: Callable[[], Awaitable[tuple[int, int]]],
                  concurrency: int, seconds: float, expected_events: int, content_chunks: int) -> Result:
    async def run(until: float, latencies: list[float], blocks: list[int]) -> None:
        while time.perf_counter() < until:
            started = time.perf_counter()
            events, block_count = await op()
            latencies.append(time.perf_counter() - started)
            blocks.append(block_count)
            if expected_events and events != expected_events:
                raise RuntimeError(f"{client.name} {scenario}: {events} events, expected {expected_events}")

    warm_until = time.perf_counter() + min(0.3, seconds / 4)
    await asyncio.gather(*(run(warm_until, [], []) for _ in range(concurrency)))
    latencies: list[float] = []
    blocks: list[int] = []
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    until = wall_start + seconds
    await asyncio.gather(*(run(until, latencies, blocks) for _ in range(concurrency)))
    wall_s, cpu_s = time.perf_counter() - wall_start, time.process_time() - cpu_start
    count = len(latencies)
    ordered = sorted(latencies)
    chunks = count * content_chunks
    return Result(
        scenario=scenario, client=client.name, concurrency=concurrency, responses=count, per_s=count / wall_s,
        p50_ms=statistics.median(ordered) * 1e3, p99_ms=ordered[min(count - 1, int(count * 0.99))] * 1e3,
        wall_us_per_chunk=wall_s / chunks * 1e6 if chunks else None,
        cpu_us_per_response=cpu_s / count * 1e6, cpu_us_per_chunk=cpu_s / chunks * 1e6 if chunks else None,
        client_cpu_pct=cpu_s / wall_s * 100,
        blocks_per_response=statistics.fmean(blocks) if content_chunks and any(blocks) else None,
    )


def _cell(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def print_table(results: list[Result]) -> None:
    header = ("scenario", "client", "conc", "resp/s", "P50 ms", "P99 ms", "wall µs/chunk", "CPU µs/resp",
              "CPU µs/chunk", "client CPU %", "blocks/resp")
    rows = [(r.scenario, r.client, str(r.concurrency), _cell(r.per_s, 0), _cell(r.p50_ms, 2),
             _cell(r.p99_ms, 2), _cell(r.wall_us_per_chunk), _cell(r.cpu_us_per_response, 0),
             _cell(r.cpu_us_per_chunk), _cell(r.client_cpu_pct, 0), _cell(r.blocks_per_response))
            for r in results]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths,
                                                                                                       strict=True))))


async def run_all(base_url: str, seconds: float, rounds: int, chunks: int, itl_ms: float) -> list[Result]:
    """Every scenario for both clients, `rounds` times interleaved; keeps each row's least disturbed round."""
    events = chunks + 4  # role, content chunks, finish, usage, [DONE]
    zero, paced = "/stream/0", f"/stream/{itl_ms:g}"
    clients: list[Client] = [AiohttpClient(base_url), HttpxClient(base_url)]
    rows: dict[tuple[str, str, int], list[Result]] = {}
    try:
        for _ in range(rounds):
            for client in clients:
                scenarios: list[tuple[str, Callable[[], Awaitable[tuple[int, int]]], int, int, int]] = [
                    ("POST JSON", client.post_json, 1, 0, 0),
                    ("POST JSON", client.post_json, 32, 0, 0),
                    (f"stream {chunks} sse", lambda c=client: c.stream_sse(zero), 1, events, chunks),
                    (f"stream {chunks} sse", lambda c=client: c.stream_sse(zero), 32, events, chunks),
                    (f"stream {chunks} lines", lambda c=client: c.stream_lines(zero), 1, events, chunks),
                    (f"stream {chunks} lines", lambda c=client: c.stream_lines(zero), 32, events, chunks),
                    (f"stream {chunks} sse, ITL {itl_ms:g} ms", lambda c=client: c.stream_sse(paced), 32,
                     events, chunks),
                ]
                if isinstance(client, AiohttpClient):
                    scenarios += [(f"stream {chunks} sse via readline", lambda c=client: c.stream_sse_readline(zero),
                                   concurrency, events, chunks) for concurrency in (1, 32)]
                for scenario, op, concurrency, expected, content_chunks in scenarios:
                    result = await measure(scenario, client, op, concurrency, seconds, expected, content_chunks)
                    rows.setdefault((scenario, client.name, concurrency), []).append(result)
    finally:
        for client in clients:
            await client.close()
    # Other processes share this machine: the round with the least client CPU per response was disturbed least.
    best = [min(results, key=lambda r: r.cpu_us_per_response) for results in rows.values()]
    return sorted(best, key=lambda r: (r.scenario, r.concurrency))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.0, help="measured time per row and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; the best is shown")
    parser.add_argument("--chunks", type=int, default=64, help="content chunks per streamed response")
    parser.add_argument("--itl-ms", type=float, default=1.0, help="gap between events in the paced scenario")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # internal: run the upstream on PORT
    args = parser.parse_args()
    if args.serve:
        serve_upstream(args.serve, args.chunks)
        return

    import uvloop

    process, base_url = start_upstream(args.chunks)
    try:
        print(f"aiohttp {aiohttp.__version__}, httpx {httpx.__version__}, uvloop client loop, "
              f"best of {args.rounds} x {args.seconds:g} s per row\n")
        print_table(uvloop.run(run_all(base_url, args.seconds, args.rounds, args.chunks, args.itl_ms)))
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
