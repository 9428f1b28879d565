"""The load-test client: streams requests to an OpenAI-compatible server with aiohttp and times each chunk."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import aiohttp
import orjson

from sluice.backends import iter_sse
from sluice.cost import count_text_tokens
from sluice.loadtest.arrivals import Arrival, arrival_times_s, offered_rate
from sluice.loadtest.datasets import BenchRequest
from sluice.loadtest.metrics import RequestResult
from sluice.loadtest.target import CHAT_ENDPOINT, COMPLETIONS_ENDPOINT, BenchTarget, request_body

__all__ = ["CHAT_ENDPOINT", "COMPLETIONS_ENDPOINT", "BenchRun", "BenchTarget", "error_message", "request_body",
           "run_async", "run_benchmark", "send_request"]

T = TypeVar("T")
ERROR_DETAIL_CHARS = 300  # enough for vLLM's context-length message, short enough for a result file
NOT_FOUND_ERRORS = ("http_404", "http_405")  # a wrong URL, never load: the run stops at the first, before a success


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
                       bench_start_s: float = 0.0, request_id: str | None = None, *,
                       history: Sequence[Mapping[str, str]] = ()) -> RequestResult:
    """Send one streaming request. TTFT is taken at the first chunk carrying output text (a bare role delta
    is not a token); ITLs are the gaps between text chunks; latency runs to the end of the stream.
    `request_id` goes out as `x-request-id` (to match the server's own record of the request); `history` is
    the conversation so far (multi-turn chat)."""
    url, headers, body = target.url, target.request_headers(request_id), request_body(target, request, history)
    start = time.perf_counter()

    def failed(error: str, detail: str | None = None) -> RequestResult:
        return RequestResult(success=False, prompt_tokens=request.prompt_tokens, start_s=start - bench_start_s,
                             e2e_s=time.perf_counter() - start, error=error, error_detail=detail)

    ttft_s, last_s, itl_s, text, usage_tokens, done = 0.0, start, [], [], None, False
    try:
        async with session.post(url, json=body, headers=headers) as response:
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
    results: list[RequestResult]  # in issue order (a conversation's turns together)
    duration_s: float
    send_times_s: tuple[float, ...] = ()  # when each request (conversation) was scheduled, from the start
    aborted: str | None = None  # why the run stopped early: the server answered 404 before any success

    @property
    def offered_rate(self) -> float:
        return offered_rate(self.send_times_s)


@dataclass(slots=True)
class _Outcome:
    """What the requests in flight tell the sender: a success seen, or a reason to stop."""

    succeeded: bool = False
    abort: str | None = None


async def run_benchmark(target: BenchTarget, requests: Sequence[BenchRequest], *, request_rate: float = math.inf,
                        burstiness: float = 1.0, max_concurrency: int | None = None, seed: int = 0,
                        duration_s: float | None = None, arrival: Arrival | None = None, ramp_up_s: float = 0.0,
                        on_result: Callable[[RequestResult], None] | None = None) -> BenchRun:
    """Send `requests` at the drawn arrival times, at most `max_concurrency` in flight; results in issue order.

    With `duration_s`, cycle through `requests` and stop issuing once that much time has passed (requests in
    flight then finish). An unbounded rate then needs `max_concurrency`: each free slot lets the next one go.
    A request with follow-up turns is a conversation: its turns go one after another, each with the answers
    so far, holding one concurrency slot. A 404 or 405 before any success stops the run (a wrong URL).
    """
    if not requests:
        raise ValueError("no requests to send")
    pacing = duration_s is not None and math.isinf(request_rate)
    if pacing and not max_concurrency:
        raise ValueError("a timed run needs a finite request rate or a max concurrency")
    if any(r.follow_ups for r in requests) and not target.is_chat:
        raise ValueError("multi-turn conversations need the chat endpoint (/v1/chat/completions)")
    semaphore = asyncio.Semaphore(max_concurrency) if max_concurrency else None
    connector = aiohttp.TCPConnector(limit=max_concurrency or 0, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=target.timeout_s)
    outcome = _Outcome()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        bench_start = time.perf_counter()

        def finished(result: RequestResult) -> None:
            outcome.succeeded = outcome.succeeded or result.success
            if not outcome.succeeded and outcome.abort is None and result.error in NOT_FOUND_ERRORS:
                outcome.abort = f"{result.error} from POST {target.url} before any request succeeded"
            if on_result is not None:
                on_result(result)

        async def conversation(request: BenchRequest) -> list[RequestResult]:
            results: list[RequestResult] = []
            history: list[dict[str, str]] = []
            context_tokens = 0
            for turn, step in enumerate((request, *request.follow_ups)):
                if outcome.abort is not None:
                    break
                sent = replace(step, prompt_tokens=context_tokens + step.prompt_tokens) if turn else step
                result = await send_request(session, target, sent, bench_start, history=history)
                result = replace(result, turn=turn) if turn else result
                finished(result)
                results.append(result)
                if not result.success:
                    break  # the rest of a conversation needs this answer
                history += [{"role": "user", "content": step.prompt},
                            {"role": "assistant", "content": result.generated_text}]
                context_tokens = sent.prompt_tokens + result.output_tokens
            return results

        async def one(request: BenchRequest, holds_slot: bool) -> list[RequestResult]:
            if semaphore is None:
                return await conversation(request)
            if not holds_slot:
                await semaphore.acquire()
            try:
                return await conversation(request)
            finally:
                semaphore.release()

        times = arrival_times_s(request_rate, burstiness=burstiness, seed=seed, arrival=arrival, ramp_up_s=ramp_up_s)
        source = iter(requests) if duration_s is None else itertools.cycle(requests)
        tasks, send_times = [], []
        for request, send_at_s in zip(source, times, strict=False):  # times never end
            if (wait_s := send_at_s - (time.perf_counter() - bench_start)) > 0:
                await asyncio.sleep(wait_s)
            if outcome.abort is not None or (duration_s is not None
                                             and time.perf_counter() - bench_start >= duration_s):
                break
            if pacing and semaphore is not None:
                await semaphore.acquire()
                if time.perf_counter() - bench_start >= (duration_s or 0.0):  # the wait for a slot ran out the clock
                    semaphore.release()
                    break
            tasks.append(asyncio.create_task(one(request, pacing)))
            send_times.append(send_at_s)
        results = [result for batch in await asyncio.gather(*tasks) for result in batch]
        return BenchRun(results, time.perf_counter() - bench_start, tuple(send_times), outcome.abort)
