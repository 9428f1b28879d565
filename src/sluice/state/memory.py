"""`MemoryState`: the shared-state interface inside one process (the default, `memory://`).

Every method runs without awaiting, so on one event loop each is atomic, exactly like a Redis script.
The algorithms are the same as the Lua scripts in `lua/` (see `RedisState`); tests run both.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sluice.state.types import (
    BudgetHold,
    BudgetRefused,
    BudgetSpend,
    Decision,
    Granted,
    NotifyHandler,
    RateRefused,
    RateRule,
    Unseeded,
)

EPSILON_USD = 1e-9  # float sums of many small costs: a budget hit exactly must not refuse
_SWEEP_EVERY = 4096  # writes between sweeps of expired entries


@dataclass(slots=True)
class _Ledger:
    holds: dict[str, tuple[float, float]] = field(default_factory=dict)  # reservation id -> (usd, expires at)
    expiries: list[tuple[float, str]] = field(default_factory=list)  # heap of (expires at, reservation id)
    reserved_usd: float = 0.0

    def purge(self, now: float) -> None:
        while self.expiries and self.expiries[0][0] <= now:
            _, rid = heapq.heappop(self.expiries)
            held = self.holds.pop(rid, None)
            if held is not None:
                self.reserved_usd = max(0.0, self.reserved_usd - held[0])

    def release(self, rid: str) -> None:
        held = self.holds.pop(rid, None)  # its heap entry is skipped when it surfaces
        if held is not None:
            self.reserved_usd = max(0.0, self.reserved_usd - held[0])
        if not self.holds:
            self.expiries.clear()
            self.reserved_usd = 0.0


def gcra_step(tat: float | None, now: float, rule: RateRule) -> tuple[float, float]:
    """The new theoretical arrival time after `rule.cost`, and by how many seconds it overshoots the burst."""
    interval = rule.period_s / rule.limit
    start = now if tat is None or tat < now else tat
    new_tat = start + rule.cost * interval
    return new_tat, new_tat - now - rule.period_s


class MemoryState:
    url = "memory://"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._values: dict[str, float] = {}
        self._expires: dict[str, float] = {}
        self._ledgers: dict[str, _Ledger] = {}
        self._handlers: dict[str, list[NotifyHandler]] = {}
        self._writes = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def acquire(self, rules: Sequence[RateRule], hold: BudgetHold | None = None) -> Decision:
        now = self._clock()
        if hold is not None:
            missing = tuple(i for i, window in enumerate(hold.windows) if self._value(window.key, now) is None)
            if missing:
                return Unseeded(missing)
        tats = []
        for index, rule in enumerate(rules):
            new_tat, over = gcra_step(self._value(rule.key, now), now, rule)
            if over > 1e-6:
                return RateRefused(index, None if rule.cost > rule.limit else over)
            tats.append(new_tat)
        ratio = None
        if hold is not None:
            ledger = self._ledgers.get(hold.ledger) or _Ledger()
            ledger.purge(now)
            ratio = 0.0
            for index, window in enumerate(hold.windows):
                if window.limit_usd is None:
                    continue
                spent = self._value(window.key, now) or 0.0
                if spent + ledger.reserved_usd + hold.amount_usd > window.limit_usd + EPSILON_USD:
                    return BudgetRefused(index, spent, ledger.reserved_usd, window.limit_usd)
                used = spent + ledger.reserved_usd + hold.amount_usd
                ratio = max(ratio, used / window.limit_usd if window.limit_usd > 0 else 1.0)
            if hold.amount_usd > 0:
                expires = now + hold.hold_s
                ledger.holds[hold.reservation_id] = (hold.amount_usd, expires)
                heapq.heappush(ledger.expiries, (expires, hold.reservation_id))
                ledger.reserved_usd += hold.amount_usd
                self._ledgers[hold.ledger] = ledger
        for rule, new_tat in zip(rules, tats, strict=True):
            self._set(rule.key, new_tat, new_tat - now + 1.0, now)
        return Granted(ratio)

    async def settle(self, adjustments: Sequence[RateRule], spend: BudgetSpend | None = None) -> None:
        now = self._clock()
        for rule in adjustments:
            if rule.cost == 0:
                continue
            tat = self._value(rule.key, now)
            new_tat = max(now, (now if tat is None or tat < now else tat) + rule.cost * rule.period_s / rule.limit)
            if new_tat > now:
                self._set(rule.key, new_tat, new_tat - now + 1.0, now)
            else:
                self._drop(rule.key)
        if spend is None:
            return
        ledger = self._ledgers.get(spend.ledger)
        if ledger is not None:
            ledger.release(spend.reservation_id)
            if not ledger.holds:
                del self._ledgers[spend.ledger]
        if spend.actual_usd > 0:
            for window in spend.windows:
                value = self._value(window.key, now)
                if value is not None:  # an unseeded window is seeded later from the request log, which has this cost
                    self._set(window.key, value + spend.actual_usd, window.ttl_s, now)

    async def seed(self, key: str, value: float, ttl_s: int) -> bool:
        now = self._clock()
        if self._value(key, now) is not None:
            return False
        self._set(key, value, ttl_s, now)
        return True

    async def incr(self, key: str, amount: float, ttl_s: int) -> float:
        now = self._clock()
        value = (self._value(key, now) or 0.0) + amount
        self._set(key, value, ttl_s, now)
        return value

    async def get(self, key: str) -> float | None:
        return self._value(key, self._clock())

    async def publish(self, channel: str, message: str) -> None:
        for handler in self._handlers.get(channel, ()):
            handler(message)

    def subscribe(self, channel: str, handler: NotifyHandler) -> None:
        self._handlers.setdefault(channel, []).append(handler)

    async def reserved_usd(self, ledger: str) -> float:
        held = self._ledgers.get(ledger)
        if held is None:
            return 0.0
        held.purge(self._clock())
        return held.reserved_usd

    def _value(self, key: str, now: float) -> float | None:
        value = self._values.get(key)
        if value is not None and self._expires[key] <= now:
            self._drop(key)
            return None
        return value

    def _set(self, key: str, value: float, ttl_s: float, now: float) -> None:
        self._values[key] = value
        self._expires[key] = now + ttl_s
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self._sweep(now)

    def _drop(self, key: str) -> None:
        self._values.pop(key, None)
        self._expires.pop(key, None)

    def _sweep(self, now: float) -> None:
        for key in [key for key, deadline in self._expires.items() if deadline <= now]:
            self._drop(key)


__all__ = ["EPSILON_USD", "MemoryState", "gcra_step"]
