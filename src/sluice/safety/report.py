"""`sluice safety report`: what guards found over a window of the request log — per guard, direction, category,
action and mode, how many requests and what share of the model's, with example request ids. Monitor-mode rows
are what a guard *would* have done: read them before switching it to enforce."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.store import RequestLog

_LOG = RequestLog.__table__
EXAMPLES = 3
_DIRECTIONS = ("input", "output")


@dataclass(slots=True)
class SafetyRow:
    model: str
    guard: str
    direction: str
    category: str
    action: str
    mode: str
    requests: int = 0  # requests with at least one such verdict
    model_requests: int = 0  # the model's requests in the window (the share's denominator)
    examples: list[str] = field(default_factory=list)  # gateway request ids, newest first

    @property
    def share(self) -> float:
        return self.requests / self.model_requests if self.model_requests else 0.0

    @property
    def would_act(self) -> bool:
        """A monitor-mode verdict: what enforcing would have done."""
        return self.mode == "monitor"


@dataclass(slots=True)
class SafetyReport:
    since: float | None
    until: float | None
    rows: list[SafetyRow]
    requests: dict[str, int]  # model -> requests in the window

    def to_json(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "requests": self.requests,
                "rows": [{**asdict(row), "share": round(row.share, 6)} for row in self.rows]}


async def safety_report(engine: AsyncEngine, *, since: float | None = None, until: float | None = None,
                        model: str | None = None) -> SafetyReport:
    """Read the window's annotated rows (few, newest first) and count every model's requests in SQL."""
    window = []
    if since is not None:
        window.append(_LOG.c.created_at >= since)
    if until is not None:
        window.append(_LOG.c.created_at < until)
    if model is not None:
        window.append(_LOG.c.model == model)
    counted = select(_LOG.c.model, func.count()).where(*window).group_by(_LOG.c.model)
    annotated = (select(_LOG.c.request_id, _LOG.c.model, _LOG.c.annotations)
                 .where(*window, _LOG.c.annotations.is_not(None))
                 .order_by(_LOG.c.created_at.desc(), _LOG.c.id.desc()))
    async with engine.connect() as connection:
        requests = {str(name): int(total) for name, total in (await connection.execute(counted)).all()}
        rows: dict[tuple[str, ...], SafetyRow] = {}
        seen: dict[tuple[str, ...], set[str]] = defaultdict(set)
        for request_id, row_model, annotations in (await connection.execute(annotated)).all():
            for direction in _DIRECTIONS:
                for verdict in (annotations or {}).get(f"guard.{direction}") or ():
                    if not isinstance(verdict, dict):
                        continue
                    if "error" in verdict:  # a called guard that could not decide: how its failure was handled
                        failed_closed = verdict.get("outcome") == "blocked"
                        category, action = "error", "fail-closed" if failed_closed else "fail-open"
                    else:
                        category, action = str(verdict.get("category")), str(verdict.get("action"))
                    key = (row_model, str(verdict.get("guard")), direction, category, action, str(verdict.get("mode")))
                    if request_id in seen[key]:
                        continue
                    seen[key].add(request_id)
                    row = rows.get(key)
                    if row is None:
                        row = rows[key] = SafetyRow(*key, model_requests=requests.get(row_model, 0))
                    row.requests += 1
                    if len(row.examples) < EXAMPLES:
                        row.examples.append(request_id)
    ordered = sorted(rows.values(), key=lambda row: (row.model, -row.requests, row.guard, row.direction))
    return SafetyReport(since, until if until is not None else (time.time() if since is not None else None),
                        ordered, requests)


__all__ = ["EXAMPLES", "SafetyReport", "SafetyRow", "safety_report"]
