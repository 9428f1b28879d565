"""The cost of running a local runtime in a worker process instead of the gateway's own process.

    python benchmarks/worker_hop.py [--chunks 2000] [--requests 20] [--max-tokens 128]

Part 1, the hop itself: a child process writes stamped chunk messages exactly as the worker does (asyncio write
pipe, `_worker_protocol.encode`) and this process reads them as `WorkerBackend` does (asyncio subprocess pipe,
readline, decode, `chunk_from_wire`). Both clocks are CLOCK_MONOTONIC, so receive − send is the one-way latency
per token; the parent's CPU per chunk is its cost to the gateway's event loop.
Part 2, end to end: the bundled SmolLM2 GGUF with `isolation: thread` and `isolation: process`, the same greedy
requests, time to first token, decode tokens/s, and a request's round trip with one output token.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

import numpy as np
import uvloop

from sluice.backends import _worker_protocol as wire
from sluice.backends import build_backend
from sluice.backends.types import BackendCall, ChatCompletionRequest
from sluice.config import GGUFBackendConfig

_CHILD = """
import asyncio, os, sys, time
from sluice.backends import _worker_protocol as wire
from sluice.backends.chunks import text_chunk
from sluice.backends.types import BackendCall, ChatCompletionRequest

async def main(count):
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout.buffer)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    call = BackendCall("chat", ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "x"}]), "m", "r")
    for index in range(count):
        chunk = text_chunk(call, "chatcmpl-0123456789abcdef0123456789abcdef", 1700000000, " token")
        writer.write(wire.encode({"id": 1, "sent_ns": time.monotonic_ns(), "chunk": wire.chunk_to_wire(chunk)}))
        await writer.drain()
        await asyncio.sleep(0.002)  # tokens apart, as a runtime produces them: each is its own read
    writer.write(wire.encode({"id": 1, "end": True}))
    await writer.drain()

asyncio.run(main(int(sys.argv[1])))
"""


async def hop(chunks: int) -> dict[str, float]:
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", _CHILD, str(chunks),
                                                   stdout=asyncio.subprocess.PIPE, limit=wire.LINE_LIMIT_BYTES)
    assert process.stdout is not None
    latencies_us, cpu_started = [], time.process_time()
    while line := await process.stdout.readline():
        message = wire.decode(line)
        if "chunk" in message:
            wire.chunk_from_wire(message["chunk"])
            latencies_us.append((time.monotonic_ns() - message["sent_ns"]) / 1000)
    cpu_us = (time.process_time() - cpu_started) * 1e6
    await process.wait()
    return {"p50_us": float(np.percentile(latencies_us, 50)), "p99_us": float(np.percentile(latencies_us, 99)),
            "cpu_us_per_chunk": cpu_us / len(latencies_us), "bytes": len(line) if line else 0}


def call(max_tokens: int, index: int) -> BackendCall:
    request = ChatCompletionRequest(model="smol", temperature=0, max_tokens=max_tokens, messages=[
        {"role": "user", "content": f"Write a paragraph about the number {index}."}])
    return BackendCall("chat", request, "smol", f"req-{index}")


async def end_to_end(isolation: str, requests: int, max_tokens: int) -> dict[str, float]:
    config = GGUFBackendConfig(type="gguf", path="builtin:smollm2", isolation=isolation)  # type: ignore[arg-type]
    backend = build_backend("smol", config)
    started = time.perf_counter()
    await backend.start()
    start_s = time.perf_counter() - started
    await backend.complete(call(8, -1))  # warm-up
    ttfts, rates, round_trips = [], [], []
    for index in range(requests):
        sent, first, count = time.perf_counter(), None, 0
        async for chunk in backend.stream(call(max_tokens, index)):
            if chunk.has_output:
                count += 1
                first = first or time.perf_counter()
        end = time.perf_counter()
        assert first is not None
        ttfts.append((first - sent) * 1000)
        if count > 1:
            rates.append((count - 1) / (end - first))
        sent = time.perf_counter()
        await backend.complete(call(1, index))
        round_trips.append((time.perf_counter() - sent) * 1000)
    await backend.close()
    return {"start_s": start_s, "ttft_ms": statistics.median(ttfts), "tokens_per_s": statistics.median(rates),
            "one_token_ms": statistics.median(round_trips)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=2000, help="stamped chunks for the hop measurement")
    parser.add_argument("--requests", type=int, default=20, help="requests per isolation mode")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--skip-model", action="store_true", help="only measure the hop")
    args = parser.parse_args()
    uvloop.install()  # the gateway's loop (sluice serve runs uvicorn on uvloop)
    result = asyncio.run(hop(args.chunks))
    print(f"hop, one-way per chunk: P50 {result['p50_us']:.0f} µs, P99 {result['p99_us']:.0f} µs; "
          f"gateway CPU {result['cpu_us_per_chunk']:.1f} µs per chunk ({args.chunks} chunks)")
    if args.skip_model:
        return
    print(f"{'isolation':<10} {'start s':>8} {'TTFT ms':>8} {'tok/s':>7} {'1-token request ms':>19}")
    for _ in range(2):  # interleaved rounds: the machine's noise hits both modes alike
        for isolation in ("thread", "process"):
            row = asyncio.run(end_to_end(isolation, args.requests, args.max_tokens))
            print(f"{isolation:<10} {row['start_s']:>8.2f} {row['ttft_ms']:>8.1f} {row['tokens_per_s']:>7.1f} "
                  f"{row['one_token_ms']:>19.1f}")


if __name__ == "__main__":
    main()
