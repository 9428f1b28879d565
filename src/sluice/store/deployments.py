"""Deployments in the store: current specs, the audit trail, canary runs and verdicts, the driver's lease,
and the request-log windows canary analysis reads.

Changes are compare-and-set on a version (deployments) or revision (canary runs): a writer that lost a race
gets `VersionConflict` and nothing of its transaction is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson
from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sluice.store.models import CanaryRunRow, CanaryVerdictRow, DeploymentEvent, DeploymentRow, RequestLog, RolloutLease

_DEPLOYMENTS = DeploymentRow.__table__
_EVENTS = DeploymentEvent.__table__
_RUNS = CanaryRunRow.__table__
_VERDICTS = CanaryVerdictRow.__table__
_LEASES = RolloutLease.__table__
_LOG = RequestLog.__table__


class VersionConflict(Exception):
    """Someone else changed the deployment (or canary run) since it was read."""


@dataclass(slots=True, frozen=True)
class StoredDeployment:
    model: str
    version: int
    spec: dict[str, Any]
    updated_at: float
    updated_by: str


@dataclass(slots=True, frozen=True)
class DeploymentChange:
    """One change to store: the new spec replaces the one at `expected_version` (0: none stored yet)."""

    model: str
    expected_version: int
    version: int
    spec: dict[str, Any]
    before: dict[str, Any] | None  # the spec in force before (None: the config's, never stored)
    action: str
    actor: str
    reason: str | None
    at: float


@dataclass(slots=True, frozen=True)
class AuditEvent:
    id: int
    model: str
    version: int
    action: str
    actor: str
    reason: str | None
    created_at: float
    before: dict[str, Any] | None
    after: dict[str, Any]


@dataclass(slots=True, frozen=True)
class StoredRun:
    """A canary run as stored (rollout/canary.py `CanaryRun` is what the code works with)."""

    model: str
    state: str
    settings: dict[str, Any]
    step_index: int
    step_started_at: float
    extensions: int
    started_at: float
    finished_at: float | None
    actor: str
    reason: str | None
    id: int | None = None  # None: not stored yet
    revision: int = 0


@dataclass(slots=True, frozen=True)
class VerdictRecord:
    run_id: int
    model: str
    step_index: int
    weight: float
    verdict: str
    action: str
    window_start: float
    window_end: float
    evidence: dict[str, Any]
    created_at: float
    id: int | None = None


@dataclass(slots=True, frozen=True)
class RoleRow:
    """A request-log row as canary analysis reads it."""

    route_role: str | None
    error_class: str | None
    target: str | None
    upstream_model: str | None
    ttft_s: float | None
    tpot_s: float | None
    e2e_s: float | None
    cost_usd: float | None


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


# --- deployments and their audit trail ------------------------------------------------------------------


async def change_token(engine: AsyncEngine) -> tuple[int, int]:
    """(stored deployments, sum of their versions): changes whenever any deployment changes, because each
    model's version only grows. One aggregate over a handful of rows: cheap enough to poll every second."""
    statement = select(func.count(), func.coalesce(func.sum(_DEPLOYMENTS.c.version), 0))
    async with engine.connect() as connection:
        count, total = (await connection.execute(statement)).one()
    return int(count), int(total)


def _stored(row: Any) -> StoredDeployment:
    return StoredDeployment(row.model, int(row.version), orjson.loads(row.spec), float(row.updated_at),
                            row.updated_by)


async def load_all(engine: AsyncEngine) -> list[StoredDeployment]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(_DEPLOYMENTS).order_by(_DEPLOYMENTS.c.model))
        return [_stored(row) for row in rows]


async def load(engine: AsyncEngine, model: str) -> StoredDeployment | None:
    async with engine.connect() as connection:
        row = (await connection.execute(select(_DEPLOYMENTS).where(_DEPLOYMENTS.c.model == model))).first()
    return None if row is None else _stored(row)


async def commit(engine: AsyncEngine, change: DeploymentChange | None = None, *, run: StoredRun | None = None,
                 verdict: VerdictRecord | None = None) -> StoredRun | None:
    """Store a deployment change with its audit event, a canary run (new or updated) and a verdict, all in
    one transaction. Returns the run as stored (with its id and revision). Raises `VersionConflict`."""
    async with engine.begin() as connection:
        if change is not None:
            await _write_change(connection, change)
        if run is not None:
            run = await _write_run(connection, run)
        if verdict is not None:
            await connection.execute(insert(_VERDICTS), _verdict_row(verdict, run))
    return run


async def _write_change(connection: AsyncConnection, change: DeploymentChange) -> None:
    values = {"version": change.version, "spec": _json(change.spec), "updated_at": change.at,
              "updated_by": change.actor}
    if change.expected_version == 0:
        try:
            async with connection.begin_nested():
                await connection.execute(insert(_DEPLOYMENTS).values(model=change.model, **values))
        except IntegrityError:
            raise VersionConflict(change.model) from None
    else:
        result = await connection.execute(
            update(_DEPLOYMENTS).where(_DEPLOYMENTS.c.model == change.model,
                                       _DEPLOYMENTS.c.version == change.expected_version).values(**values))
        if result.rowcount != 1:
            raise VersionConflict(change.model)
    await connection.execute(insert(_EVENTS).values(
        model=change.model, version=change.version, action=change.action, actor=change.actor,
        reason=change.reason, created_at=change.at, before=None if change.before is None else _json(change.before),
        after=_json(change.spec)))


async def history(engine: AsyncEngine, model: str, limit: int = 50) -> list[AuditEvent]:
    """A model's changes, newest first."""
    statement = select(_EVENTS).where(_EVENTS.c.model == model).order_by(_EVENTS.c.id.desc()).limit(limit)
    async with engine.connect() as connection:
        rows = await connection.execute(statement)
        return [AuditEvent(int(r.id), r.model, int(r.version), r.action, r.actor, r.reason, float(r.created_at),
                           None if r.before is None else orjson.loads(r.before), orjson.loads(r.after))
                for r in rows]


# --- canary runs and verdicts --------------------------------------------------------------------------------


_RUN_FIELDS = ("model", "state", "step_index", "step_started_at", "extensions", "started_at", "finished_at",
               "actor", "reason")


async def _write_run(connection: AsyncConnection, run: StoredRun) -> StoredRun:
    values = {name: getattr(run, name) for name in _RUN_FIELDS}
    values["settings"] = _json(run.settings)
    if run.id is None:
        result = await connection.execute(insert(_RUNS).values(revision=1, **values).returning(_RUNS.c.id))
        return replace(run, id=int(result.scalar_one()), revision=1)
    result = await connection.execute(
        update(_RUNS).where(_RUNS.c.id == run.id, _RUNS.c.revision == run.revision)
        .values(revision=run.revision + 1, **values))
    if result.rowcount != 1:
        raise VersionConflict(f"canary run {run.id}")
    return replace(run, revision=run.revision + 1)


def _run(row: Any) -> StoredRun:
    return StoredRun(model=row.model, state=row.state, settings=orjson.loads(row.settings),
                     step_index=int(row.step_index), step_started_at=float(row.step_started_at),
                     extensions=int(row.extensions), started_at=float(row.started_at),
                     finished_at=None if row.finished_at is None else float(row.finished_at), actor=row.actor,
                     reason=row.reason, id=int(row.id), revision=int(row.revision))


async def latest_run(engine: AsyncEngine, model: str) -> StoredRun | None:
    statement = select(_RUNS).where(_RUNS.c.model == model).order_by(_RUNS.c.id.desc()).limit(1)
    async with engine.connect() as connection:
        row = (await connection.execute(statement)).first()
    return None if row is None else _run(row)


async def latest_runs(engine: AsyncEngine) -> dict[str, StoredRun]:
    """Each model's newest canary run (one query)."""
    newest = select(func.max(_RUNS.c.id)).group_by(_RUNS.c.model)
    async with engine.connect() as connection:
        rows = await connection.execute(select(_RUNS).where(_RUNS.c.id.in_(newest)))
        return {row.model: _run(row) for row in rows}


async def running_runs(engine: AsyncEngine) -> list[StoredRun]:
    """Every canary the driver must watch (state `running`), oldest first."""
    statement = select(_RUNS).where(_RUNS.c.state == "running").order_by(_RUNS.c.id)
    async with engine.connect() as connection:
        return [_run(row) for row in await connection.execute(statement)]


def _verdict_row(verdict: VerdictRecord, run: StoredRun | None) -> dict[str, Any]:
    run_id = run.id if run is not None and run.id is not None else verdict.run_id
    return {"run_id": run_id, "model": verdict.model, "step_index": verdict.step_index, "weight": verdict.weight,
            "verdict": verdict.verdict, "action": verdict.action, "window_start": verdict.window_start,
            "window_end": verdict.window_end, "evidence": _json(verdict.evidence), "created_at": verdict.created_at}


async def verdicts(engine: AsyncEngine, run_id: int, limit: int = 50) -> list[VerdictRecord]:
    """A canary run's verdicts, newest first."""
    statement = select(_VERDICTS).where(_VERDICTS.c.run_id == run_id).order_by(_VERDICTS.c.id.desc()).limit(limit)
    async with engine.connect() as connection:
        rows = await connection.execute(statement)
        return [VerdictRecord(int(r.run_id), r.model, int(r.step_index), float(r.weight), r.verdict, r.action,
                              float(r.window_start), float(r.window_end), orjson.loads(r.evidence),
                              float(r.created_at), int(r.id)) for r in rows]


# --- the request log, by rollout role -----------------------------------------------------------------------


async def role_rows(engine: AsyncEngine, model: str, start: float, end: float) -> list[RoleRow]:
    """Requests for `model` that arrived in [start, end) and were routed to a rollout side, cache hits
    excluded (they never reached either version). Uses the (model, created_at) index."""
    log = _LOG.c
    statement = (select(log.route_role, log.error_class, log.target, log.upstream_model, log.ttft_s, log.tpot_s,
                        log.e2e_s, log.cost_usd)
                 .where(log.model == model, log.created_at >= start, log.created_at < end,
                        log.route_role.in_(("stable", "candidate")), log.cache_hit.is_(None)))
    async with engine.connect() as connection:
        return [RoleRow(*row) for row in await connection.execute(statement)]


# --- the driver's lease ---------------------------------------------------------------------------------------


async def acquire_lease(engine: AsyncEngine, name: str, holder: str, now: float, ttl_s: float) -> bool:
    """Take or renew the lease `name` until now + ttl_s; False while another holder's lease is unexpired.
    Replicas that do not hold it only read (no write lock) until it expires."""
    async with engine.connect() as connection:
        row = (await connection.execute(select(_LEASES).where(_LEASES.c.name == name))).first()
    if row is not None and row.holder != holder and row.expires_at >= now:
        return False
    if row is not None:
        async with engine.begin() as connection:
            result = await connection.execute(
                update(_LEASES).where(_LEASES.c.name == name, or_(_LEASES.c.holder == holder,
                                                                  _LEASES.c.expires_at < now))
                .values(holder=holder, expires_at=now + ttl_s))
        return result.rowcount == 1  # 0: another replica took the expired lease first
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(_LEASES).values(name=name, holder=holder, expires_at=now + ttl_s))
    except IntegrityError:
        return False  # another replica created it first
    return True


async def release_lease(engine: AsyncEngine, name: str, holder: str) -> None:
    """Give the lease up at once (clean shutdown), so another replica need not wait for it to expire."""
    async with engine.begin() as connection:
        await connection.execute(update(_LEASES).where(_LEASES.c.name == name, _LEASES.c.holder == holder)
                                 .values(expires_at=0.0))


async def lease_holder(engine: AsyncEngine, name: str, now: float) -> str | None:
    async with engine.connect() as connection:
        row = (await connection.execute(select(_LEASES).where(_LEASES.c.name == name))).first()
    return row.holder if row is not None and row.expires_at >= now else None


__all__ = [
    "AuditEvent",
    "DeploymentChange",
    "RoleRow",
    "StoredDeployment",
    "StoredRun",
    "VerdictRecord",
    "VersionConflict",
    "acquire_lease",
    "change_token",
    "commit",
    "history",
    "latest_run",
    "latest_runs",
    "lease_holder",
    "load",
    "load_all",
    "release_lease",
    "role_rows",
    "running_runs",
    "verdicts",
]
