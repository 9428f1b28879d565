"""`SemanticIndex`: the vectors of semantic-cache entries, one HNSW graph per scope, with TTL and LRU eviction.

Not thread-safe: the cache calls it from one worker thread (see semantic.py), never from the event loop.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sluice.errors import ConfigError

# usearch HNSW settings, measured in benchmarks/semantic_cache_speed.py (see docs/cache.md): 16 links per node
# 64 candidates while adding and 128 while searching: near-duplicates found (recall@1) at ~1.0, sub-ms searches.
HNSW_SETTINGS: dict[str, Any] = {"connectivity": 16, "expansion_add": 64, "expansion_search": 128}
VECTOR_DTYPE = "f16"  # half the memory of f32; similarity error ~1e-3, far below any threshold step
_CANDIDATES = 4  # nearest entries checked per search: expired ones among them are skipped, not returned


@dataclass(slots=True, frozen=True)
class Match:
    key: int
    similarity: float


@dataclass(slots=True)
class _Entry:
    scope: str
    expires_at: float


def _new_index(dim: int) -> Any:
    try:
        from usearch.index import Index
    except ImportError as exc:
        raise ConfigError("cache.semantic needs the usearch package: pip install 'sluicegate[local]'") from exc
    return Index(ndim=dim, metric="ip", dtype=VECTOR_DTYPE, **HNSW_SETTINGS)


class SemanticIndex:
    """Entries are integer keys in exactly one scope (model + params + system prompt + namespace hash).

    A search only sees its own scope's graph, so tenants, models and system prompts never match each
    other. `max_entries` bounds all scopes together: adding beyond it evicts the least recently used.
    """

    def __init__(self, dim: int, *, max_entries: int) -> None:
        self.dim = dim
        self.max_entries = max_entries
        self._graphs: dict[str, Any] = {}
        self._entries: dict[int, _Entry] = {}
        self._recency: OrderedDict[int, None] = OrderedDict()  # least recently used first
        self._expiry: list[tuple[float, int]] = []  # heap; stale items are skipped when popped

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: int) -> bool:
        return key in self._entries

    def add(self, scope: str, key: int, vector: np.ndarray, *, expires_at: float, now: float) -> list[int]:
        """Index one entry (an existing key is left as it is); returns the keys evicted to make room."""
        if key in self._entries or expires_at <= now:
            return []
        self._graph(scope).add(key, vector, threads=1)
        self._track(scope, key, expires_at)
        return self._evict_over_limit()

    def add_many(self, scope: str, keys: Iterable[int], vectors: np.ndarray, *, expires_at: float,
                 now: float) -> list[int]:
        """Bulk add (start-up from shared storage, benchmarks): the graph is built on every core."""
        fresh = [(index, key) for index, key in enumerate(keys) if key not in self._entries]
        if not fresh or expires_at <= now:
            return []
        rows = np.fromiter((index for index, _ in fresh), dtype=np.int64, count=len(fresh))
        labels = np.fromiter((key for _, key in fresh), dtype=np.uint64, count=len(fresh))
        self._graph(scope).add(labels, vectors[rows], threads=0)
        for _, key in fresh:
            self._track(scope, key, expires_at)
        return self._evict_over_limit()

    def search(self, scope: str, vector: np.ndarray, *, threshold: float, now: float) -> Match | None:
        """The most similar live entry of `scope` at or above `threshold` (it becomes most recently used)."""
        graph = self._graphs.get(scope)
        if graph is None:
            return None
        found = graph.search(vector, _CANDIDATES, threads=1)
        for key, distance in zip(found.keys.tolist(), found.distances.tolist(), strict=True):
            similarity = 1.0 - float(distance)
            if similarity < threshold:
                return None  # results come nearest first
            entry = self._entries.get(key)
            if entry is None or entry.expires_at <= now:
                continue
            self._recency.move_to_end(key)
            return Match(key, similarity)
        return None

    def touch(self, key: int) -> None:
        if key in self._recency:
            self._recency.move_to_end(key)

    def remove(self, keys: Iterable[int]) -> list[int]:
        """Drop entries from their graphs; returns the keys that were present."""
        removed = []
        for key in keys:
            entry = self._entries.pop(key, None)
            if entry is None:
                continue
            del self._recency[key]
            graph = self._graphs[entry.scope]
            graph.remove(key)
            if len(graph) == 0:
                del self._graphs[entry.scope]  # frees the graph of a scope nobody uses any more
            removed.append(key)
        return removed

    def expire(self, now: float) -> list[int]:
        """Remove every entry whose TTL has passed; returns their keys."""
        due = []
        while self._expiry and self._expiry[0][0] <= now:
            expires_at, key = heapq.heappop(self._expiry)
            entry = self._entries.get(key)
            if entry is not None and entry.expires_at == expires_at:
                due.append(key)
        return self.remove(due)

    def oldest(self, count: int) -> list[int]:
        """The `count` least recently used keys."""
        keys = []
        for key in self._recency:
            if len(keys) >= count:
                break
            keys.append(key)
        return keys

    def _graph(self, scope: str) -> Any:
        graph = self._graphs.get(scope)
        if graph is None:
            graph = self._graphs[scope] = _new_index(self.dim)
        return graph

    def _track(self, scope: str, key: int, expires_at: float) -> None:
        self._entries[key] = _Entry(scope, expires_at)
        self._recency[key] = None
        heapq.heappush(self._expiry, (expires_at, key))
        if len(self._expiry) > 2 * len(self._entries) + 1024:  # evicted keys linger in the heap: rebuild it
            self._expiry = [(entry.expires_at, key) for key, entry in self._entries.items()]
            heapq.heapify(self._expiry)

    def _evict_over_limit(self) -> list[int]:
        excess = len(self._entries) - self.max_entries
        return self.remove(self.oldest(excess)) if excess > 0 else []
