"""Admission called directly (no HTTP): budget holds under concurrency, settlement, TPM reconciliation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from sluice.backends import ChatCompletionRequest, Usage
from sluice.config import KeysConfig
from sluice.cost import BudgetExceeded, KeyAdmission, KeyMetrics, RateLimitExceeded, VirtualKey
from sluice.cost.budget import key_windows, ledger_name
from sluice.cost.limits import used_tokens
from sluice.gateway.context import RequestContext
from sluice.state import MemoryState, RedisState, SharedState

REQUEST = ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}]})


class FixedEstimate:
    """The pricing stage's estimate, pinned: these tests are about what admission does with it."""

    def __init__(self, usd: float | None) -> None:
        self.usd = usd

    def price(self, ctx: RequestContext) -> None:
        return None

    def estimate(self, ctx: RequestContext, request: object) -> float | None:
        return self.usd


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[SharedState]:
    if request.param == "memory":
        yield MemoryState()
        return
    redis_state = RedisState(str(request.getfixturevalue("redis_url")))
    await redis_state.start()
    try:
        yield redis_state
    finally:
        await redis_state.close()


def admission_for(state: SharedState, estimate_usd: float | None) -> KeyAdmission:
    admission = KeyAdmission(state, KeysConfig(), KeyMetrics(CollectorRegistry()), master_key=None)
    admission.pricing = FixedEstimate(estimate_usd)
    return admission


async def seed_spent(state: SharedState, key: VirtualKey, spent_usd: float) -> None:
    for window in key_windows(key, time.time()):
        await state.seed(window.counter.key, spent_usd, window.counter.ttl_s)


def context(key: VirtualKey, index: int = 0) -> RequestContext:
    ctx = RequestContext(f"req-{index}", "chat", None)
    ctx.key, ctx.team = key, key.team
    return ctx


async def run_one(admission: KeyAdmission, key: VirtualKey, index: int, actual_usd: float) -> bool:
    """admit -> (the request runs) -> settle, as the pipeline does; True when it was admitted."""
    ctx = context(key, index)
    try:
        await admission.admit(ctx, REQUEST)
    except BudgetExceeded:
        ctx.cost_usd = 0.0
        admission.settle(ctx)
        return False
    await asyncio.sleep(0)  # others race in while this one is upstream
    ctx.attempts, ctx.cost_usd = 1, actual_usd
    admission.settle(ctx)
    return True


async def test_200_concurrent_requests_on_a_nearly_spent_key_do_not_overspend(state: SharedState) -> None:
    key = VirtualKey(id="k1", name="k", team="t", budget_day_usd=1.0, budget_total_usd=100.0)
    await seed_spent(state, key, 0.95)
    admission = admission_for(state, estimate_usd=0.02)  # an upper bound: each really costs $0.015
    admitted = await asyncio.gather(*(run_one(admission, key, i, 0.015) for i in range(200)))
    await admission.close()  # waits for the background settlements
    day = key_windows(key, time.time())[0].counter.key
    spent = await state.get(day) or 0.0
    assert sum(admitted) >= 2  # $0.05 left: at least two $0.02 holds fit at once
    assert spent <= 1.0 + 0.015 + 1e-9  # at most one request's worth over ...
    assert spent <= 1.0 + 1e-9  # ... and with upper-bound estimates, nothing over
    assert await state.reserved_usd(ledger_name("k1")) == pytest.approx(0, abs=1e-12)


async def test_refused_and_failed_requests_release_their_holds(state: SharedState) -> None:
    key = VirtualKey(id="k2", name="k", budget_total_usd=1.0)
    await seed_spent(state, key, 0.0)
    admission = admission_for(state, estimate_usd=0.6)
    first, second = context(key, 1), context(key, 2)
    await admission.admit(first, REQUEST)
    with pytest.raises(BudgetExceeded) as refused:
        await admission.admit(second, REQUEST)  # 0.6 held + 0.6 > 1.0
    assert refused.value.window == "total" and refused.value.retry_after_s is None
    first.cost_usd = None  # the upstream failed: nothing to pay
    admission.settle(first)
    await admission.close()
    await admission.admit(context(key, 3), REQUEST)  # the hold is gone
    assert await state.get(key_windows(key, time.time())[0].counter.key) == 0.0


async def test_an_unpriced_request_holds_nothing_but_is_refused_once_over(state: SharedState) -> None:
    key = VirtualKey(id="k3", name="k", budget_total_usd=1.0)
    await seed_spent(state, key, 0.999)
    admission = admission_for(state, estimate_usd=None)
    ctx = context(key)
    await admission.admit(ctx, REQUEST)
    assert ctx.reservation is not None and ctx.reservation.hold.amount_usd == 0.0
    ctx.attempts, ctx.cost_usd = 1, 0.01
    admission.settle(ctx)
    await admission.close()
    with pytest.raises(BudgetExceeded):
        await admission.admit(context(key, 1), REQUEST)


async def test_a_key_without_limits_holds_nothing_but_its_models_are_still_checked() -> None:
    from sluice.cost import ModelNotAllowed

    admission = admission_for(MemoryState(), estimate_usd=1.0)
    ctx = context(VirtualKey(id="k4", name="k"))
    await admission.admit(ctx, REQUEST)
    assert ctx.reservation is None
    with pytest.raises(ModelNotAllowed):
        await admission.admit(context(VirtualKey(id="k4", name="k", models=("other",))), REQUEST)


async def test_tpm_is_reconciled_with_the_upstreams_usage() -> None:
    state = MemoryState()
    key = VirtualKey(id="k5", name="k", tpm=100)
    admission = admission_for(state, estimate_usd=None)
    ctx = context(key)
    await admission.admit(ctx, REQUEST)  # counts ~8 prompt tokens up front
    counted = ctx.reservation.counted_prompt_tokens
    assert 0 < counted < 20
    ctx.attempts, ctx.usage = 1, Usage(prompt_tokens=10, completion_tokens=85)
    admission.settle(ctx)
    await admission.close()
    with pytest.raises(RateLimitExceeded) as refused:  # 95 used + ~8 asked > 100
        await admission.admit(context(key, 1), REQUEST)
    assert refused.value.limit == "tpm" and refused.value.retry_after_s is not None


def test_tokens_used_come_from_usage_else_counts_and_are_zero_when_upstream_never_ran() -> None:
    ctx = RequestContext("r", "chat", None)
    assert used_tokens(ctx, counted_prompt=8) == 0  # refused before any attempt
    ctx.attempts = 1
    ctx.usage = Usage(prompt_tokens=10, completion_tokens=5)
    assert used_tokens(ctx, counted_prompt=8) == 15
    ctx.usage = None
    ctx.text_parts = ["hello world"]
    assert used_tokens(ctx, counted_prompt=8) == 8 + 2
    ctx.cache_hit = "exact"
    assert used_tokens(ctx, counted_prompt=8) == 0  # answered from the cache: no upstream tokens


@pytest.mark.parametrize(("budget", "shown"), [(0.005, "$0.005"), (0.02, "$0.02"), (20.0, "$20.00"),
                                               (12.345, "$12.345")])
async def test_the_refusal_names_the_budget_as_it_was_set(budget: float, shown: str) -> None:
    key = VirtualKey(id="k9", name="k", budget_day_usd=budget)
    state = MemoryState()
    await seed_spent(state, key, budget)
    with pytest.raises(BudgetExceeded) as refused:
        await admission_for(state, estimate_usd=0.001).admit(context(key), REQUEST)
    assert f"has reached its daily budget of {shown}:" in refused.value.message
