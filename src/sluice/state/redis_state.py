"""`RedisState`: the shared-state interface over Redis, for several gateway replicas (`redis://…`).

Each check is one round trip: a Lua script (EVALSHA, loaded again when Redis answers NOSCRIPT) that reads
and writes every key it needs atomically. Every key carries the prefix (`sluice:`) and a TTL. Notifications
use pub/sub on `<prefix>notify:<channel>`; after a lost connection, handlers are told to drop everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from sluice.state.types import (
    BudgetHold,
    BudgetRefused,
    BudgetSpend,
    Decision,
    Granted,
    NotifyHandler,
    RateRefused,
    RateRule,
    StateError,
    Unseeded,
)

log = logging.getLogger("sluice.state")

_LUA = Path(__file__).parent / "lua"
_RECONNECT_DELAY_S = (0.1, 0.25, 0.5, 1.0, 2.0)


class _Script:
    """A Lua script run by SHA; loaded on first NOSCRIPT (a fresh or flushed Redis), then run again."""

    def __init__(self, name: str) -> None:
        self.source = (_LUA / f"{name}.lua").read_text()
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    async def __call__(self, client: aioredis.Redis, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)  # type: ignore[misc]
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)  # type: ignore[misc]


_ACQUIRE = _Script("acquire")
_SETTLE = _Script("settle")


class RedisState:
    def __init__(self, url: str, *, prefix: str = "sluice:", timeout_s: float = 1.0,
                 max_connections: int = 64) -> None:
        self.url = url
        self.prefix = prefix
        # A blocking pool: a burst beyond max_connections waits (up to timeout_s) for a free connection.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout_s, decode_responses=True,
            socket_timeout=timeout_s, socket_connect_timeout=timeout_s, health_check_interval=30)
        self._client = aioredis.Redis(connection_pool=pool)
        self._handlers: dict[str, list[NotifyHandler]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        """Start listening (it retries on its own), then check Redis answers; StateError when it does not."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="sluice-state-notify")
        try:
            await self._client.ping()  # type: ignore[misc]
        except RedisError as exc:
            raise StateError(f"state.url: cannot reach Redis at {self._display_url()}: {exc}") from None
        # Changes published after start() returns must reach this replica: wait for the subscription.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout=5)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._client.aclose()

    async def acquire(self, rules: Sequence[RateRule], hold: BudgetHold | None = None) -> Decision:
        p = self.prefix
        keys = [p + rule.key for rule in rules]
        args: list[Any] = [len(rules)]
        for rule in rules:
            args += (rule.limit, rule.period_s * 1000, rule.cost)
        if hold is not None:
            keys += (p + hold.ledger, p + hold.ledger + ":exp", *(p + w.key for w in hold.windows))
            args += (hold.reservation_id, _num(hold.amount_usd), hold.hold_s * 1000,
                     int(hold.hold_s * 2000) + 60_000)
            args += ("" if w.limit_usd is None else _num(w.limit_usd) for w in hold.windows)
        reply = await self._run(_ACQUIRE, keys, args)
        kind = reply[0]
        if kind == "ok":
            return Granted(float(reply[1]) if reply[1] else None)
        if kind == "rate":
            retry_ms = float(reply[2])
            return RateRefused(int(reply[1]) - 1, None if retry_ms < 0 else retry_ms / 1000)
        if kind == "budget":
            return BudgetRefused(int(reply[1]) - 1, float(reply[2]), float(reply[3]), float(reply[4]))
        return Unseeded(tuple(int(index) - 1 for index in reply[1:]))

    async def settle(self, adjustments: Sequence[RateRule], spend: BudgetSpend | None = None) -> None:
        p = self.prefix
        keys = [p + rule.key for rule in adjustments]
        args: list[Any] = [len(adjustments)]
        for rule in adjustments:
            args += (rule.limit, rule.period_s * 1000, rule.cost)
        if spend is not None:
            keys += (p + spend.ledger, p + spend.ledger + ":exp", *(p + w.key for w in spend.windows))
            args += (spend.reservation_id, _num(spend.actual_usd), *(w.ttl_s for w in spend.windows))
        if len(keys) > 0:
            await self._run(_SETTLE, keys, args)

    async def seed(self, key: str, value: float, ttl_s: int) -> bool:
        try:
            return bool(await self._client.set(self.prefix + key, _num(value), nx=True, ex=ttl_s))
        except RedisError as exc:
            raise StateError(f"Redis seed failed: {exc}") from exc

    async def incr(self, key: str, amount: float, ttl_s: int) -> float:
        name = self.prefix + key
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.incrbyfloat(name, amount)
                pipe.expire(name, ttl_s)
                value, _ = await pipe.execute()
        except RedisError as exc:
            raise StateError(f"Redis incr failed: {exc}") from exc
        return float(value)

    async def get(self, key: str) -> float | None:
        try:
            value = await self._client.get(self.prefix + key)
        except RedisError as exc:
            raise StateError(f"Redis get failed: {exc}") from exc
        return None if value is None else float(value)

    async def reserved_usd(self, ledger: str) -> float:
        p = self.prefix + ledger
        try:
            # Expiry scores are Redis-clock ms; this replica's clock is close enough for a displayed figure.
            live = await self._client.zrangebyscore(p + ":exp", time.time() * 1000, "+inf")
            amounts = await self._client.hmget(p, live) if live else []  # type: ignore[misc]
        except RedisError as exc:
            raise StateError(f"Redis read failed: {exc}") from exc
        return sum(float(amount) for amount in amounts if amount is not None)

    async def publish(self, channel: str, message: str) -> None:
        try:
            await self._client.publish(f"{self.prefix}notify:{channel}", message)
        except RedisError as exc:
            raise StateError(f"Redis publish failed: {exc}") from exc

    def subscribe(self, channel: str, handler: NotifyHandler) -> None:
        self._handlers.setdefault(channel, []).append(handler)

    async def _run(self, script: _Script, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(self._client, keys, args)
        except RedisError as exc:
            raise StateError(f"Redis script failed: {exc}") from exc

    async def _listen(self) -> None:
        """Deliver notifications; on a lost connection reconnect and tell every handler to drop everything."""
        pattern = f"{self.prefix}notify:*"
        skip = len(pattern) - 1
        attempt = 0
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(pattern)
                if attempt:
                    log.warning("state notifications reconnected to %s", self._display_url())
                    self._broadcast(None)  # messages may have been missed while disconnected
                attempt = 0
                self._subscribed.set()
                while True:
                    message = await pubsub.get_message(timeout=None)  # type: ignore[arg-type]
                    if message is not None and message["type"] == "pmessage":
                        self._deliver(message["channel"][skip:], message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                delay = _RECONNECT_DELAY_S[min(attempt, len(_RECONNECT_DELAY_S) - 1)]
                if attempt == 0:
                    log.warning("state notifications lost their connection (%s); reconnecting", exc)
                attempt += 1
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _deliver(self, channel: str, message: str | None) -> None:
        for handler in self._handlers.get(channel, ()):
            try:
                handler(message)
            except Exception:
                log.exception("state notification handler failed on %s", channel)

    def _broadcast(self, message: str | None) -> None:
        for channel in self._handlers:
            self._deliver(channel, message)

    def _display_url(self) -> str:
        kwargs = self._client.connection_pool.connection_kwargs
        return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


def _num(value: float) -> str:
    return repr(float(value))  # shortest exact round-trip form


__all__ = ["RedisState"]
