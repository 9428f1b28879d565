"""Run a suite against a model on a gateway: each case's messages sent (non-streamed) to
`/v1/chat/completions`, the answer scored by the case's scorers, one `CaseResult` per case and repeat. A failed
call is recorded as an errored result, never lost, and the run goes on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from typing import Any

import aiohttp
import orjson

from sluice.evals.results import CaseResult, ScoreResult
from sluice.evals.suite import Case, Suite

MAX_ERROR_CHARS = 300


class GatewayUnreachable(OSError):
    """Nothing answers at the gateway's base URL."""


async def check_gateway(base_url: str, *, timeout_s: float = 10) -> None:
    """Raise `GatewayUnreachable` unless something answers HTTP at `base_url` (any status will do)."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session, \
                session.get(base_url.rstrip("/") + "/health/live") as response:
            await response.read()
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        raise GatewayUnreachable(f"cannot reach the gateway at {base_url} ({error or type(error).__name__})") \
            from None


async def run_suite(suite: Suite, *, base_url: str, model: str, api_key: str | None = None, concurrency: int = 4,
                    repeats: int = 1, timeout_s: float = 120,
                    on_result: Callable[[CaseResult], None] | None = None,
                    done: Collection[tuple[str, int]] = ()) -> list[CaseResult]:
    """The results of every (case, repeat) not in `done`, in suite order; `on_result` is called with each as it
    finishes (to write it down, to show progress)."""
    if concurrency < 1 or repeats < 1:
        raise ValueError("concurrency and repeats must be at least 1")
    # Every case (and every repeat) is asked of the model, never answered from the gateway's response cache.
    headers = {"x-sluice-cache": "bypass", **({"authorization": f"Bearer {api_key}"} if api_key else {})}
    url = base_url.rstrip("/") + "/v1/chat/completions"
    todo = [(case, repeat) for repeat in range(repeats) for case in suite.cases
            if (case.id or "", repeat) not in done]
    slots = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:

        async def one(case: Case, repeat: int) -> CaseResult:
            async with slots:
                result = await _run_case(session, url, model, suite, case, repeat)
            if on_result is not None:
                on_result(result)
            return result

        return list(await asyncio.gather(*(one(case, repeat) for case, repeat in todo)))


async def _run_case(session: aiohttp.ClientSession, url: str, model: str, suite: Suite, case: Case,
                    repeat: int) -> CaseResult:
    case_id = case.id or ""
    body = {**case.params, "model": model, "stream": False,
            "messages": [message.model_dump(exclude_none=True) for message in case.messages or ()]}
    started = time.perf_counter()
    errored = {"case_id": case_id, "repeat": repeat, "answer": None, "scores": (), "passed": False,
               "tags": tuple(case.tags)}
    try:
        async with session.post(url, data=orjson.dumps(body),
                                headers={"content-type": "application/json"}) as response:
            raw = await response.read()
            latency_s = time.perf_counter() - started
            request_id = response.headers.get("x-request-id")
            if response.status != 200:
                return CaseResult(**errored, latency_s=latency_s, request_id=request_id,
                                  error=f"HTTP {response.status}: {_error_message(raw)}")
            cost = response.headers.get("x-sluice-cost-usd")
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        return CaseResult(**errored, latency_s=time.perf_counter() - started,
                          error=f"connection: {error or type(error).__name__}"[:MAX_ERROR_CHARS])
    try:
        payload = orjson.loads(raw)
        answer = payload["choices"][0]["message"].get("content") or ""
        usage = payload.get("usage") or {}
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
        return CaseResult(**errored, latency_s=latency_s, request_id=request_id,
                          error=f"not a chat completion: {raw[:200].decode(errors='replace')}")
    scores = []
    for scorer in suite.scorers[case_id]:
        score = scorer.score(answer, case)
        scores.append(ScoreResult(scorer.type, score.value, score.passed, score.reason))
    return CaseResult(case_id=case_id, repeat=repeat, answer=answer, scores=tuple(scores),
                      passed=all(score.passed for score in scores), latency_s=latency_s,
                      prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"),
                      cost_usd=_float(cost), request_id=request_id, tags=tuple(case.tags))


def _error_message(raw: bytes) -> str:
    """The OpenAI-style `error.message` of an error body, else the body's start."""
    try:
        message: Any = orjson.loads(raw)["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = raw.decode(errors="replace")
    return str(message)[:MAX_ERROR_CHARS]


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


__all__ = ["GatewayUnreachable", "check_gateway", "run_suite"]
