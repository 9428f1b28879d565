"""Cost report over the request log, aggregated in SQL: by model, key, team, target or UTC day.

Only requests that were served count: routed (a target) and either sent upstream or answered from the cache.
Requests refused before any upstream call (unknown model, bad key, budget, rate limit, every replica out) cost
nothing and would only dilute the per-request figures. `cost_usd` NULL rows are unpriced: counted, never
summed as 0.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Integer, case, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from sluice.store import RequestLog

GROUPINGS = ("model", "key", "team", "target", "day")
NONE_LABELS = {"key": "(no key)", "team": "(no team)"}
DAY_S = 86_400

_LOG = RequestLog.__table__
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|h|d|w)\s*$")
_UNIT_S = {"m": 60, "h": 3600, "d": DAY_S, "w": 7 * DAY_S}


def parse_moment(text: str, now: float | None = None, *, option: str = "--since") -> float:
    """`30m`, `12h`, `7d`, `2w` ago, or an ISO date / time (UTC unless it names a zone), as unix seconds."""
    now = time.time() if now is None else now
    match = _DURATION.match(text)
    if match:
        return now - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{option}: expected a duration like 12h, 7d, 2w or a date like 2026-11-01 "
                         f"(UTC), not {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


@dataclass(slots=True, frozen=True)
class CostRow:
    group: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: float  # priced requests only
    unpriced_requests: int  # cost unknown (target without a price)
    estimated_requests: int  # token counts from the tokenizer fallback

    @property
    def cost_per_1k_requests_usd(self) -> float:
        return self.cost_usd / self.requests * 1000 if self.requests else 0.0


@dataclass(slots=True, frozen=True)
class DayModelCost:
    day: str  # YYYY-MM-DD, UTC
    model: str
    cost_usd: float


@dataclass(slots=True)
class CostReport:
    by: str
    since: float | None
    until: float | None
    rows: list[CostRow]
    total: CostRow
    day_model: list[DayModelCost] = field(default_factory=list)  # --by day: each day split by model

    def share(self, row: CostRow) -> float:
        return self.share_of(row.cost_usd)

    def share_of(self, cost_usd: float) -> float:
        return cost_usd / self.total.cost_usd if self.total.cost_usd > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        def row_json(row: CostRow) -> dict[str, Any]:
            return {**asdict(row), "cost_per_1k_requests_usd": row.cost_per_1k_requests_usd,
                    "share": self.share(row)}

        return {"by": self.by, "since": _iso(self.since), "until": _iso(self.until),
                "rows": [row_json(row) for row in self.rows], "total": row_json(self.total),
                "day_model": [asdict(item) for item in self.day_model]}


def day_number(dialect: str) -> ColumnElement[Any]:
    """Days since 1970-01-01 UTC of `created_at` (floor; created_at is positive, so SQLite's truncating cast is
    a floor there; PostgreSQL's cast rounds, hence FLOOR first)."""
    days = _LOG.c.created_at / DAY_S
    if dialect == "sqlite":
        return cast(days, Integer)
    return cast(func.floor(days), Integer)


def _group_column(by: str, dialect: str) -> ColumnElement[Any]:
    columns: dict[str, ColumnElement[Any]] = {
        "model": _LOG.c.model, "key": _LOG.c.key_id, "team": _LOG.c.team, "target": _LOG.c.target,
        "day": day_number(dialect),
    }
    if by not in columns:
        raise ValueError(f"--by: expected one of {', '.join(GROUPINGS)}, not {by!r}")
    return columns[by]


def _window(statement: Any, since: float | None, until: float | None) -> Any:
    log = _LOG.c
    # refused before any upstream call: no attempt, no cache hit, an error (rows from before the attempts
    # column existed have 0 attempts and no error, and still count)
    served = or_(log.attempts > 0, log.cache_hit.is_not(None), log.error_class.is_(None))
    statement = statement.where(log.target.is_not(None), served)
    if since is not None:
        statement = statement.where(_LOG.c.created_at >= since)
    if until is not None:
        statement = statement.where(_LOG.c.created_at < until)
    return statement


def _sums() -> list[ColumnElement[Any]]:
    return [
        func.count().label("requests"),
        func.coalesce(func.sum(_LOG.c.prompt_tokens), 0).label("prompt_tokens"),
        func.coalesce(func.sum(_LOG.c.completion_tokens), 0).label("completion_tokens"),
        func.coalesce(func.sum(_LOG.c.cached_tokens), 0).label("cached_tokens"),
        func.coalesce(func.sum(_LOG.c.cost_usd), 0.0).label("cost_usd"),
        func.coalesce(func.sum(case((_LOG.c.cost_usd.is_(None), 1), else_=0)), 0).label("unpriced"),
        func.coalesce(func.sum(case((_LOG.c.tokens_estimated, 1), else_=0)), 0).label("estimated"),
    ]


def _row(group: str, values: Any) -> CostRow:
    return CostRow(group=group, requests=int(values.requests), prompt_tokens=int(values.prompt_tokens),
                   completion_tokens=int(values.completion_tokens), cached_tokens=int(values.cached_tokens),
                   cost_usd=float(values.cost_usd), unpriced_requests=int(values.unpriced),
                   estimated_requests=int(values.estimated))


def _label(by: str, value: Any) -> str:
    if value is None:
        return NONE_LABELS.get(by, "(none)")
    if by == "day":
        return (dt.date(1970, 1, 1) + dt.timedelta(days=int(value))).isoformat()
    return str(value) or NONE_LABELS.get(by, "(none)")


async def cost_report(engine: AsyncEngine, by: str, *, since: float | None = None,
                      until: float | None = None) -> CostReport:
    """Per-group sums (GROUP BY in the database), the total, and for `day` the per-day split by model."""
    dialect = engine.dialect.name
    group = _group_column(by, dialect).label("grp")
    grouped = _window(select(group, *_sums()), since, until).group_by(group)
    async with engine.connect() as connection:
        rows = [_row(_label(by, values.grp), values) for values in await connection.execute(grouped)]
        total = _row("total", (await connection.execute(_window(select(*_sums()), since, until))).one())
        day_model: list[DayModelCost] = []
        if by == "day":
            day = day_number(dialect).label("day")
            split = _window(select(day, _LOG.c.model, func.coalesce(func.sum(_LOG.c.cost_usd), 0.0).label("cost")),
                            since, until).group_by(day, _LOG.c.model)
            day_model = [DayModelCost(_label("day", item.day), item.model, float(item.cost))
                         for item in await connection.execute(split)]
    if by == "day":
        rows.sort(key=lambda row: row.group)
        day_model.sort(key=lambda item: (item.day, item.model))
    else:
        rows.sort(key=lambda row: (-row.cost_usd, -row.requests, row.group))
    return CostReport(by=by, since=since, until=until, rows=rows, total=total, day_model=day_model)


def format_usd(value: float) -> str:
    """Dollars with the digits a value needs: $0, $0.000123, $1.2345, $1,234.56."""
    if value == 0:
        return "$0"
    if abs(value) < 0.01:
        return f"${value:.6f}"
    return f"${value:,.4f}" if abs(value) < 100 else f"${value:,.2f}"


def _iso(moment: float | None) -> str | None:
    return None if moment is None else dt.datetime.fromtimestamp(moment, dt.UTC).isoformat()


__all__ = ["GROUPINGS", "CostReport", "CostRow", "DayModelCost", "cost_report", "day_number", "format_usd",
           "parse_moment"]
