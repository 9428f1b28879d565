"""Fixtures: the same shared-state contract, run on `MemoryState` and on `RedisState` against a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sluice.state import MemoryState, RedisState, SharedState


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[SharedState]:
    if request.param == "memory":
        yield MemoryState()
        return
    url = request.getfixturevalue("redis_url")
    redis_state = RedisState(url)
    await redis_state.start()
    try:
        yield redis_state
    finally:
        await redis_state.close()


class FakeClock:
    """A monotonic clock the test moves by hand: refill and expiry without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
