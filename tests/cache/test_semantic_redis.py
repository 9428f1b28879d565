"""RedisSemanticStore on a real redis-server: replicas share entries, the global bound, expiry and deletes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from sluice.cache import CacheMetrics, RedisSemanticStore
from tests.cache.support import FakeClock, near, unit

PREFIX = "t:"


@asynccontextmanager
async def replica(url: str, clock: FakeClock, max_entries: int = 100) -> AsyncIterator[RedisSemanticStore]:
    """One gateway replica's store: its own connections (one for XREAD BLOCK), its own local index."""
    client = aioredis.from_url(url)
    follow = aioredis.from_url(url, socket_timeout=5)
    store = RedisSemanticStore(client, PREFIX, max_entries, CacheMetrics(CollectorRegistry()), clock=clock,
                               follow_redis=follow)
    await store.start()
    try:
        yield store
    finally:
        await store.close()
        await client.aclose()
        await follow.aclose()


async def synced(*stores: RedisSemanticStore) -> None:
    """Wait until every store has applied the change log as it stands now."""
    newest = await stores[0].latest_id()
    for store in stores:
        assert await asyncio.to_thread(store.wait_applied, newest, 5.0), "replica did not catch up"


async def test_an_answer_stored_by_one_replica_is_found_by_another(redis_url: str) -> None:
    clock = FakeClock()
    async with replica(redis_url, clock) as a, replica(redis_url, clock) as b:
        await a.add("scope", unit(1), b"from a", 60, clock.now, text="q")
        await synced(a, b)
        assert b.entries == 1
        hit = await b.find("scope", near(unit(1), 7), 0.9, clock.now)
        assert hit is not None and hit.entry == b"from a" and hit.text == "q"
        assert await b.find("other-scope", unit(1), 0.9, clock.now) is None


async def test_a_replica_started_later_loads_the_live_entries(redis_url: str) -> None:
    clock = FakeClock()
    async with replica(redis_url, clock) as a:
        for seed in range(5):
            await a.add("scope", unit(seed), f"answer {seed}".encode(), 60, clock.now, text="q")
        async with replica(redis_url, clock) as late:
            assert late.entries == 5
            hit = await late.find("scope", unit(3), 0.9, clock.now)
            assert hit is not None and hit.entry == b"answer 3"


async def test_the_bound_holds_across_replicas_and_evictions_reach_them_all(redis_url: str) -> None:
    clock = FakeClock()
    async with replica(redis_url, clock, max_entries=3) as a, replica(redis_url, clock, max_entries=3) as b:
        await a.add("scope", unit(1), b"1", 60, clock.now, text="q")
        clock.advance(1)
        await b.add("scope", unit(2), b"2", 60, clock.now, text="q")
        clock.advance(1)
        await a.add("scope", unit(3), b"3", 60, clock.now, text="q")
        clock.advance(1)
        await synced(a, b)  # b's index has what a added
        assert await b.find("scope", unit(1), 0.9, clock.now) is not None  # used: 2 is now the oldest
        clock.advance(1)
        await b.add("scope", unit(4), b"4", 60, clock.now, text="q")
        await synced(a, b)
        probe = aioredis.from_url(redis_url)
        try:
            assert await probe.zcard(PREFIX + "cache:s:lru") == 3
        finally:
            await probe.aclose()
        for store in (a, b):
            assert store.entries == 3
            assert await store.find("scope", unit(2), 0.9, clock.now) is None
            assert {(await store.find("scope", unit(s), 0.9, clock.now)).entry for s in (1, 3, 4)} == {b"1", b"3", b"4"}


async def test_an_entry_gone_from_redis_is_a_miss_and_leaves_the_local_index(redis_url: str) -> None:
    clock = FakeClock()
    async with replica(redis_url, clock) as a, replica(redis_url, clock) as b:
        await a.add("scope", unit(1), b"soon gone", 60, clock.now, text="q")
        await synced(a, b)
        probe = aioredis.from_url(redis_url)
        try:
            keys = await probe.keys(PREFIX + "cache:s:e:*")
            assert len(keys) == 1
            await probe.delete(*keys)  # what Redis does itself when the entry's PX runs out
        finally:
            await probe.aclose()
        assert await b.find("scope", unit(1), 0.9, clock.now) is None
        assert b.entries == 0 and a.entries == 1  # a learns on its own next hit, or its sweep


async def test_the_sweep_drops_expired_entries_from_the_index_and_the_lru(redis_url: str) -> None:
    clock = FakeClock()
    async with replica(redis_url, clock) as a:
        await a.add("scope", unit(1), b"ten seconds", 10, clock.now, text="q")
        await a.add("scope", unit(2), b"an hour", 3600, clock.now, text="q")
        clock.advance(11)
        assert await a.find("scope", unit(1), 0.9, clock.now) is None
        assert await a.sweep(clock.now) == 1
        assert a.entries == 1
        probe = aioredis.from_url(redis_url)
        try:
            assert await probe.zcard(PREFIX + "cache:s:lru") == 1
        finally:
            await probe.aclose()
