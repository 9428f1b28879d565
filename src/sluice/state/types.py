"""The shared-state interface: rate windows, budget reservations, counters and change notifications.

Two implementations share these types: `MemoryState` (one process) and `RedisState` (many replicas).
Key names given here are relative; each implementation adds its prefix (`sluice:`). Names that belong to
one virtual key carry a Redis hash tag (`{key_id}:rpm`) so that one script's keys share a cluster slot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

# Called with the message, or with None when messages may have been lost (a reconnect): drop everything.
NotifyHandler = Callable[[str | None], None]


@dataclass(slots=True, frozen=True)
class RateRule:
    """A GCRA window: at most `limit` units per `period_s`, bursting to the whole limit; `cost` units now."""

    key: str
    limit: float
    period_s: float
    cost: float


@dataclass(slots=True, frozen=True)
class BudgetWindow:
    """One spend counter (USD) a reservation is checked against; `limit_usd` None only counts."""

    key: str
    limit_usd: float | None
    ttl_s: int  # the counter expires this long after its last write (then it is seeded again)


@dataclass(slots=True, frozen=True)
class BudgetHold:
    """Reserve `amount_usd` if, in every window, spent + reserved + amount <= limit."""

    ledger: str  # where reservations live (one per virtual key)
    windows: tuple[BudgetWindow, ...]
    reservation_id: str
    amount_usd: float
    hold_s: float  # an unsettled reservation (its replica died) is released after this


@dataclass(slots=True, frozen=True)
class BudgetSpend:
    """Replace reservation `reservation_id` by the actual cost, added to every (seeded) window."""

    ledger: str
    windows: tuple[BudgetWindow, ...]
    reservation_id: str
    actual_usd: float


@dataclass(slots=True, frozen=True)
class Granted:
    budget_used_ratio: float | None = None  # highest (spent + reserved) / limit over the windows, after this hold


@dataclass(slots=True, frozen=True)
class RateRefused:
    rule: int  # index into the rules given
    retry_after_s: float | None  # None: the cost exceeds the whole limit; it can never pass


@dataclass(slots=True, frozen=True)
class BudgetRefused:
    window: int  # index into hold.windows
    spent_usd: float
    reserved_usd: float
    limit_usd: float


@dataclass(slots=True, frozen=True)
class Unseeded:
    """These windows have no counter yet: seed them from the durable store, then ask again."""

    windows: tuple[int, ...]


Decision = Granted | RateRefused | BudgetRefused | Unseeded


class StateError(Exception):
    """The shared state could not be reached or answered wrongly."""


class SharedState(Protocol):
    """Fast state shared by every replica; each method is atomic and (for Redis) one round trip."""

    url: str

    async def start(self) -> None:
        """Connect, load scripts, and start delivering notifications."""

    async def close(self) -> None: ...

    async def acquire(self, rules: Sequence[RateRule], hold: BudgetHold | None = None) -> Decision:
        """Check every rate rule and budget window; consume all of them or none."""

    async def settle(self, adjustments: Sequence[RateRule], spend: BudgetSpend | None = None) -> None:
        """Add each rule's `cost` (negative: give back) without a check; settle a budget reservation."""

    async def seed(self, key: str, value: float, ttl_s: int) -> bool:
        """Set a counter only if it does not exist; True when this call set it."""

    async def incr(self, key: str, amount: float, ttl_s: int) -> float:
        """Add to a counter (created at 0) and (re)set its TTL; returns the new value."""

    async def get(self, key: str) -> float | None: ...

    async def reserved_usd(self, ledger: str) -> float:
        """What a ledger's live (unexpired) reservations hold now."""

    async def publish(self, channel: str, message: str) -> None:
        """Tell every replica (this one included) about a change."""

    def subscribe(self, channel: str, handler: NotifyHandler) -> None:
        """Call `handler` on every message to `channel` (on the event loop; it must not block)."""


__all__ = [
    "BudgetHold",
    "BudgetRefused",
    "BudgetSpend",
    "BudgetWindow",
    "Decision",
    "Granted",
    "NotifyHandler",
    "RateRefused",
    "RateRule",
    "SharedState",
    "StateError",
    "Unseeded",
]
