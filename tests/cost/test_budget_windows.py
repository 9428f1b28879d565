"""Budget windows: UTC day and month boundaries, counter names, and which windows a key has."""

from __future__ import annotations

import calendar

from sluice.cost.budget import key_windows, ledger_name
from sluice.cost.keys import VirtualKey


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return float(calendar.timegm((year, month, day, hour, minute, second)))


def test_a_key_has_a_window_per_budget_it_sets() -> None:
    assert key_windows(VirtualKey(id="k1", name="k"), at(2026, 11, 25)) == ()
    windows = key_windows(VirtualKey(id="k1", name="k", budget_day_usd=1, budget_total_usd=10), at(2026, 11, 25))
    assert [w.name for w in windows] == ["day", "total"]
    assert [w.counter.limit_usd for w in windows] == [1, 10]


def test_day_and_month_windows_follow_the_utc_calendar() -> None:
    key = VirtualKey(id="k1", name="k", budget_day_usd=1, budget_month_usd=5, budget_total_usd=9)
    day, month, total = key_windows(key, at(2026, 11, 25, 23, 59, 59))
    assert (day.starts_at, day.resets_at) == (at(2026, 11, 25), at(2026, 11, 26))
    assert (month.starts_at, month.resets_at) == (at(2026, 11, 1), at(2026, 12, 1))
    assert (total.starts_at, total.resets_at) == (0.0, None)
    assert day.counter.key == "{k1}:spend:d:20261125" and month.counter.key == "{k1}:spend:m:202611"
    assert total.counter.key == "{k1}:spend:t"
    next_day, _, _ = key_windows(key, at(2026, 11, 26))
    assert next_day.counter.key == "{k1}:spend:d:20261126"  # a new day is a new counter


def test_december_rolls_over_into_january() -> None:
    key = VirtualKey(id="k1", name="k", budget_month_usd=5)
    (month,) = key_windows(key, at(2026, 12, 31, 12))
    assert month.resets_at == at(2027, 1, 1) and month.counter.key == "{k1}:spend:m:202612"


def test_every_name_of_a_key_shares_one_hash_tag() -> None:
    key = VirtualKey(id="k1", name="k", budget_day_usd=1, budget_month_usd=5, budget_total_usd=9)
    names = [w.counter.key for w in key_windows(key, at(2026, 1, 1))] + [ledger_name("k1")]
    assert all(name.startswith("{k1}:") for name in names)  # one Redis Cluster slot per key
