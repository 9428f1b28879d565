"""Semantic-cache storage in one process: the vector index (on its own worker thread) and the answers."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from sluice.cache.index import Match, SemanticIndex
from sluice.cache.metrics import CacheMetrics

T = TypeVar("T")


@dataclass(slots=True, frozen=True)
class SemanticHit:
    entry: bytes  # an exact.encode_entry() blob
    similarity: float
    text: str  # the prompt the entry answered (cache/guard.py compares it with the query)


class SemanticStore(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def find(self, scope: str, vector: np.ndarray, threshold: float, now: float) -> SemanticHit | None: ...

    async def add(self, scope: str, vector: np.ndarray, entry: bytes, ttl_s: float, now: float, *,
                  text: str) -> None: ...

    async def sweep(self, now: float) -> int:
        """Remove expired entries from the index; returns how many."""

    @property
    def entries(self) -> int: ...


class IndexWorker:
    """Owns a `SemanticIndex` and runs every operation on it on one dedicated thread, in order."""

    def __init__(self, max_entries: int, metrics: CacheMetrics) -> None:
        self.max_entries = max_entries
        self.metrics = metrics
        self.index: SemanticIndex | None = None  # made on the first vector, when the dimension is known
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sluice-semantic-index")

    @property
    def entries(self) -> int:
        return len(self.index) if self.index is not None else 0

    async def run(self, operation: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: operation(*args, **kwargs))

    def of(self, dim: int) -> SemanticIndex:
        """The index (worker thread only)."""
        if self.index is None:
            self.index = SemanticIndex(dim, max_entries=self.max_entries)
        return self.index

    async def search(self, scope: str, vector: np.ndarray, threshold: float, now: float) -> Match | None:
        if self.index is None:
            return None
        return await self.run(self.of(len(vector)).search, scope, vector, threshold=threshold, now=now)

    async def add(self, scope: str, key: int, vector: np.ndarray, expires_at: float, now: float) -> list[int]:
        return await self.run(lambda: self.of(len(vector)).add(scope, key, vector, expires_at=expires_at, now=now))

    async def remove(self, keys: list[int]) -> list[int]:
        if self.index is None or not keys:
            return []
        return await self.run(self.index.remove, keys)

    async def expire(self, now: float) -> list[int]:
        if self.index is None:
            return []
        return await self.run(self.index.expire, now)

    def record_evictions(self, reason: str, count: int) -> None:
        if count:
            self.metrics.evictions.labels("semantic", reason).inc(count)
        self.metrics.entries.labels("semantic").set(self.entries)

    def close(self) -> None:
        self._executor.shutdown(wait=False)  # queued operations still finish: no caller sees a cancel


class MemorySemanticStore:
    """One replica: answers in a dict keyed like the index, evicted with it."""

    def __init__(self, max_entries: int, metrics: CacheMetrics) -> None:
        self.worker = IndexWorker(max_entries, metrics)
        self._answers: dict[int, tuple[bytes, str]] = {}  # key -> (entry, the prompt it answered)
        self._keys = itertools.count(1)

    @property
    def entries(self) -> int:
        return self.worker.entries

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self.worker.close()

    async def find(self, scope: str, vector: np.ndarray, threshold: float, now: float) -> SemanticHit | None:
        match = await self.worker.search(scope, vector, threshold, now)
        if match is None:
            return None
        found = self._answers.get(match.key)
        return SemanticHit(found[0], match.similarity, found[1]) if found is not None else None

    async def add(self, scope: str, vector: np.ndarray, entry: bytes, ttl_s: float, now: float, *,
                  text: str) -> None:
        key = next(self._keys)
        self._answers[key] = (entry, text)
        evicted = await self.worker.add(scope, key, vector, now + ttl_s, now)
        for old in evicted:
            self._answers.pop(old, None)
        self.worker.record_evictions("capacity", len(evicted))

    async def sweep(self, now: float) -> int:
        expired = await self.worker.expire(now)
        for key in expired:
            self._answers.pop(key, None)
        self.worker.record_evictions("expired", len(expired))
        return len(expired)
