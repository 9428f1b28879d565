"""Budget reservations: seed, reserve only within every window, settle to the actual cost, expire."""

from __future__ import annotations

import asyncio

import pytest

from sluice.state import (
    BudgetHold,
    BudgetRefused,
    BudgetSpend,
    BudgetWindow,
    Granted,
    MemoryState,
    RedisState,
    SharedState,
    Unseeded,
)
from tests.state.conftest import FakeClock

DAY = BudgetWindow("{k}:spend:d:20261125", 1.00, ttl_s=3 * 86400)
TOTAL = BudgetWindow("{k}:spend:t", 10.00, ttl_s=30 * 86400)
COUNT = BudgetWindow("{k}:spend:m:202611", None, ttl_s=62 * 86400)


def hold(rid: str, usd: float, windows: tuple[BudgetWindow, ...] = (DAY, TOTAL), hold_s: float = 600) -> BudgetHold:
    return BudgetHold("{k}:holds", windows, rid, usd, hold_s)


def spend(rid: str, usd: float, windows: tuple[BudgetWindow, ...] = (DAY, TOTAL)) -> BudgetSpend:
    return BudgetSpend("{k}:holds", windows, rid, usd)


async def test_unseeded_windows_are_reported_and_nothing_is_taken(state: SharedState) -> None:
    await state.seed(TOTAL.key, 2.0, TOTAL.ttl_s)
    assert await state.acquire([], hold("r1", 0.5)) == Unseeded((0,))
    assert await state.reserved_usd("{k}:holds") == 0


async def test_reserve_refuses_past_any_window_and_settle_replaces_the_hold(state: SharedState) -> None:
    await state.seed(DAY.key, 0.70, DAY.ttl_s)
    await state.seed(TOTAL.key, 5.00, TOTAL.ttl_s)
    granted = await state.acquire([], hold("r1", 0.20))
    assert isinstance(granted, Granted) and granted.budget_used_ratio == pytest.approx(0.9)
    assert await state.reserved_usd("{k}:holds") == pytest.approx(0.20)
    refused = await state.acquire([], hold("r2", 0.15))  # 0.70 + 0.20 held + 0.15 > 1.00
    assert isinstance(refused, BudgetRefused)
    assert (refused.window, refused.limit_usd) == (0, 1.00)
    assert abs(refused.spent_usd - 0.70) < 1e-9 and abs(refused.reserved_usd - 0.20) < 1e-9
    await state.settle([], spend("r1", 0.05))  # it cost less than its estimate
    assert await state.reserved_usd("{k}:holds") == 0
    assert abs((await state.get(DAY.key) or 0) - 0.75) < 1e-9
    assert abs((await state.get(TOTAL.key) or 0) - 5.05) < 1e-9
    assert isinstance(await state.acquire([], hold("r3", 0.25)), Granted)  # exactly up to the limit
    assert isinstance(await state.acquire([], hold("r4", 0.01)), BudgetRefused)


async def test_a_window_without_a_limit_only_counts(state: SharedState) -> None:
    for window in (DAY, TOTAL, COUNT):
        await state.seed(window.key, 0.0, window.ttl_s)
    assert isinstance(await state.acquire([], hold("r1", 0.5, (DAY, TOTAL, COUNT))), Granted)
    await state.settle([], spend("r1", 0.5, (DAY, TOTAL, COUNT)))
    assert await state.get(COUNT.key) == 0.5


async def test_zero_estimate_holds_nothing_but_the_actual_cost_still_counts(state: SharedState) -> None:
    await state.seed(DAY.key, 0.99, DAY.ttl_s)
    await state.seed(TOTAL.key, 0.0, TOTAL.ttl_s)
    assert isinstance(await state.acquire([], hold("r1", 0.0)), Granted)
    await state.settle([], spend("r1", 0.02))
    assert isinstance(await state.acquire([], hold("r2", 0.0)), BudgetRefused)  # 1.01 spent: over


async def test_an_unsettled_reservation_expires(state: SharedState) -> None:
    await state.seed(DAY.key, 0.0, DAY.ttl_s)
    await state.seed(TOTAL.key, 0.0, TOTAL.ttl_s)
    assert isinstance(await state.acquire([], hold("dead-replica", 0.9, hold_s=0)), Granted)
    # the replica holding 0.9 never settles; its hold has expired, so this fits
    assert isinstance(await state.acquire([], hold("r2", 0.9)), Granted)
    assert abs(await state.reserved_usd("{k}:holds") - 0.9) < 1e-9


async def test_memory_reservation_expiry_follows_the_clock() -> None:
    clock = FakeClock()
    state = MemoryState(clock)
    await state.seed(DAY.key, 0.0, DAY.ttl_s)
    await state.seed(TOTAL.key, 0.0, TOTAL.ttl_s)
    assert isinstance(await state.acquire([], hold("a", 0.9, hold_s=60)), Granted)
    clock.advance(59)
    assert isinstance(await state.acquire([], hold("b", 0.9)), BudgetRefused)
    clock.advance(1)
    assert isinstance(await state.acquire([], hold("b", 0.9)), Granted)


async def test_settle_after_expiry_still_counts_the_cost(state: SharedState) -> None:
    await state.seed(DAY.key, 0.0, DAY.ttl_s)
    await state.seed(TOTAL.key, 0.0, TOTAL.ttl_s)
    assert isinstance(await state.acquire([], hold("slow", 0.3, hold_s=0)), Granted)
    assert isinstance(await state.acquire([], hold("other", 0.1)), Granted)  # purges the expired hold
    await state.settle([], spend("slow", 0.3))
    assert abs((await state.get(DAY.key) or 0) - 0.3) < 1e-9
    assert abs(await state.reserved_usd("{k}:holds") - 0.1) < 1e-9


async def _spend_concurrently(states: list[SharedState], requests: int, estimate: float, actual: float) -> int:
    """`requests` concurrent reserve -> settle cycles spread over `states` (replicas); returns how many ran."""
    granted = 0

    async def one(index: int) -> None:
        nonlocal granted
        state = states[index % len(states)]
        rid = f"req-{index}"
        decision = await state.acquire([], hold(rid, estimate))
        if isinstance(decision, Granted):
            granted += 1
            await asyncio.sleep(0)  # let the others race while this one "runs"
            await state.settle([], spend(rid, actual))

    await asyncio.gather(*(one(i) for i in range(requests)))
    return granted


async def test_200_concurrent_requests_on_a_nearly_spent_budget_never_overspend(state: SharedState) -> None:
    await state.seed(DAY.key, 0.95, DAY.ttl_s)  # 5 cents left
    await state.seed(TOTAL.key, 0.0, TOTAL.ttl_s)
    granted = await _spend_concurrently([state], 200, estimate=0.012, actual=0.010)
    assert granted == 4  # 4 x 0.012 = 0.048 fits in 0.05; a fifth hold would not
    spent = await state.get(DAY.key) or 0
    assert spent <= DAY.limit_usd + 1e-9  # type: ignore[operator]
    assert abs(spent - 0.99) < 1e-9


async def test_three_replicas_sharing_redis_hold_one_budget(redis_url: str) -> None:
    replicas = [RedisState(redis_url) for _ in range(3)]
    for replica in replicas:
        await replica.start()
    try:
        await replicas[0].seed(DAY.key, 0.95, DAY.ttl_s)
        await replicas[0].seed(TOTAL.key, 0.0, TOTAL.ttl_s)
        granted = await _spend_concurrently(list(replicas), 200, estimate=0.01, actual=0.01)
        spent = await replicas[1].get(DAY.key) or 0
    finally:
        for replica in replicas:
            await replica.close()
    assert granted == 5
    assert abs(spent - 1.00) < 1e-9
