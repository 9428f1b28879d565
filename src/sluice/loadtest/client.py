"""The load-test client: streams requests to an OpenAI-compatible server with aiohttp and times each chunk."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import orjson

from sluice.backends.sse import iter_sse
from sluice.cost import count_text_tokens
from sluice.loadtest.arrivals import arrival_gaps_s
from sluice.loadtest.datasets import BenchRequest
from sluice.loadtest.metrics import RequestResult

CHAT_ENDPOINT = "/v1/chat/completions"
COMPLETIONS_ENDPOINT = "/v1/completions"
T = TypeVar("T")
ERROR_DETAIL_CHARS = 300  # enough for vLLM's context-length message, short enough for a result file


@dataclass(slots=True, frozen=True)
class BenchTarget:
    base_url: str  # server root, e.g. http://127.0.0.1:8000 (the endpoint carries /v1)
    model: str
    endpoint: str = CHAT_ENDPOINT
    api_key: str | None = None
    timeout_s: float = 6 * 3600  # as vLLM: a benchmark request may legitimately take very long

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/" + self.endpoint.lstrip("/")

    @property
    def is_chat(self) -> bool:
        return self.endpoint.rstrip("/").endswith("chat/completions")


def request_body(target: BenchTarget, request: BenchRequest) -> dict[str, Any]:
    """A streaming body that asks the server to report usage at the end, as vLLM's bench client does."""
    body: dict[str, Any] = {"model": target.model, "stream": True, "stream_options": {"include_usage": True},
                            "temperature": 0.0}
    if target.is_chat:
        body["messages"] = [{"role": "user", "content": request.prompt}]
        body["max_completion_tokens"] = request.output_len
    else:
        body["prompt"] = request.prompt
        body["max_tokens"] = request.output_len
    return body


def error_message(body: bytes) -> str:
    """The message of an error body: OpenAI's `{"error": {"message"}}`, TGI's `{"error": "..."}`, old vLLM's
    flat `{"message"}`, else the raw text; shortened."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    message: object = body.decode(errors="replace")
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error
        elif error:
            message = error
        elif data.get("message"):
            message = data["message"]
    return " ".join(str(message).split())[:ERROR_DETAIL_CHARS]


def _chunk_text(data: dict[str, Any], is_chat: bool) -> str:
    choices = data.get("choices") or []
    if not choices:
        return ""
    if not is_chat:
        return choices[0].get("text") or ""
    delta = choices[0].get("delta") or {}
    tool_args = "".join((call.get("function") or {}).get("arguments") or "" for call in delta.get("tool_calls") or [])
    return (delta.get("content") or "") + tool_args


async def send_request(session: aiohttp.ClientSession, target: BenchTarget, request: BenchRequest,
                       bench_start_s: float = 0.0, request_id: str | None = None) -> RequestResult:
    """Send one streaming request. TTFT is taken at the first chunk carrying output text (a bare role delta
    is not a token); ITLs are the gaps between text chunks; latency runs to the end of the stream.
    `request_id` goes out as `x-request-id` (to match the server's own record of the request)."""
    headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}
    if request_id is not None:
        headers["x-request-id"] = request_id
    start = time.perf_counter()

    def failed(error: str, detail: str | None = None) -> RequestResult:
        return RequestResult(success=False, prompt_tokens=request.prompt_tokens, start_s=start - bench_start_s,
                             e2e_s=time.perf_counter() - start, error=error, error_detail=detail)

    ttft_s, last_s, itl_s, text, usage_tokens, done = 0.0, start, [], [], None, False
    try:
        async with session.post(target.url, json=request_body(target, request), headers=headers) as response:
            if response.status != 200:
                return failed(f"http_{response.status}", error_message(await response.read()))
            # Raw blocks through the SSE parser: one await per network read, not per line (measured in
            # docs/bench-accuracy.md: lower client CPU and a smaller P99 error than readline iteration).
            async for event in iter_sse(response.content.iter_any()):
                now = time.perf_counter()  # stamped before parsing: the chunk's arrival, not our JSON time
                payload = event.data.strip()
                if payload == "[DONE]":
                    done = True
                    break
                data = orjson.loads(payload)
                if data.get("error"):
                    return failed("stream_error", error_message(payload.encode()))
                if piece := _chunk_text(data, target.is_chat):
                    if not text:
                        ttft_s = now - start
                    else:
                        itl_s.append(now - last_s)
                    last_s = now
                    text.append(piece)
                if usage := data.get("usage"):
                    usage_tokens = usage.get("completion_tokens")
    except TimeoutError:
        return failed("timeout")
    except aiohttp.ClientError as exc:
        return failed(type(exc).__name__, " ".join(str(exc).split())[:ERROR_DETAIL_CHARS] or None)
    except orjson.JSONDecodeError:
        return failed("invalid_json")
    end = time.perf_counter()
    if not done:
        return failed("incomplete_stream")
    if not text:
        return failed("empty_response")
    estimated = usage_tokens is None
    generated = "".join(text)
    output_tokens = count_text_tokens(generated, target.model) if estimated else int(usage_tokens)
    return RequestResult(success=True, prompt_tokens=request.prompt_tokens, output_tokens=output_tokens,
                         ttft_s=ttft_s, itl_s=tuple(itl_s), e2e_s=end - start, start_s=start - bench_start_s,
                         output_tokens_estimated=estimated, generated_text=generated)


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run the bench on uvloop where it is installed (measured: a third less client CPU per request than
    asyncio's loop and a much smaller P99 timing error, docs/bench-accuracy.md), else on asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


@dataclass(slots=True, frozen=True)
class BenchRun:
    results: list[RequestResult]
    duration_s: float


async def run_benchmark(target: BenchTarget, requests: Sequence[BenchRequest], *, request_rate: float = math.inf,
                        burstiness: float = 1.0, max_concurrency: int | None = None, seed: int = 0,
                        duration_s: float | None = None,
                        on_result: Callable[[RequestResult], None] | None = None) -> BenchRun:
    """Send `requests` at the drawn arrival times, at most `max_concurrency` in flight; results in issue order.

    With `duration_s`, cycle through `requests` and stop issuing once that much time has passed (requests in
    flight then finish). An unbounded rate then needs `max_concurrency`: each free slot lets the next one go.
    """
    if not requests:
        raise ValueError("no requests to send")
    pacing = duration_s is not None and math.isinf(request_rate)
    if pacing and not max_concurrency:
        raise ValueError("a timed run needs a finite request rate or a max concurrency")
    semaphore = asyncio.Semaphore(max_concurrency) if max_concurrency else None
    connector = aiohttp.TCPConnector(limit=max_concurrency or 0, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=target.timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        bench_start = time.perf_counter()

        async def one(request: BenchRequest, holds_slot: bool) -> RequestResult:
            if semaphore is None:
                result = await send_request(session, target, request, bench_start)
            else:
                if not holds_slot:
                    await semaphore.acquire()
                try:
                    result = await send_request(session, target, request, bench_start)
                finally:
                    semaphore.release()
            if on_result is not None:
                on_result(result)
            return result

        gaps = arrival_gaps_s(request_rate, burstiness=burstiness, seed=seed)
        source = iter(requests) if duration_s is None else itertools.cycle(requests)
        tasks = []
        for index, request in enumerate(source):
            if duration_s is not None and time.perf_counter() - bench_start >= duration_s:
                break
            if pacing and semaphore is not None:
                await semaphore.acquire()
                if time.perf_counter() - bench_start >= (duration_s or 0.0):  # the wait for a slot ran out the clock
                    semaphore.release()
                    break
            tasks.append(asyncio.create_task(one(request, pacing)))
            gap = next(gaps)
            if gap and (duration_s is not None or index < len(requests) - 1):
                await asyncio.sleep(gap)
        results = list(await asyncio.gather(*tasks))
        return BenchRun(results, time.perf_counter() - bench_start)
