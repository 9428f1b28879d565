"""MemorySemanticStore: the one-replica semantic cache — scopes, threshold, TTL, LRU capacity, its metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from sluice.cache import CacheMetrics, MemorySemanticStore
from tests.cache.support import near, unit


def store(max_entries: int = 100) -> tuple[MemorySemanticStore, CollectorRegistry]:
    registry = CollectorRegistry()
    return MemorySemanticStore(max_entries, CacheMetrics(registry)), registry


def evictions(registry: CollectorRegistry, reason: str) -> float:
    return registry.get_sample_value("sluice_cache_evictions_total", {"kind": "semantic", "reason": reason}) or 0.0


async def test_a_near_vector_of_the_same_scope_finds_the_answer() -> None:
    semantic, _ = store()
    try:
        await semantic.add("scope-a", unit(1), b"answer one", 60, now=0, text="q")
        await semantic.add("scope-a", unit(2), b"answer two", 60, now=0, text="q")
        hit = await semantic.find("scope-a", near(unit(1), 100), 0.9, now=1)
        assert hit is not None and hit.entry == b"answer one" and 0.9 <= hit.similarity <= 1.0
        assert await semantic.find("scope-b", unit(1), 0.9, now=1) is None  # another scope never matches
        assert await semantic.find("scope-a", unit(3), 0.9, now=1) is None  # unrelated: below the threshold
        strict = await semantic.find("scope-a", near(unit(1), 100, noise=0.3), 0.999, now=1)
        assert strict is None  # the threshold is the caller's: a looser neighbour fails a strict one
    finally:
        await semantic.close()


async def test_an_expired_entry_misses_and_the_sweep_removes_it() -> None:
    semantic, registry = store()
    try:
        await semantic.add("s", unit(1), b"short", 10, now=0, text="q")
        await semantic.add("s", unit(2), b"long", 100, now=0, text="q")
        assert await semantic.find("s", unit(1), 0.9, now=9.9) is not None
        assert await semantic.find("s", unit(1), 0.9, now=10) is None  # due, though not yet swept
        assert semantic.entries == 2
        assert await semantic.sweep(now=10) == 1
        assert semantic.entries == 1 and evictions(registry, "expired") == 1
        assert registry.get_sample_value("sluice_cache_entries", {"kind": "semantic"}) == 1
        assert await semantic.find("s", unit(2), 0.9, now=50) is not None
    finally:
        await semantic.close()


async def test_capacity_evicts_the_least_recently_used_entry() -> None:
    semantic, registry = store(max_entries=3)
    try:
        for seed in (1, 2, 3):
            await semantic.add("s", unit(seed), f"answer {seed}".encode(), 60, now=seed, text="q")
        assert await semantic.find("s", unit(1), 0.9, now=4) is not None  # 1 is used: 2 is now the oldest
        await semantic.add("s", unit(4), b"answer 4", 60, now=5, text="q")
        assert semantic.entries == 3 and evictions(registry, "capacity") == 1
        assert await semantic.find("s", unit(2), 0.9, now=6) is None
        for seed in (1, 3, 4):
            hit = await semantic.find("s", unit(seed), 0.9, now=6)
            assert hit is not None and hit.entry == f"answer {seed}".encode()
        assert len(semantic._answers) == 3  # the evicted answer went with its vector
    finally:
        await semantic.close()


async def test_the_bound_is_shared_by_every_scope() -> None:
    semantic, _ = store(max_entries=2)
    try:
        await semantic.add("tenant-a", unit(1), b"a", 60, now=1, text="q")
        await semantic.add("tenant-b", unit(2), b"b", 60, now=2, text="q")
        await semantic.add("tenant-c", unit(3), b"c", 60, now=3, text="q")
        assert semantic.entries == 2
        assert await semantic.find("tenant-a", unit(1), 0.9, now=4) is None
        assert await semantic.find("tenant-c", unit(3), 0.9, now=4) is not None
    finally:
        await semantic.close()
