"""Redis specifics: script reload after NOSCRIPT, prefixed keys with TTLs, notifications across replicas."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from sluice.state import BudgetHold, BudgetWindow, Granted, RateRule, RedisState


async def test_scripts_are_loaded_again_after_redis_forgets_them(redis_url: str) -> None:
    state = RedisState(redis_url)
    await state.start()
    raw = aioredis.Redis.from_url(redis_url)
    try:
        assert isinstance(await state.acquire([RateRule("{k}:rpm", 10, 60, 1)]), Granted)
        await raw.script_flush()
        assert isinstance(await state.acquire([RateRule("{k}:rpm", 10, 60, 1)]), Granted)
    finally:
        await raw.aclose()
        await state.close()


async def test_every_key_is_prefixed_and_expires(redis_url: str) -> None:
    state = RedisState(redis_url, prefix="tenant-a:")
    await state.start()
    raw = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        window = BudgetWindow("{k}:spend:t", 5.0, ttl_s=3600)
        await state.seed(window.key, 0.0, window.ttl_s)
        await state.acquire([RateRule("{k}:rpm", 10, 60, 1), RateRule("{k}:tpm", 1000, 60, 50)],
                            BudgetHold("{k}:holds", (window,), "r1", 0.5, 600))
        await state.incr("{k}:counter", 1, ttl_s=60)
        keys = sorted(await raw.keys("*"))
        assert keys == ["tenant-a:{k}:counter", "tenant-a:{k}:holds", "tenant-a:{k}:holds:exp",
                        "tenant-a:{k}:rpm", "tenant-a:{k}:spend:t", "tenant-a:{k}:tpm"]
        for key in keys:
            assert await raw.ttl(key) > 0, key
    finally:
        await raw.aclose()
        await state.close()


async def test_a_notification_reaches_every_replica(redis_url: str) -> None:
    sender, receiver = RedisState(redis_url), RedisState(redis_url)
    got: asyncio.Queue[str | None] = asyncio.Queue()
    receiver.subscribe("keys", got.put_nowait)
    await sender.start()
    await receiver.start()
    try:
        await sender.publish("keys", "abc123")
        assert await asyncio.wait_for(got.get(), timeout=5) == "abc123"
    finally:
        await sender.close()
        await receiver.close()


async def test_a_lost_notification_connection_tells_handlers_to_drop_everything(redis_url: str) -> None:
    state = RedisState(redis_url)
    got: asyncio.Queue[str | None] = asyncio.Queue()
    state.subscribe("keys", got.put_nowait)
    await state.start()
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await raw.client_kill_filter(_type="pubsub")
        assert await asyncio.wait_for(got.get(), timeout=10) is None
        await state.publish("keys", "after")  # and it listens again
        assert await asyncio.wait_for(got.get(), timeout=5) == "after"
    finally:
        await raw.aclose()
        await state.close()
