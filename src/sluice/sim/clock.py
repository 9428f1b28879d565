"""Clocks the engine runs on: the monotonic wall clock (the server) and a virtual one (tests, what-ifs)."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on this clock (only differences mean anything)."""
        ...

    async def sleep_until(self, deadline_s: float) -> None:
        """Return once `now() >= deadline_s`; always yields to the event loop at least once."""
        ...


class MonotonicClock:
    """Real time: steps take as long as the cost model says they do."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep_until(self, deadline_s: float) -> None:
        await asyncio.sleep(max(0.0, deadline_s - time.monotonic()))


class VirtualClock:
    """Simulated time: sleeping jumps the clock forward at once, so a run takes no wall time at all.

    Tasks already woken (a consumer handed a token) run before the jump, so they read the time of
    the event that woke them.
    """

    def __init__(self, start_s: float = 0.0) -> None:
        self._now_s = start_s

    def now(self) -> float:
        return self._now_s

    def advance_to(self, deadline_s: float) -> None:
        self._now_s = max(self._now_s, deadline_s)

    async def sleep_until(self, deadline_s: float) -> None:
        await asyncio.sleep(0)
        self.advance_to(deadline_s)
        await asyncio.sleep(0)
