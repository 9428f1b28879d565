"""GCRA rate windows: burst to the limit, exact retry-after, all-or-nothing across rules, reconcile."""

from __future__ import annotations

import asyncio

import pytest

from sluice.state import Granted, MemoryState, RateRefused, RateRule, SharedState
from tests.state.conftest import FakeClock


def rpm(limit: float, cost: float = 1, key: str = "{k}:rpm") -> RateRule:
    return RateRule(key, limit, 60.0, cost)


async def test_a_full_minute_of_requests_passes_at_once_then_the_next_is_refused_with_retry_after(
        state: SharedState) -> None:
    decisions = [await state.acquire([rpm(5)]) for _ in range(6)]
    assert all(isinstance(d, Granted) for d in decisions[:5])
    refused = decisions[5]
    assert isinstance(refused, RateRefused) and refused.rule == 0
    # one request's worth (60 s / 5) refills first: the wait is at most that, and more than nothing
    assert refused.retry_after_s is not None and 0 < refused.retry_after_s <= 12.0


async def test_refill_is_continuous_one_slot_per_interval() -> None:
    clock = FakeClock()
    state = MemoryState(clock)
    for _ in range(5):
        assert isinstance(await state.acquire([rpm(5)]), Granted)
    refused = await state.acquire([rpm(5)])
    assert isinstance(refused, RateRefused) and refused.retry_after_s == pytest.approx(12.0)
    clock.advance(11.9)
    assert isinstance(await state.acquire([rpm(5)]), RateRefused)
    clock.advance(0.1)
    assert isinstance(await state.acquire([rpm(5)]), Granted)
    assert isinstance(await state.acquire([rpm(5)]), RateRefused)
    clock.advance(60)  # idle for a minute: the whole burst is back, not more
    assert [isinstance(await state.acquire([rpm(5)]), Granted) for _ in range(7)] == [True] * 5 + [False] * 2


async def test_rules_are_all_or_nothing(state: SharedState) -> None:
    requests = rpm(10, key="{k}:rpm")
    tokens = RateRule("{k}:tpm", 100, 60.0, 60)
    assert isinstance(await state.acquire([requests, tokens]), Granted)
    refused = await state.acquire([requests, tokens])  # 120 tokens > 100: refused on the token rule
    assert isinstance(refused, RateRefused) and refused.rule == 1
    # the refused call took no request slot: 9 of the 10 are still there
    granted = [await state.acquire([requests]) for _ in range(10)]
    assert sum(isinstance(d, Granted) for d in granted) == 9


async def test_a_cost_above_the_whole_limit_can_never_pass(state: SharedState) -> None:
    refused = await state.acquire([RateRule("{k}:tpm", 100, 60.0, 101)])
    assert refused == RateRefused(0, None)


async def test_settle_gives_back_or_charges_the_difference(state: SharedState) -> None:
    tokens = RateRule("{k}:tpm", 100, 60.0, 80)
    assert isinstance(await state.acquire([tokens]), Granted)
    await state.settle([RateRule("{k}:tpm", 100, 60.0, -70)])  # the request used 10, not 80
    assert isinstance(await state.acquire([RateRule("{k}:tpm", 100, 60.0, 85)]), Granted)
    await state.settle([RateRule("{k}:tpm", 100, 60.0, 50)])  # it used 135: now in debt
    assert isinstance(await state.acquire([RateRule("{k}:tpm", 100, 60.0, 1)]), RateRefused)


async def test_concurrent_acquires_never_exceed_the_limit(state: SharedState) -> None:
    decisions = await asyncio.gather(*(state.acquire([rpm(30)]) for _ in range(200)))
    assert sum(isinstance(d, Granted) for d in decisions) == 30


async def test_counters_add_and_read(state: SharedState) -> None:
    assert await state.get("{k}:count") is None
    assert await state.incr("{k}:count", 2.5, ttl_s=60) == 2.5
    assert await state.incr("{k}:count", 1, ttl_s=60) == 3.5
    assert await state.get("{k}:count") == 3.5
    assert await state.seed("{k}:count", 100, ttl_s=60) is False
    assert await state.seed("{k}:other", 7, ttl_s=60) is True
    assert await state.get("{k}:other") == 7


async def test_memory_counters_expire() -> None:
    clock = FakeClock()
    state = MemoryState(clock)
    await state.incr("c", 1, ttl_s=10)
    clock.advance(9.9)
    assert await state.get("c") == 1
    clock.advance(0.1)
    assert await state.get("c") is None
