"""GPU utilisation of self-hosted backends from the request log: busy time, idle time and what each cost.

Busy time is the union of the request intervals [arrival + queue wait, arrival + E2E] of a backend, computed in
the database ("gaps and islands": each interval, in start order, adds what reaches past the latest end before
it), so it covers every replica's requests at once. Idle = window − busy: GPUs you pay for that served nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.cost.price_book import GPUHours
from sluice.store import RequestLog

_LOG = RequestLog.__table__


@dataclass(slots=True, frozen=True)
class GPUUsage:
    backend: str
    gpu: str | None
    gpu_count: int
    usd_per_hour: float  # all the backend's GPUs
    start: float  # the window (unix seconds)
    end: float
    busy_s: float
    requests: int
    attributed_usd: float  # charged to its requests at request time (the log's cost_usd)

    @property
    def window_s(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def utilisation(self) -> float:
        return self.busy_s / self.window_s if self.window_s > 0 else 0.0

    @property
    def gpu_cost_usd(self) -> float:
        return self.usd_per_hour * self.window_s / 3600

    @property
    def busy_cost_usd(self) -> float:
        return self.usd_per_hour * self.busy_s / 3600

    @property
    def idle_cost_usd(self) -> float:
        return self.gpu_cost_usd - self.busy_cost_usd

    def to_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "gpu": self.gpu, "gpu_count": self.gpu_count,
                "usd_per_hour": self.usd_per_hour, "window_s": self.window_s, "busy_s": self.busy_s,
                "utilisation": self.utilisation, "requests": self.requests, "gpu_cost_usd": self.gpu_cost_usd,
                "busy_cost_usd": self.busy_cost_usd, "idle_cost_usd": self.idle_cost_usd,
                "attributed_usd": self.attributed_usd}


async def gpu_usage(engine: AsyncEngine, backends: Mapping[str, GPUHours], *, since: float | None = None,
                    until: float | None = None, now: float | None = None) -> list[GPUUsage]:
    """One row per GPU-priced backend. The window is [since, until]; without `since` it starts at the backend's
    first request in the log, without `until` it ends now."""
    if not backends:
        return []
    now = time.time() if now is None else now
    start = (_LOG.c.created_at + func.coalesce(_LOG.c.queue_s, 0.0)).label("s")
    end = (_LOG.c.created_at + func.coalesce(_LOG.c.e2e_s, 0.0)).label("e")
    conditions = [_LOG.c.target.in_(list(backends)), _LOG.c.attempts > 0, _LOG.c.cache_hit.is_(None)]
    if since is not None:
        conditions.append(_LOG.c.created_at >= since)
    if until is not None:
        conditions.append(_LOG.c.created_at < until)
    latest_end_before = func.max(end).over(partition_by=_LOG.c.target, order_by=(start, end), rows=(None, -1))
    intervals = select(_LOG.c.target, start, end, _LOG.c.cost_usd,
                       latest_end_before.label("prev_end")).where(and_(*conditions)).subquery()
    s, e, prev = intervals.c.s, intervals.c.e, intervals.c.prev_end
    added = case((or_(prev.is_(None), s >= prev), e - s), (e > prev, e - prev), else_=0.0)
    statement = select(intervals.c.target, func.sum(added).label("busy"), func.count().label("requests"),
                       func.min(s).label("first"), func.coalesce(func.sum(intervals.c.cost_usd), 0.0).label("cost"),
                       ).group_by(intervals.c.target)
    async with engine.connect() as connection:
        found = {row.target: row for row in await connection.execute(statement)}
    usage = []
    for name, hours in backends.items():
        row = found.get(name)
        window_start = since if since is not None else (float(row.first) if row is not None else now)
        window_end = until if until is not None else now
        busy = float(row.busy or 0.0) if row is not None else 0.0
        usage.append(GPUUsage(backend=name, gpu=hours.gpu, gpu_count=hours.gpu_count, usd_per_hour=hours.usd_per_hour,
                              start=window_start, end=window_end, busy_s=min(busy, max(0.0, window_end - window_start)),
                              requests=int(row.requests) if row is not None else 0,
                              attributed_usd=float(row.cost) if row is not None else 0.0))
    return usage


__all__ = ["GPUUsage", "gpu_usage"]
