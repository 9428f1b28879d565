"""Exact-cache storage: serialised answers by key with a TTL, in process (LRU) or in Redis (shared)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Protocol

import orjson


def encode_entry(payload: dict[str, Any], expires_at: float) -> bytes:
    return orjson.dumps({"expires_at": expires_at, "payload": payload})


def decode_entry(data: bytes, now: float) -> dict[str, Any] | None:
    """The stored answer payload, or None once its TTL has passed (by the cache's clock)."""
    entry = orjson.loads(data)
    return entry["payload"] if entry["expires_at"] > now else None


class ExactStore(Protocol):
    async def get(self, key: str, now: float) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float, now: float) -> None: ...

    @property
    def entries(self) -> int | None:
        """Entries held, when this replica can know it cheaply (None for Redis)."""


class MemoryExactStore:
    """One replica's entries, least recently used evicted first; expired ones are dropped when met."""

    def __init__(self, max_entries: int, on_evict: Any = None) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._on_evict = on_evict or (lambda reason, count: None)

    @property
    def entries(self) -> int:
        return len(self._entries)

    async def get(self, key: str, now: float) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._entries[key]
            self._on_evict("expired", 1)
            return None
        self._entries.move_to_end(key)
        return entry[1]

    async def set(self, key: str, value: bytes, ttl_s: float, now: float) -> None:
        self.put(key, value, ttl_s, now)

    def put(self, key: str, value: bytes, ttl_s: float, now: float) -> None:
        self._entries[key] = (now + ttl_s, value)
        self._entries.move_to_end(key)
        self._drop_expired_front(now)
        excess = len(self._entries) - self.max_entries
        for _ in range(max(0, excess)):
            self._entries.popitem(last=False)
        if excess > 0:
            self._on_evict("capacity", excess)

    def _drop_expired_front(self, now: float) -> None:
        # The least recently used end is where expired entries gather; a few are swept per write.
        expired = 0
        for _ in range(8):
            if not self._entries:
                break
            key, (expires_at, _) = next(iter(self._entries.items()))
            if expires_at > now:
                break
            del self._entries[key]
            expired += 1
        if expired:
            self._on_evict("expired", expired)


class RedisExactStore:
    """Entries shared by every replica: `<prefix>cache:x:<key>`, expired by Redis (PX) and by our clock."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix + "cache:x:"

    @property
    def entries(self) -> None:
        return None

    async def get(self, key: str, now: float) -> bytes | None:
        value: bytes | None = await self._redis.get(self._prefix + key)
        return value

    async def set(self, key: str, value: bytes, ttl_s: float, now: float) -> None:
        await self._redis.set(self._prefix + key, value, px=max(1, int(ttl_s * 1000)))
