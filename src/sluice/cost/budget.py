"""A virtual key's budget windows (UTC day, UTC month, total) as shared-state counters, and their resets."""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from typing import Literal

from sluice.cost.keys import VirtualKey
from sluice.state import BudgetWindow

WindowName = Literal["day", "month", "total"]

# Counters live this long after their last write; an expired one is seeded again from the request log.
DAY_TTL_S = 3 * 86_400
MONTH_TTL_S = 62 * 86_400
TOTAL_TTL_S = 30 * 86_400


@dataclass(slots=True, frozen=True)
class KeyWindow:
    name: WindowName
    starts_at: float  # unix seconds: the request log is summed from here when the counter is seeded
    resets_at: float | None  # unix seconds; None: never (total)
    counter: BudgetWindow


def key_windows(key: VirtualKey, now: float) -> tuple[KeyWindow, ...]:
    """The windows of `key` that have a limit, for the UTC day and month that contain `now`."""
    windows: list[KeyWindow] = []
    t = time.gmtime(now)
    tag = "{" + key.id + "}"
    if key.budget_day_usd is not None:
        start = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0))
        windows.append(KeyWindow("day", start, start + 86_400, BudgetWindow(
            f"{tag}:spend:d:{t.tm_year:04d}{t.tm_mon:02d}{t.tm_mday:02d}", key.budget_day_usd, DAY_TTL_S)))
    if key.budget_month_usd is not None:
        start = calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0))
        year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
        windows.append(KeyWindow("month", start, calendar.timegm((year, month, 1, 0, 0, 0)), BudgetWindow(
            f"{tag}:spend:m:{t.tm_year:04d}{t.tm_mon:02d}", key.budget_month_usd, MONTH_TTL_S)))
    if key.budget_total_usd is not None:
        windows.append(KeyWindow("total", 0.0, None, BudgetWindow(f"{tag}:spend:t", key.budget_total_usd,
                                                                 TOTAL_TTL_S)))
    return tuple(windows)


def ledger_name(key_id: str) -> str:
    return "{" + key_id + "}:holds"


__all__ = ["DAY_TTL_S", "MONTH_TTL_S", "TOTAL_TTL_S", "KeyWindow", "WindowName", "key_windows", "ledger_name"]
