"""Eval runs kept against registry versions, on SQLite and PostgreSQL: recorded against the version an alias
names at that moment, listed newest first without their cases, a baseline found by suite hash, the last gate."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.registry import (
    EvalRun,
    RegistryError,
    RegistryNotFound,
    VersionSpec,
    baseline_run,
    get_eval_run,
    last_gate,
    list_eval_runs,
    record_eval_run,
    register,
    set_alias,
)

HASH_A, HASH_B = "a" * 64, "b" * 64
CASES = [{"case_id": "france", "repeat": 0, "passed": True, "scores": [], "latency_s": 0.1}]


def run(suite_hash: str = HASH_A, gate_status: str | None = None, **overrides: object) -> EvalRun:
    values: dict[str, object] = dict(model="ignored", version=0, suite="capitals", suite_hash=suite_hash,
                                     target="chat (candidate side)", repeats=1,
                                     summary={"accuracy": 1.0}, gate_status=gate_status,
                                     gate=None if gate_status is None else {"status": gate_status}, cases=CASES)
    values.update(overrides)
    return EvalRun(**values)  # type: ignore[arg-type]


async def test_a_run_is_recorded_against_the_version_the_alias_names_then(engine: AsyncEngine) -> None:
    await register(engine, "support", VersionSpec(base_model="base"))
    await register(engine, "support", VersionSpec(base_model="base"))
    await set_alias(engine, "support", "production", 1)
    stored = await record_eval_run(engine, "support", "production", run(), actor="ci")
    await set_alias(engine, "support", "production", 2)
    assert (stored.model, stored.version, stored.created_by) == ("support", 1, "ci")
    fetched = await get_eval_run(engine, stored.id or 0)
    assert fetched == stored
    assert fetched.cases == CASES


async def test_runs_list_newest_first_without_cases_filtered_by_version_and_hash(engine: AsyncEngine) -> None:
    await register(engine, "support", VersionSpec(base_model="base"))
    await register(engine, "support", VersionSpec(base_model="base"))
    first = await record_eval_run(engine, "support", 1, run())
    second = await record_eval_run(engine, "support", 1, run(HASH_B))
    third = await record_eval_run(engine, "support", 2, run())
    listed = await list_eval_runs(engine, "support")
    assert [found.id for found in listed] == [third.id, second.id, first.id]
    assert all(found.cases == [] for found in listed)
    assert [found.id for found in await list_eval_runs(engine, "support", 1)] == [second.id, first.id]
    assert [found.id for found in await list_eval_runs(engine, "support", suite_hash=HASH_A)] == [third.id,
                                                                                                  first.id]


async def test_the_baseline_is_the_latest_run_of_the_version_on_the_same_suite(engine: AsyncEngine) -> None:
    await register(engine, "support", VersionSpec(base_model="base"))
    await set_alias(engine, "support", "production", 1)
    await record_eval_run(engine, "support", 1, run(summary={"n": 1}))
    newest = await record_eval_run(engine, "support", 1, run(summary={"n": 2}))
    await record_eval_run(engine, "support", 1, run(HASH_B))
    found = await baseline_run(engine, "support", "production", HASH_A)
    assert found.id == newest.id and found.cases == CASES
    with pytest.raises(RegistryNotFound, match=r"no eval run of support@1 on suite hash cccccccccccc: record one "
                                               r"with `sluice eval run SUITE --target support@1 --record`"):
        await baseline_run(engine, "support", "production", "c" * 64)


async def test_last_gate_ignores_runs_without_a_gate(engine: AsyncEngine) -> None:
    await register(engine, "support", VersionSpec(base_model="base"))
    assert await last_gate(engine, "support", 1) is None
    await record_eval_run(engine, "support", 1, run(gate_status="fail"))
    await record_eval_run(engine, "support", 1, run())
    gated = await last_gate(engine, "support", 1)
    assert gated is not None and gated.gate_status == "fail"
    await record_eval_run(engine, "support", 1, run(gate_status="pass"))
    gated = await last_gate(engine, "support", 1)
    assert gated is not None and gated.gate_status == "pass"


async def test_unknown_models_versions_and_bad_statuses_are_errors(engine: AsyncEngine) -> None:
    with pytest.raises(RegistryNotFound, match="unknown model 'nope'"):
        await record_eval_run(engine, "nope", 1, run())
    with pytest.raises(RegistryNotFound, match="unknown model 'nope'"):
        await list_eval_runs(engine, "nope")
    await register(engine, "support", VersionSpec(base_model="base"))
    with pytest.raises(RegistryNotFound, match="support has no version 7"):
        await record_eval_run(engine, "support", 7, run())
    with pytest.raises(RegistryError, match="gate_status 'maybe'"):
        await record_eval_run(engine, "support", 1, run(gate_status="maybe"))
    with pytest.raises(RegistryNotFound, match="no eval run 99"):
        await get_eval_run(engine, 99)
