"""Shared fast state for replicas: rate windows, budget reservations, counters, change notifications.

`open_state(config.state)` gives `MemoryState` (`memory://`, one process) or `RedisState` (`redis://…`).
"""

from sluice.state.factory import open_state
from sluice.state.memory import MemoryState
from sluice.state.redis_state import RedisState
from sluice.state.types import (
    BudgetHold,
    BudgetRefused,
    BudgetSpend,
    BudgetWindow,
    Decision,
    Granted,
    NotifyHandler,
    RateRefused,
    RateRule,
    SharedState,
    StateError,
    Unseeded,
)

__all__ = [
    "BudgetHold",
    "BudgetRefused",
    "BudgetSpend",
    "BudgetWindow",
    "Decision",
    "Granted",
    "MemoryState",
    "NotifyHandler",
    "RateRefused",
    "RateRule",
    "RedisState",
    "SharedState",
    "StateError",
    "Unseeded",
    "open_state",
]
