"""Run a suite against a model: each case's messages sent (non-streamed) to the target's chat completions, the
answer scored by the case's scorers, one `CaseResult` per case and repeat. A failed call is recorded as an
errored result, never lost, and the run goes on.

The target is a model on a gateway (`{base_url}/v1/chat/completions`, every request with `x-sluice-cache:
bypass`, plus any `headers`, e.g. `x-sluice-route: candidate` to pin a deployment's side), or with `raw` a plain
OpenAI-compatible API root (`{base_url}/chat/completions`, no sluice headers). Model-backed scorers (judge,
similarity, Llama Guard) call the gateway at `judge_url` (default: `base_url`, unless raw), concurrently with
other cases and within the run's concurrency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import aiohttp
import orjson

from sluice.evals.results import CaseResult, ScoreResult
from sluice.evals.score import AnyScorer, ModelScorerSpec, Score
from sluice.evals.scorer_client import MAX_ERROR_CHARS, ScorerClient, openai_error_message
from sluice.evals.suite import Case, Suite

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class GatewayUnreachable(OSError):
    """Nothing answers at the gateway's base URL."""


class BackendUnreachable(GatewayUnreachable):
    """A raw OpenAI-compatible API root that does not answer `GET /models` (a GatewayUnreachable, so a caller
    that handles one handles both)."""


async def check_gateway(base_url: str, *, timeout_s: float = 10) -> None:
    """Raise `GatewayUnreachable` unless something answers HTTP at `base_url` (any status will do)."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session, \
                session.get(base_url.rstrip("/") + "/health/live") as response:
            await response.read()
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        raise GatewayUnreachable(f"cannot reach the gateway at {base_url} ({error or type(error).__name__})") \
            from None


async def check_backend(base_url: str, *, api_key: str | None = None, timeout_s: float = 10) -> None:
    """Raise `BackendUnreachable` unless `GET {base_url}/models` answers 200 at an OpenAI-compatible API root
    (`http://host:8000/v1`): a wrong root (a 404) or a refused key (a 401) is found before any case runs."""
    url = base_url.rstrip("/") + "/models"
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session, \
                session.get(url, headers=headers) as response:
            body = await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        raise BackendUnreachable(f"cannot reach the API at {base_url} ({error or type(error).__name__})") from None
    if status != 200:
        hint = " (is the base URL the API root, such as http://host:8000/v1?)" if status == 404 else ""
        raise BackendUnreachable(f"GET {url} answered HTTP {status}: {openai_error_message(body)}{hint}")


async def run_suite(suite: Suite, *, base_url: str, model: str, api_key: str | None = None, concurrency: int = 4,
                    repeats: int = 1, timeout_s: float = 120,
                    on_result: Callable[[CaseResult], None] | None = None,
                    done: Collection[tuple[str, int]] = (), headers: Mapping[str, str] = _EMPTY,
                    params: Mapping[str, Any] = _EMPTY, raw: bool = False, judge_url: str | None = None,
                    judge_api_key: str | None = None) -> list[CaseResult]:
    """The results of every (case, repeat) not in `done`, in suite order; `on_result` is called with each as it
    finishes (to write it down, to show progress).

    `headers` are added to every request to the target; `params` are default generation params under each
    case's own (the case's win). With `raw`, `base_url` is an OpenAI-compatible API root. Model-backed scorers
    call `judge_url` (default `base_url` unless raw) with `judge_api_key` (default `api_key` unless raw or
    another judge_url is given); a raw run that needs them and has no `judge_url` is a ValueError before any
    call."""
    if concurrency < 1 or repeats < 1:
        raise ValueError("concurrency and repeats must be at least 1")
    todo = [(case, repeat) for repeat in range(repeats) for case in suite.cases
            if (case.id or "", repeat) not in done]
    scorer_url = judge_url or (None if raw else base_url)
    if scorer_url is None:
        needing = sorted({scorer.type for case, _ in todo for scorer in suite.scorers[case.id or ""]
                          if isinstance(scorer, ModelScorerSpec) and scorer.needs_gateway})
        if needing:
            raise ValueError(f"the {', '.join(needing)} scorer(s) call a model through a gateway, and a raw target "
                             "is not one: give judge_url (a sluice gateway's base URL)")
    # Every case (and every repeat) is asked of the model, never answered from the gateway's response cache.
    request_headers = {**({} if raw else {"x-sluice-cache": "bypass"}), **headers, "content-type": "application/json",
                       **({"authorization": f"Bearer {api_key}"} if api_key else {})}
    url = base_url.rstrip("/") + ("/chat/completions" if raw else "/v1/chat/completions")
    if judge_api_key is None and judge_url is None and not raw:
        judge_api_key = api_key  # the same gateway, the same key
    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        target = _Target(session, url, request_headers, model, dict(params))
        client = ScorerClient(scorer_url, session, api_key=judge_api_key) if scorer_url is not None else None

        async def one(case: Case, repeat: int) -> CaseResult:
            async with slots:  # the scoring too: a judge's calls count against the run's concurrency
                result = await _run_case(target, client, suite.scorers[case.id or ""], case, repeat)
            if on_result is not None:
                on_result(result)
            return result

        return list(await asyncio.gather(*(one(case, repeat) for case, repeat in todo)))


@dataclass(slots=True, frozen=True)
class _Target:
    """Where a run's answers come from: the URL, the headers each request carries, the model, default params."""

    session: aiohttp.ClientSession
    url: str
    headers: dict[str, str]
    model: str
    params: dict[str, Any]

    def body(self, case: Case) -> bytes:
        return orjson.dumps({**self.params, **case.params, "model": self.model, "stream": False,
                             "messages": [message.model_dump(exclude_none=True) for message in case.messages or ()]})


async def _run_case(target: _Target, client: ScorerClient | None, scorers: tuple[AnyScorer, ...], case: Case,
                    repeat: int) -> CaseResult:
    case_id = case.id or ""
    started = time.perf_counter()
    errored = {"case_id": case_id, "repeat": repeat, "answer": None, "scores": (), "passed": False,
               "tags": tuple(case.tags)}
    try:
        async with target.session.post(target.url, data=target.body(case), headers=target.headers) as response:
            raw = await response.read()
            latency_s = time.perf_counter() - started
            request_id = response.headers.get("x-request-id")
            if response.status != 200:
                return CaseResult(**errored, latency_s=latency_s, request_id=request_id,
                                  error=f"HTTP {response.status}: {openai_error_message(raw)}")
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
    scores = await asyncio.gather(*(_scored(scorer, answer, case, client) for scorer in scorers))
    results = tuple(ScoreResult(scorer.type, score.value, score.passed, score.reason, score.error)
                    for scorer, score in zip(scorers, scores, strict=True))
    return CaseResult(case_id=case_id, repeat=repeat, answer=answer, scores=results,
                      passed=all(score.passed for score in results), latency_s=latency_s,
                      prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"),
                      cost_usd=_float(cost), request_id=request_id, tags=tuple(case.tags))


async def _scored(scorer: AnyScorer, answer: str, case: Case, client: ScorerClient | None) -> Score:
    if isinstance(scorer, ModelScorerSpec):
        return await scorer.ascore(answer, case, client)
    return scorer.score(answer, case)  # type: ignore[union-attr]  # a pure scorer


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


__all__ = ["BackendUnreachable", "GatewayUnreachable", "check_backend", "check_gateway", "run_suite"]
