"""Upstream attempts for one request: retries on the model's replicas, then its fallback models, in order.

The caller gives `once(target)`: one try that ends when the answer has *started* (a whole answer, or a
stream's first output chunk) — nothing has reached the client before it returns, so every failure inside
it may be retried. What happens after it returns (the rest of a stream) is never retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from sluice.config import FailureKind
from sluice.errors import SluiceError, UpstreamRateLimited, UpstreamTimeout
from sluice.routing.breaker import BreakerState
from sluice.routing.errors import NoHealthyTarget
from sluice.routing.policy import backoff_s, counts_against_target, failure_kind
from sluice.routing.pool import Pool
from sluice.routing.router import Router
from sluice.routing.target import Target, TargetState

if TYPE_CHECKING:
    from sluice.gateway.context import RequestContext

T = TypeVar("T")
log = logging.getLogger("sluice.routing")
_THROTTLE_DEFAULT_S = 1.0  # a 429 without retry-after: prefer other replicas this long
_THROTTLE_MAX_S = 60.0


class Attempt:
    """One try on one target, from its start to its outcome, which feeds the breaker, balancer and metrics."""

    __slots__ = ("_probe", "_router", "ended", "started", "target")

    def __init__(self, router: Router, target: Target) -> None:
        self._router = router
        self.target = target
        state = target.state
        state.outstanding += 1
        self.started = now = router.clock()
        self._probe = state.breaker.state is not BreakerState.CLOSED and state.breaker.acquire(now)
        self.ended = False

    def end(self, error: BaseException | None) -> None:
        """The try is over (for a stream: its last chunk, or its failure). Idempotent."""
        if self.ended:
            return
        self.ended = True
        state = self.target.state
        state.outstanding -= 1
        if error is None:
            state.breaker.record(self._router.clock(), False, probe=self._probe)
            state.successes += 1
            return
        kind = failure_kind(error)
        now = self._router.clock()
        state.breaker.record(now, counts_against_target(kind), probe=self._probe)
        outcome = kind or "aborted"
        state.failures[outcome] = state.failures.get(outcome, 0) + 1
        if isinstance(error, UpstreamRateLimited):  # prefer other replicas until its retry-after has passed
            wait_s = error.retry_after_s if error.retry_after_s is not None else _THROTTLE_DEFAULT_S
            state.throttled_until = now + min(wait_s, _THROTTLE_MAX_S)


async def call(router: Router, ctx: RequestContext, pool: Pool, once: Callable[[Target], Awaitable[T]]) -> T:
    """`once` with retries and fallbacks; the winning attempt is ended at once (whole answers)."""
    deadline = ctx.arrival + pool.policy.retry.total_timeout_s if pool.policy.retry.total_timeout_s else None
    try:
        result, attempt = await _on_pool(router, ctx, pool, once, deadline)
    except SluiceError as error:
        result, attempt = await _fall_back(router, ctx, pool, once, deadline, error)
    attempt.end(None)
    return result


async def open_attempt(router: Router, ctx: RequestContext, pool: Pool, once: Callable[[Target], Awaitable[T]],
                       avoid: tuple[TargetState, ...] = ()) -> tuple[T, Attempt]:
    """`once` with retries and fallbacks; returns its result and the attempt, still open (streams end it).

    `avoid`: replicas not to use (a stream being resumed avoids the one that broke it); with no other replica
    or fallback left this raises NoHealthyTarget.
    """
    deadline = ctx.arrival + pool.policy.retry.total_timeout_s if pool.policy.retry.total_timeout_s else None
    try:
        return await _on_pool(router, ctx, pool, once, deadline, avoid)
    except SluiceError as error:
        return await _fall_back(router, ctx, pool, once, deadline, error, avoid)


async def _fall_back(router: Router, ctx: RequestContext, pool: Pool, once: Callable[[Target], Awaitable[T]],
                     deadline: float | None, error: SluiceError, avoid: tuple[TargetState, ...] = (),
                     ) -> tuple[T, Attempt]:
    """The model's own replicas failed with `error`: its fallback models in order, while `fallback_on` allows."""
    policy = pool.policy
    if not policy.fallbacks or failure_kind(error) is None:
        raise error
    last = error
    tried = {pool.model}  # each model at most once: a router model as a fallback may choose one already tried
    for fallback in policy.fallbacks:
        kind = failure_kind(last)
        if kind not in policy.fallback_on or (deadline is not None and router.clock() >= deadline):
            break
        fallback_pool = router.fallback_pool(fallback, ctx.endpoint, ctx.user, ctx.headers, ctx.request)
        if fallback_pool is None:
            log.warning("request %s: fallback `%s` of `%s` cannot serve /v1/%s; skipped", ctx.request_id,
                        fallback, pool.model, ctx.endpoint)
            continue
        if fallback_pool.model in tried:
            log.info("request %s: fallback `%s` of `%s` chose `%s`, already tried; skipped", ctx.request_id,
                     fallback, pool.model, fallback_pool.model)
            continue
        tried.add(fallback_pool.model)
        if fallback_pool.model != fallback:  # a router model chose it
            ctx.annotate("router.model", fallback_pool.model)  # the x-sluice-routed-to header
        log.info("request %s: `%s` failed (%s); falling back to `%s`", ctx.request_id, pool.model, kind, fallback)
        if router.metrics is not None:
            router.metrics.fallback(pool.model, fallback, kind)
        try:
            return await _on_pool(router, ctx, fallback_pool, once, deadline, avoid)
        except SluiceError as error:
            if failure_kind(error) is None:
                raise
            last = error
    raise last


async def _on_pool(router: Router, ctx: RequestContext, pool: Pool, once: Callable[[Target], Awaitable[T]],
                   deadline: float | None, avoid: tuple[TargetState, ...] = ()) -> tuple[T, Attempt]:
    policy = pool.policy
    retry = policy.retry
    clock = router.clock
    target = pool.pick(clock(), router.rng, avoid=avoid)
    if target is None:
        raise NoHealthyTarget(pool.model)
    tried: list[TargetState] = list(avoid)
    retries = 0
    while True:
        ctx.target = target
        ctx.attempts += 1
        attempt = Attempt(router, target)
        try:
            if deadline is None and retry.per_try_timeout_s is None:
                result = await once(target)
            else:
                timeout_s = _timeout_s(retry.per_try_timeout_s, deadline, attempt.started)
                result = await _within(once(target), timeout_s, target)
        except BaseException as error:
            attempt.end(error)
            kind = failure_kind(error)
            if kind is None or kind not in policy.retry_on or retries + 1 >= retry.max_attempts:
                raise
            tried.append(target.state)
            step = _next_try(router, pool, error, kind, tried, retries)
            if step is None or (deadline is not None and clock() + step[1] >= deadline):
                raise
            next_target, delay_s = step
            last_error = error
            log.info("request %s: %s from %s; retrying on %s in %.3f s", ctx.request_id, kind, target.name,
                     next_target.name, delay_s)
            if router.metrics is not None:
                router.metrics.retry(pool.model, kind, delay_s)
        else:
            target.state.observe_latency(clock() - attempt.started)
            return result, attempt
        if delay_s > 0:
            await asyncio.sleep(delay_s)
            ctx.upstream_s += delay_s  # waiting on the upstream's account, not the gateway's overhead
            if not next_target.state.usable(clock()):  # its breaker may have opened meanwhile
                again = pool.pick(clock(), router.rng)
                if again is None:
                    raise last_error
                next_target = again
        retries += 1
        target = next_target


def _next_try(router: Router, pool: Pool, error: BaseException, kind: FailureKind, tried: list[TargetState],
              retries: int) -> tuple[Target, float] | None:
    """Where the next try goes and how long to wait first; None when there is no retry to make.

    Another replica when there is one (after backoff); else the same one, for the kinds that allow it —
    after a 429 that means waiting its retry-after, if no longer than `retry_after_max_s`.
    """
    retry = pool.policy.retry
    now = router.clock()
    retry_after_s = error.retry_after_s if isinstance(error, UpstreamRateLimited) else None
    other = pool.pick(now, router.rng, avoid=tried)
    if other is not None:
        return other, backoff_s(retry, retries, router.rng)
    if kind not in pool.policy.same_target_on:
        return None
    again = pool.pick(now, router.rng)
    if again is None:
        return None
    if retry_after_s is not None:
        return (again, retry_after_s) if retry_after_s <= retry.retry_after_max_s else None
    return again, backoff_s(retry, retries, router.rng)


def _timeout_s(per_try_s: float | None, deadline: float | None, now: float) -> float:
    left_s = float("inf") if deadline is None else max(0.0, deadline - now)
    return left_s if per_try_s is None else min(per_try_s, left_s)


async def _within(attempt: Awaitable[T], timeout_s: float, target: Target) -> T:
    try:
        async with asyncio.timeout(timeout_s):
            return await attempt
    except TimeoutError:
        raise UpstreamTimeout(f"`{target.name}` did not answer within {timeout_s:.3g} s "
                              "(routing per-try / total timeout)") from None


__all__ = ["Attempt", "call", "open_attempt"]
