"""Per-backend concurrency slots; waiting requests are the queue depth that autoscaling reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from time import perf_counter

from prometheus_client import Gauge


class Slots:
    """At most `limit` requests in a backend at once (None: unlimited, and free)."""

    def __init__(self, limit: int | None, queued_gauge: Gauge) -> None:
        self._semaphore = asyncio.Semaphore(limit) if limit else None
        self._queued = queued_gauge
        self.waiting = 0

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[float]:
        """Hold a slot for the block; yields the seconds spent waiting for it."""
        semaphore = self._semaphore
        if semaphore is None:
            yield 0.0
            return
        waited = 0.0
        if semaphore.locked():
            start = perf_counter()
            self.waiting += 1
            self._queued.inc()
            try:
                await semaphore.acquire()
            finally:
                self.waiting -= 1
                self._queued.dec()
            waited = perf_counter() - start
        else:
            await semaphore.acquire()
        try:
            yield waited
        finally:
            semaphore.release()
