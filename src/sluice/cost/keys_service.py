"""`KeyService`: create, list, show, update, rotate and revoke virtual keys (the admin API calls it).

Every change is written to the store, then announced (`KeyCache.changed`) so every replica drops its copy.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.cost import keys_store as key_store
from sluice.cost.budget import ledger_name
from sluice.cost.keys import SETTINGS, VirtualKey, hash_token, new_key_id, new_token
from sluice.cost.keys_cache import KeyCache
from sluice.cost.keys_errors import KeysUnavailable
from sluice.state import StateError


@dataclass(slots=True, frozen=True)
class KeySpend:
    """A key's spend from the request log (durable, a flush interval behind) and what is held right now."""

    day_usd: float
    month_usd: float
    total_usd: float
    requests: int
    reserved_usd: float | None  # None: the shared state could not be read

    def to_dict(self) -> dict[str, Any]:
        return {"day_usd": self.day_usd, "month_usd": self.month_usd, "total_usd": self.total_usd,
                "requests": self.requests, "reserved_usd": self.reserved_usd}


class KeyService:
    def __init__(self, cache: KeyCache) -> None:
        self.cache = cache

    @property
    def engine(self) -> AsyncEngine:
        if self.cache.engine is None:
            raise KeysUnavailable("The key store is not open yet; try again shortly.", code="key_store_unavailable")
        return self.cache.engine

    async def create(self, settings: Mapping[str, Any]) -> tuple[VirtualKey, str]:
        """A new key and its secret (shown once: only the hash is stored)."""
        unknown = set(settings) - set(SETTINGS)
        if unknown:
            raise ValueError(f"unknown key settings: {sorted(unknown)}")
        now = time.time()
        for _ in range(3):  # 48-bit ids: a collision is astronomically rare, but the primary key would say so
            key_id = new_key_id()
            token = new_token(key_id)
            key = VirtualKey(id=key_id, **settings, created_at=now, updated_at=now,  # type: ignore[arg-type]
                             secret_hash=hash_token(token))
            try:
                await key_store.insert_key(self.engine, key)
            except IntegrityError:
                continue
            await self.cache.changed(key_id)
            return key, token
        raise RuntimeError("could not allocate a unique key id")

    async def list(self, *, team: str | None = None, owner: str | None = None,
                   include_revoked: bool = False) -> list[VirtualKey]:
        return await key_store.list_keys(self.engine, team=team, owner=owner, include_revoked=include_revoked)

    async def get(self, key_id: str) -> VirtualKey | None:
        return await key_store.get_key(self.engine, key_id)

    async def spend(self, key: VirtualKey) -> KeySpend:
        now = time.time()
        t = time.gmtime(now)
        day_start = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0))
        month_start = calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0))
        day, month, total, requests = await key_store.spend_summary(self.engine, key.id, day_start, month_start)
        try:
            reserved: float | None = await self.cache.state.reserved_usd(ledger_name(key.id))
        except StateError:
            reserved = None
        return KeySpend(day, month, total, requests, reserved)

    async def update(self, key_id: str, changes: Mapping[str, Any]) -> VirtualKey | None:
        unknown = set(changes) - set(SETTINGS)
        if unknown:
            raise ValueError(f"unknown key settings: {sorted(unknown)}")
        return await self._write(key_id, {**changes, "updated_at": time.time()})

    async def rotate(self, key_id: str, grace_s: float = 0.0) -> tuple[VirtualKey, str] | None:
        """A new secret for the same key (id, settings, spend); the old one works for `grace_s` more."""
        current = await self.get(key_id)
        if current is None:
            return None
        now = time.time()
        token = new_token(key_id)
        changes: dict[str, Any] = {"secret_hash": hash_token(token), "updated_at": now,
                                   "previous_hash": current.secret_hash if grace_s > 0 else None,
                                   "previous_valid_until": now + grace_s if grace_s > 0 else None}
        key = await self._write(key_id, changes)
        return None if key is None else (key, token)

    async def revoke(self, key_id: str) -> VirtualKey | None:
        current = await self.get(key_id)
        if current is None or current.revoked_at is not None:
            return current
        now = time.time()
        return await self._write(key_id, {"revoked_at": now, "updated_at": now, "previous_hash": None,
                                          "previous_valid_until": None})

    async def _write(self, key_id: str, changes: Mapping[str, Any]) -> VirtualKey | None:
        key = await key_store.update_key(self.engine, key_id, changes)
        if key is not None:
            await self.cache.changed(key_id)
        return key


__all__ = ["KeyService", "KeySpend"]
