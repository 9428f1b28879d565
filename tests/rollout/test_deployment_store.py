"""Deployments in the store (SQLite file and PostgreSQL): compare-and-set changes, the audit trail, replicas
picking changes up, the driver lease, and the request-log windows canary analysis reads."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.config import CanaryConfig, SluiceConfig, parse_config
from sluice.errors import InvalidRequest, ModelNotFound
from sluice.records import RequestRecord
from sluice.rollout import DeploymentRegistry, TargetRef
from sluice.rollout.errors import RolloutConflict
from sluice.rollout.metrics import RolloutMetrics
from sluice.rollout.service import RolloutService
from sluice.rollout.webhooks import WebhookNotifier
from sluice.store import deployments, request_log
from tests.support.postgres import database_url, postgres_server, postgres_url  # noqa: F401

RAW = {
    "backends": {"blue": {"type": "openai", "base_url": "http://127.0.0.1:1/v1"},
                 "green": {"type": "openai", "base_url": "http://127.0.0.1:2/v1"}},
    "models": {"chat": {"targets": [{"backend": "blue", "model": "v1"}],
                        "rollout": {"candidate": [{"backend": "green", "model": "v2"}]}}},
}
CONFIG = parse_config(RAW)
GREEN = (TargetRef("green", "v2"),)


def replica(engine: AsyncEngine, config: SluiceConfig = CONFIG) -> RolloutService:
    """One gateway's rollout service over the shared store (its own registry, as a separate process has)."""
    registry = DeploymentRegistry.from_config(config)
    service = RolloutService(registry, {name: frozenset({"chat", "completions"}) for name in config.backends},
                             config.rollout.canary, RolloutMetrics(CollectorRegistry()), WebhookNotifier())
    service.engine = engine
    return service


async def test_a_change_is_stored_audited_and_picked_up_by_another_replica(engine: AsyncEngine) -> None:
    a, b = replica(engine), replica(engine)
    assert await a.sync() and await b.sync()  # first look: nothing stored, the config's stay
    before = await deployments.change_token(engine)
    changed = await a.set_weight("chat", 25, actor="alice", reason="first slice")
    assert changed.version == 1 and a.registry.get("chat") is changed
    assert b.registry.get("chat").candidate_weight == 0  # type: ignore[union-attr]
    assert await deployments.change_token(engine) != before
    assert await b.sync()
    seen = b.registry.get("chat")
    assert seen is not None and (seen.version, seen.candidate_weight) == (1, 25)
    assert b.view(seen)["source"] == "store"
    assert not await b.sync()  # nothing new: one aggregate query, nothing reloaded
    [event] = await a.history("chat", 10)
    assert (event.action, event.actor, event.reason, event.version) == ("set-weight", "alice", "first slice", 1)
    assert event.before is not None and event.before["candidate_weight"] == 0
    assert event.after["candidate_weight"] == 25


async def test_a_stale_replica_rereads_and_applies_its_change_on_top(engine: AsyncEngine) -> None:
    a, b = replica(engine), replica(engine)
    await a.set_weight("chat", 10, actor="alice", reason=None)
    # b has not polled: its compare-and-set on version 0 loses, it re-reads version 1 and writes version 2
    result = await b.set_weight("chat", 50, actor="bob", reason=None)
    assert result.version == 2
    events = await a.history("chat", 10)
    assert [(e.version, e.actor, e.before["candidate_weight"] if e.before else None) for e in events] == [
        (2, "bob", 10.0), (1, "alice", 0.0)]
    await a.sync()
    assert a.registry.get("chat").candidate_weight == 50  # type: ignore[union-attr]


async def test_a_raw_stale_write_is_a_version_conflict(engine: AsyncEngine) -> None:
    a = replica(engine)
    await a.set_weight("chat", 10, actor="alice", reason=None)
    stale = deployments.DeploymentChange(model="chat", expected_version=0, version=1, spec={}, before=None,
                                         action="set-weight", actor="x", reason=None, at=time.time())
    with pytest.raises(deployments.VersionConflict):
        await deployments.commit(engine, stale)
    stale_update = deployments.DeploymentChange(model="chat", expected_version=5, version=6, spec={}, before=None,
                                                action="set-weight", actor="x", reason=None, at=time.time())
    with pytest.raises(deployments.VersionConflict):
        await deployments.commit(engine, stale_update)
    assert len(await a.history("chat", 10)) == 1  # nothing of the failed transactions was kept


async def test_stored_deployments_win_over_the_config_on_start_unless_a_backend_is_gone(engine: AsyncEngine) -> None:
    await replica(engine).set_weight("chat", 40, actor="alice", reason=None)
    restarted = replica(engine)
    await restarted.sync()
    assert restarted.registry.get("chat").candidate_weight == 40  # type: ignore[union-attr]
    without_green = parse_config({**RAW, "backends": {"blue": RAW["backends"]["blue"]},
                                  "models": {"chat": {"targets": [{"backend": "blue", "model": "v1"}]}}})
    shrunk = replica(engine, without_green)
    await shrunk.sync()
    chat = shrunk.registry.get("chat")
    assert chat is not None and chat.version == 0 and chat.candidate == ()  # the config's, not a crash
    assert "candidate.0.backend: 'green'" in shrunk.registry.problems["chat"]


async def test_actions_conflict_with_an_active_canary_and_promote_ends_it(engine: AsyncEngine) -> None:
    service = replica(engine)
    _, run = await service.start_canary("chat", GREEN, CanaryConfig(steps=[10, 50]), actor="alice",
                                        reason="v2")
    assert run.id is not None and run.state == "running" and run.revision == 1
    assert service.registry.get("chat").candidate_weight == 10  # type: ignore[union-attr]
    for attempt in (service.set_weight("chat", 30, actor="bob", reason=None),
                    service.start_canary("chat", None, CanaryConfig(), actor="bob", reason=None)):
        with pytest.raises(RolloutConflict, match="a canary of `chat` is running"):
            await attempt
    promoted = await service.promote("chat", actor="bob", reason="looks good")
    assert promoted.stable == GREEN and promoted.candidate == ()
    latest = await service.latest_run("chat")
    assert latest is not None and latest.state == "promoted" and latest.finished_at is not None
    assert [e.action for e in await service.history("chat", 10)] == ["promote", "start-canary"]


async def test_unknown_model_and_unknown_backend(engine: AsyncEngine) -> None:
    service = replica(engine)
    with pytest.raises(ModelNotFound):
        await service.set_weight("nope", 10, actor="a", reason=None)
    with pytest.raises(InvalidRequest) as error:
        await service.set_candidate("chat", (TargetRef("purple", "v3"),), strategy=None, weight=0, actor="a",
                                    reason=None)
    assert (error.value.param, error.value.code) == ("candidate.0.backend", "unknown_backend")


async def test_the_lease_has_one_holder_until_it_expires_or_is_released(engine: AsyncEngine) -> None:
    now = 1000.0
    assert await deployments.acquire_lease(engine, "canary-driver", "a", now, 10)
    assert not await deployments.acquire_lease(engine, "canary-driver", "b", now + 5, 10)
    assert await deployments.acquire_lease(engine, "canary-driver", "a", now + 5, 10)  # renewal
    assert await deployments.lease_holder(engine, "canary-driver", now + 14) == "a"
    assert not await deployments.acquire_lease(engine, "canary-driver", "b", now + 14, 10)
    assert await deployments.acquire_lease(engine, "canary-driver", "b", now + 15.1, 10)  # a died: b takes over
    await deployments.release_lease(engine, "canary-driver", "b")
    assert await deployments.acquire_lease(engine, "canary-driver", "a", now + 16, 10)


async def test_role_rows_read_one_model_window_of_routed_uncached_requests(engine: AsyncEngine) -> None:
    def record(i: int, **overrides: object) -> RequestRecord:
        values: dict[str, object] = dict(request_id=f"r{i}", created_at=100.0 + i, endpoint="chat", model="chat",
                                         target="blue", backend_type="openai", upstream_model="v1", stream=True,
                                         status_code=200, route_role="stable", ttft_s=0.1, e2e_s=1.0)
        values.update(overrides)
        return RequestRecord(**values)  # type: ignore[arg-type]

    await request_log.insert_many(engine, [
        record(0), record(1, route_role="candidate", status_code=502, error_class="5xx"),
        record(2, model="other"), record(3, cache_hit="exact"), record(4, route_role=None),
        record(9),  # outside [100, 105)
    ])
    rows = await deployments.role_rows(engine, "chat", 100.0, 105.0)
    assert sorted((r.route_role, r.error_class) for r in rows) == [("candidate", "5xx"), ("stable", None)]


async def test_analysis_counts_fallback_answers_as_failures_but_not_a_version_promoted_within_the_window(
        engine: AsyncEngine) -> None:
    service = replica(engine)
    now = time.time()

    def record(i: int, role: str, target: str, upstream: str, at: float) -> RequestRecord:
        return RequestRecord(request_id=f"a{i}", created_at=at, endpoint="chat", model="chat", target=target,
                             backend_type="openai", upstream_model=upstream, stream=False, status_code=200,
                             route_role=role, e2e_s=1.0)

    await service.set_weight("chat", 50, actor="ops", reason=None)
    await request_log.insert_many(engine, [
        record(0, "stable", "blue", "v1", now - 30), record(1, "candidate", "green", "v2", now - 30),
        record(2, "candidate", "spare", "claude", now - 30)])  # green failed; a fallback model answered
    await service.promote("chat", actor="ops", reason=None)  # green is stable now; blue served as stable before
    await request_log.insert_many(engine, [record(3, "stable", "green", "v2", now - 1)])
    verdict, _, _ = await service.analyze_recent("chat", 60)
    assert (verdict.stable.requests, verdict.stable.fallbacks) == (2, 0)  # blue's answer was stable's
    assert (verdict.candidate.requests, verdict.candidate.fallbacks) == (2, 1)
