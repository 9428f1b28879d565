"""Eval runs recorded against registry versions (store/ table `eval_runs`): what `sluice models show` lists, the
baseline a gate compares with (the latest run of a version on the same suite hash), and the last gate verdict an
alias move to `production` checks.

The run's numbers come from the evals package as plain JSON; this module only keeps and finds them, so the
registry needs nothing from evals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import desc, insert, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.registry.store import _resolve, _versions_of
from sluice.registry.versions import RegistryError, RegistryNotFound, check_model_name
from sluice.store import EvalRunRow

_RUNS = EvalRunRow.__table__
_LISTED = [column for column in _RUNS.c if column.name != "cases"]

PROTECTED_ALIASES = frozenset({"production"})  # moving one of these checks the version's last gate
GATE_STATUSES = frozenset({"pass", "fail", "inconclusive"})
MAX_CASES = 100_000


@dataclass(frozen=True, slots=True)
class EvalRun:
    model: str
    version: int
    suite: str
    suite_hash: str
    target: str
    repeats: int
    summary: dict[str, Any]
    gate_status: str | None = None
    gate: dict[str, Any] | None = None
    cases: list[dict[str, Any]] = field(default_factory=list)  # empty when listed
    id: int | None = None
    created_at: float | None = None
    created_by: str | None = None

    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model, "version": self.version, "suite": self.suite,
                "suite_hash": self.suite_hash, "target": self.target, "repeats": self.repeats,
                "summary": self.summary, "gate_status": self.gate_status, "gate": self.gate, "cases": self.cases,
                "created_at": self.created_at, "created_by": self.created_by}


def _from_row(row: RowMapping) -> EvalRun:
    return EvalRun(model=row["model"], version=row["version"], suite=row["suite"], suite_hash=row["suite_hash"],
                   target=row["target"], repeats=row["repeats"], summary=row["summary"] or {},
                   gate_status=row["gate_status"], gate=row["gate"], cases=row.get("cases") or [], id=row["id"],
                   created_at=row["created_at"], created_by=row["created_by"])


async def record_eval_run(engine: AsyncEngine, model: str, ref: int | str | None, run: EvalRun,
                          *, actor: str | None = None) -> EvalRun:
    """Store `run` against the version `ref` names now (a number, an alias, latest); the stored run back."""
    check_model_name(model)
    if run.gate_status is not None and run.gate_status not in GATE_STATUSES:
        raise RegistryError(f"gate_status {run.gate_status!r}: one of {', '.join(sorted(GATE_STATUSES))}")
    if len(run.cases) > MAX_CASES:
        raise RegistryError(f"cases: at most {MAX_CASES:,} case results per run")
    async with engine.begin() as connection:
        version = await _resolve(connection, model, ref)
        values = {**run.to_json(), "model": model, "version": version, "created_at": time.time(),
                  "created_by": actor}
        del values["id"]
        row = (await connection.execute(insert(_RUNS).values(values).returning(*_RUNS.c))).mappings().one()
    return _from_row(row)


async def list_eval_runs(engine: AsyncEngine, model: str, ref: int | str | None = None, *,
                         suite_hash: str | None = None, limit: int = 20) -> list[EvalRun]:
    """The model's runs (of version `ref` when given, of one suite hash when given), newest first, without their
    case results."""
    check_model_name(model)
    statement = select(*_LISTED).where(_RUNS.c.model == model)
    async with engine.connect() as connection:
        if ref is None:
            await _versions_of(connection, model)  # an unknown model is an error, not an empty list
        else:
            statement = statement.where(_RUNS.c.version == await _resolve(connection, model, ref))
        if suite_hash is not None:
            statement = statement.where(_RUNS.c.suite_hash == suite_hash)
        rows = (await connection.execute(statement.order_by(desc(_RUNS.c.created_at), desc(_RUNS.c.id))
                                          .limit(limit))).mappings().all()
    return [_from_row(row) for row in rows]


async def get_eval_run(engine: AsyncEngine, run_id: int) -> EvalRun:
    """One run with its case results; RegistryNotFound when there is none with this id."""
    async with engine.connect() as connection:
        row = (await connection.execute(select(_RUNS).where(_RUNS.c.id == run_id))).mappings().one_or_none()
    if row is None:
        raise RegistryNotFound(f"no eval run {run_id} (sluice models show MODEL@VERSION lists a version's runs)")
    return _from_row(row)


async def baseline_run(engine: AsyncEngine, model: str, ref: int | str | None, suite_hash: str) -> EvalRun:
    """The latest run of the version `ref` names on this suite hash, with its cases: a gate's baseline."""
    found = await list_eval_runs(engine, model, ref, suite_hash=suite_hash, limit=1)
    if not found:
        version = await _version_number(engine, model, ref)
        raise RegistryNotFound(
            f"no eval run of {model}@{version} on suite hash {suite_hash[:12]}: record one with `sluice eval run "
            f"SUITE --target {model}@{version} --record` (a baseline must be a run of the same suite)")
    assert found[0].id is not None
    return await get_eval_run(engine, found[0].id)


async def last_gate(engine: AsyncEngine, model: str, version: int) -> EvalRun | None:
    """The newest run of the version that went through a gate, or None."""
    statement = (select(*_LISTED).where(_RUNS.c.model == model, _RUNS.c.version == version,
                                        _RUNS.c.gate_status.is_not(None))
                 .order_by(desc(_RUNS.c.created_at), desc(_RUNS.c.id)).limit(1))
    async with engine.connect() as connection:
        row = (await connection.execute(statement)).mappings().one_or_none()
    return None if row is None else _from_row(row)


async def _version_number(engine: AsyncEngine, model: str, ref: int | str | None) -> int:
    async with engine.connect() as connection:
        return await _resolve(connection, model, ref)


__all__ = ["GATE_STATUSES", "PROTECTED_ALIASES", "EvalRun", "baseline_run", "get_eval_run", "last_gate",
           "list_eval_runs", "record_eval_run"]
