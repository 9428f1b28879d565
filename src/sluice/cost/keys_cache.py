"""`KeyCache`: virtual keys by id, cached in each replica so that authentication never waits on the store.

A hit is a dict lookup. A miss reads the store once (concurrent misses for one id share the read); an
unknown id is remembered briefly so random secrets cannot flood the store. An entry older than
`keys.cache_ttl_s` is still served while it is re-read in the background. Changes (create, update,
rotate, revoke) are published on the state's `keys` channel and every replica drops its copy at once;
after a lost notification connection every copy is dropped. `last_used_at` is written in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.config import KeysConfig
from sluice.cost import keys_store as key_store
from sluice.cost.keys import VirtualKey
from sluice.cost.keys_errors import KeysUnavailable
from sluice.cost.keys_metrics import KeyMetrics
from sluice.state import SharedState, StateError

log = logging.getLogger("sluice.keys")

CHANNEL = "keys"
_DROP_ALL = "*"
_MAX_ENTRIES = 200_000  # past this, remembered unknown ids are forgotten together


@dataclass(slots=True)
class _Entry:
    key: VirtualKey | None  # None: no such key (negative entry)
    loaded_at: float


class KeyCache:
    def __init__(self, state: SharedState, config: KeysConfig, metrics: KeyMetrics,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.state = state
        self.config = config
        self.metrics = metrics
        self.engine: AsyncEngine | None = None
        self.any_keys = False  # until a key exists the gateway stays open (when no master key is set)
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._loading: dict[str, asyncio.Task[VirtualKey | None]] = {}
        self._outdated: set[asyncio.Task[VirtualKey | None]] = set()  # reads a change overtook: not kept
        self._background: set[asyncio.Task[None]] = set()
        self._used: set[str] = set()
        self._maintenance: asyncio.Task[None] | None = None
        state.subscribe(CHANNEL, self._on_change)

    async def start(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.any_keys = await key_store.any_keys(engine)
        self._maintenance = asyncio.create_task(self._maintain(), name="sluice-keys-maintenance")

    async def close(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        await self._flush_used()

    async def get(self, key_id: str) -> VirtualKey | None:
        """The key with this id, or None when there is none; raises KeysUnavailable when the store is down."""
        entry = self._entries.get(key_id)
        if entry is not None:
            age = self._clock() - entry.loaded_at
            if entry.key is None:
                if age < self.config.negative_cache_ttl_s:
                    self.metrics.lookup("unknown")
                    return None
            else:
                if age >= self.config.cache_ttl_s and key_id not in self._loading:
                    self._load_task(key_id)  # serve this copy; the next request sees the fresh one
                self.metrics.lookup("hit")
                return entry.key
        self.metrics.lookup("miss")
        task = self._loading.get(key_id) or self._load_task(key_id)
        try:
            return await asyncio.shield(task)
        except (SQLAlchemyError, OSError) as exc:
            raise KeysUnavailable("The key store is unavailable; try again shortly.",
                                  code="key_store_unavailable") from exc

    def touch(self, key_id: str) -> None:
        self._used.add(key_id)

    async def changed(self, key_id: str) -> None:
        """A key was created or changed here: drop it now, and tell every other replica."""
        self._on_change(key_id)
        try:
            await self.state.publish(CHANNEL, key_id)
        except StateError as exc:
            self.metrics.state_errors.labels("publish").inc()
            log.warning("could not publish a key change (other replicas re-read within %ss): %s",
                        self.config.cache_ttl_s, exc)

    def _on_change(self, message: str | None) -> None:
        if message is None or message == _DROP_ALL:
            self._entries.clear()
            self._outdated.update(self._loading.values())
            self._loading.clear()
            if self.engine is not None:
                self._spawn(self._recheck_any_keys())
            return
        self.any_keys = True  # a change means a key exists
        self._entries.pop(message, None)
        overtaken = self._loading.pop(message, None)  # later lookups read the store again
        if overtaken is not None:
            self._outdated.add(overtaken)

    def _load_task(self, key_id: str) -> asyncio.Task[VirtualKey | None]:
        task = asyncio.create_task(self._load(key_id), name=f"sluice-key-{key_id}")
        self._loading[key_id] = task
        task.add_done_callback(lambda done: self._loaded(key_id, done))
        return task

    async def _load(self, key_id: str) -> VirtualKey | None:
        if self.engine is None:
            raise KeysUnavailable("The gateway is starting; try again shortly.", code="key_store_unavailable")
        return await key_store.get_key(self.engine, key_id)

    def _loaded(self, key_id: str, task: asyncio.Task[VirtualKey | None]) -> None:
        if task in self._outdated:  # read before a change landed: its waiters get it, the cache does not
            self._outdated.discard(task)
            return
        if self._loading.get(key_id) is task:
            del self._loading[key_id]
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.warning("reading key %s from the store failed: %s", key_id, error)
            return
        key = task.result()
        if key is None and len(self._entries) >= _MAX_ENTRIES:
            self._entries = {kid: entry for kid, entry in self._entries.items() if entry.key is not None}
        self._entries[key_id] = _Entry(key, self._clock())

    async def _maintain(self) -> None:
        """Write last-used times in batches; while no key exists, look again (a missed notification)."""
        while True:
            await asyncio.sleep(self.config.last_used_flush_s)
            await self._flush_used()
            if not self.any_keys:
                await self._recheck_any_keys()

    async def _flush_used(self) -> None:
        if not self._used or self.engine is None:
            return
        used, self._used = self._used, set()
        try:
            await key_store.touch(self.engine, used, time.time())
        except (SQLAlchemyError, OSError) as exc:
            self._used |= used
            log.warning("could not write keys' last_used_at: %s", exc)

    async def _recheck_any_keys(self) -> None:
        assert self.engine is not None
        try:
            self.any_keys = self.any_keys or await key_store.any_keys(self.engine)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("could not check for virtual keys: %s", exc)

    def _spawn(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


__all__ = ["CHANNEL", "KeyCache"]
