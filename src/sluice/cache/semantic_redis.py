"""Semantic-cache storage shared by replicas through Redis; each replica keeps its own index in sync.

Redis holds the truth (`<prefix>cache:s:`):
  seq           INCR counter: entry ids, the same on every replica
  e:<id>        hash {scope, vec (float32 bytes), entry (answer blob), text (its prompt), exp}, expiring with
                the entry's TTL (PX)
  lru           sorted set id -> last use: its size is the global entry count, its head the eviction order
  log           stream of changes: {op: add, id} / {op: del, ids}; trimmed to about LOG_LENGTH events
A replica loads every live entry at start-up, then follows `log` (XREAD BLOCK) to add and remove vectors in
its local index. A hit reads the answer from `e:<id>`: an entry Redis already expired or another replica
evicted is a miss there and leaves the local index at once. If the replica fell so far behind that `log`
was trimmed past what it read, or lost its connection, it reloads everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from sluice.cache.metrics import CacheMetrics
from sluice.cache.semantic import IndexWorker, SemanticHit

log = logging.getLogger("sluice.cache")

LOG_LENGTH = 100_000  # events kept in the change stream (~60 bytes each); a replica further behind reloads
_BATCH = 1000
_BLOCK_MS = 1000  # XREAD BLOCK: how long one wait for changes lasts
_GAP_CHECK_S = 5.0
_RETRY_S = 1.0


class RedisSemanticStore:
    def __init__(self, redis: Any, prefix: str, max_entries: int, metrics: CacheMetrics, *,
                 clock: Callable[[], float], follow_redis: Any = None) -> None:
        self._redis = redis
        self._follow_redis = follow_redis or redis  # XREAD BLOCK needs a read timeout longer than its block
        self._clock = clock
        self._p = prefix + "cache:s:"
        self.max_entries = max_entries
        self.metrics = metrics
        # The local index is bounded too (twice the shared cap) in case delete events are ever missed.
        self.worker = IndexWorker(2 * max_entries, metrics)
        self._last_id = "0-0"
        self._applied = threading.Condition()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def entries(self) -> int:
        return self.worker.entries

    async def start(self) -> None:
        await self._reload()
        self._task = asyncio.create_task(self._follow(), name="sluice-semantic-cache-sync")

    async def close(self) -> None:
        if self._task is not None:
            # redis-py can swallow a cancel that lands in a blocking read (its own read timeout is armed): the
            # flag ends the loop when that XREAD returns, within one block.
            self._stopping = True
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=_BLOCK_MS / 1000 + 2)
            if not self._task.done():
                log.warning("semantic cache sync did not stop within %.0f s", _BLOCK_MS / 1000 + 2)
        self.worker.close()

    async def find(self, scope: str, vector: np.ndarray, threshold: float, now: float) -> SemanticHit | None:
        match = await self.worker.search(scope, vector, threshold, now)
        if match is None:
            return None
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self._entry_key(match.key), ["entry", "text"])
            pipe.zadd(self._p + "lru", {str(match.key): now}, xx=True)
            (entry, text), _ = await pipe.execute()
        if entry is None:  # expired in Redis or evicted elsewhere: the delete event may still be on its way
            await self.worker.remove([match.key])
            return None
        return SemanticHit(entry, match.similarity, _text(text) if text is not None else "")

    async def add(self, scope: str, vector: np.ndarray, entry: bytes, ttl_s: float, now: float, *,
                  text: str) -> None:
        key = int(await self._redis.incr(self._p + "seq"))
        vector32 = np.ascontiguousarray(vector, dtype=np.float32)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._entry_key(key), mapping={"scope": scope, "vec": vector32.tobytes(), "entry": entry,
                                                     "text": text, "exp": repr(now + ttl_s)})
            pipe.pexpire(self._entry_key(key), max(1, int(ttl_s * 1000)))
            pipe.zadd(self._p + "lru", {str(key): now})
            pipe.xadd(self._p + "log", {"op": "add", "id": str(key)}, maxlen=LOG_LENGTH, approximate=True)
            pipe.zcard(self._p + "lru")
            *_, count = await pipe.execute()
        await self.worker.add(scope, key, vector32, now + ttl_s, now)
        if count > self.max_entries:
            await self._evict(int(count) - self.max_entries)

    async def _evict(self, excess: int) -> None:
        popped = await self._redis.zpopmin(self._p + "lru", excess)  # atomic: each id is evicted by one replica
        keys = [int(member) for member, _ in popped]
        if not keys:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(*(self._entry_key(key) for key in keys))
            pipe.xadd(self._p + "log", {"op": "del", "ids": ",".join(map(str, keys))}, maxlen=LOG_LENGTH,
                      approximate=True)
            await pipe.execute()
        removed = await self.worker.remove(keys)
        self.worker.record_evictions("capacity", len(removed))

    async def sweep(self, now: float) -> int:
        """Expired entries leave the local index; Redis has expired their hashes itself, `lru` is tidied here."""
        expired = await self.worker.expire(now)
        if expired:
            await self._redis.zrem(self._p + "lru", *map(str, expired))
        self.worker.record_evictions("expired", len(expired))
        return len(expired)

    def wait_applied(self, stream_id: str, timeout_s: float) -> bool:
        """Block (any thread) until this replica has applied the change log up to `stream_id`."""
        target = _parse_id(stream_id)
        with self._applied:
            return self._applied.wait_for(lambda: _parse_id(self._last_id) >= target, timeout=timeout_s)

    async def latest_id(self) -> str:
        newest = await self._redis.xrevrange(self._p + "log", count=1)
        return _text(newest[0][0]) if newest else "0-0"

    def _entry_key(self, key: int) -> str:
        return f"{self._p}e:{key}"

    async def _reload(self) -> None:
        """Load every live entry into a fresh local index; the log is followed from just before the load."""
        start_id = await self.latest_id()
        fresh = IndexWorker(self.worker.max_entries, self.metrics)
        members = [int(member) for member in await self._redis.zrange(self._p + "lru", 0, -1)]
        for offset in range(0, len(members), _BATCH):
            await self._load(fresh, members[offset:offset + _BATCH])
        old, self.worker = self.worker, fresh
        old.close()
        self._set_applied(start_id)
        self.metrics.entries.labels("semantic").set(self.entries)

    async def _load(self, worker: IndexWorker, keys: list[int]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(self._entry_key(key), ["scope", "vec", "exp"])
            rows = await pipe.execute()
        for key, (scope, vec, exp) in zip(keys, rows, strict=True):
            if scope is None or vec is None or exp is None:
                continue  # expired or evicted meanwhile
            vector = np.frombuffer(vec, dtype=np.float32)
            await worker.add(_text(scope), key, vector, float(exp), self._clock())

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        checked = loop.time()
        while not self._stopping:
            try:
                if loop.time() - checked > _GAP_CHECK_S:
                    checked = loop.time()
                    if await self._fell_behind():
                        log.warning("semantic cache: change log trimmed past this replica; reloading")
                        await self._reload()
                reply = await self._follow_redis.xread({self._p + "log": self._last_id}, count=_BATCH,
                                                       block=_BLOCK_MS)
                for _, events in reply or ():
                    await self._apply(events)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis went away: retry, then reload what changed meanwhile
                if self._stopping:
                    return
                self.metrics.errors.labels("semantic_sync").inc()
                log.warning("semantic cache sync failed (%s); reloading in %.0f s", exc, _RETRY_S)
                await asyncio.sleep(_RETRY_S)
                with contextlib.suppress(Exception):
                    await self._reload()

    async def _fell_behind(self) -> bool:
        info = await self._redis.xinfo_stream(self._p + "log")
        first = info.get("first-entry")
        return bool(first) and _parse_id(_text(first[0])) > _parse_id(self._last_id) and self._last_id != "0-0"

    async def _apply(self, events: list[tuple[Any, dict[Any, Any]]]) -> None:
        adds: list[int] = []
        for event_id, fields in events:
            op = _text(fields.get(b"op", fields.get("op", b"")))
            if op == "add":
                key = int(fields.get(b"id", fields.get("id")))
                if key not in (self.worker.index or ()):
                    adds.append(key)
            elif op == "del":
                if adds:
                    await self._load(self.worker, adds)
                    adds = []
                ids = _text(fields.get(b"ids", fields.get("ids", b"")))
                removed = await self.worker.remove([int(key) for key in ids.split(",") if key])
                self.worker.record_evictions("capacity", len(removed))
            last = _text(event_id)
        if adds:
            await self._load(self.worker, adds)
        if events:
            self._set_applied(last)
        self.metrics.entries.labels("semantic").set(self.entries)

    def _set_applied(self, stream_id: str) -> None:
        with self._applied:
            self._last_id = stream_id
            self._applied.notify_all()


def _parse_id(stream_id: str) -> tuple[int, int]:
    millis, _, sequence = stream_id.partition("-")
    return int(millis), int(sequence or 0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
