"""One replica drives canaries; when it dies, another takes the lease over once it expires. Driven with explicit
clock values over a real store (SQLite file and PostgreSQL): no waiting."""

from __future__ import annotations

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice.config import CanaryConfig
from sluice.records import RequestRecord
from sluice.rollout import TargetRef
from sluice.rollout.controller import LEASE, CanaryDriver
from sluice.rollout.webhooks import WebhookNotifier
from sluice.store import deployments, request_log
from tests.rollout.test_deployment_store import replica
from tests.support.postgres import database_url, postgres_server, postgres_url  # noqa: F401
from tests.support.servers import free_port, serve_app

GREEN = (TargetRef("green", "v2"),)


async def log_requests(engine: AsyncEngine, role: str, start: float, n: int, tag: str) -> None:
    await request_log.insert_many(engine, [
        RequestRecord(request_id=f"{tag}-{i}", created_at=start + 0.1 * i, endpoint="chat", model="chat",
                      target="green" if role == "candidate" else "blue", backend_type="openai",
                      upstream_model="v2" if role == "candidate" else "v1",
                      stream=True, status_code=200, route_role=role, ttft_s=0.05 + 0.001 * (i % 7),
                      tpot_s=0.01 + 0.0001 * (i % 5), e2e_s=0.5 + 0.01 * (i % 3))
        for i in range(n)])


async def test_only_the_lease_holder_drives_and_another_replica_takes_over_when_it_dies(engine: AsyncEngine) -> None:
    a, b = replica(engine), replica(engine)
    driver_a, driver_b = CanaryDriver(a, "replica-a", lease_s=5), CanaryDriver(b, "replica-b", lease_s=5)
    settings = CanaryConfig(steps=[50, 100], interval_s=10, min_requests=5, log_grace_s=0)
    _, run = await a.start_canary("chat", GREEN, settings, actor="ops", reason=None)
    t0 = run.step_started_at
    await log_requests(engine, "stable", t0, 20, "s1")
    await log_requests(engine, "candidate", t0, 20, "c1")

    assert await driver_a.tick(now=t0 + 5) == []  # window not over yet
    [(after, transition, verdict)] = await driver_a.tick(now=t0 + 10.5)
    assert (verdict.outcome, transition.kind, after.weight) == ("pass", "advance", 100.0)
    assert await deployments.lease_holder(engine, LEASE, t0 + 10.5) == "replica-a"
    await b.sync()
    assert b.registry.get("chat").candidate_weight == 100  # type: ignore[union-attr]

    # replica a dies without releasing the lease; b sees the run but must not drive it until the lease expires
    await log_requests(engine, "candidate", t0 + 10.5, 20, "c2")
    assert await driver_b.tick(now=t0 + 12) == []
    assert await driver_b.tick(now=t0 + 15) == []
    [(after, transition, verdict)] = await driver_b.tick(now=t0 + 21)  # a's lease ran out at t0 + 15.5
    assert (verdict.outcome, transition.kind, after.state) == ("pass", "promote", "promoted")
    assert {c.name: c.outcome for c in verdict.checks}["ttft"] == "skipped"  # 100 %: errors vs the baseline only
    assert verdict.stable.requests == 20  # stable's traffic from the 50 % step
    assert await deployments.lease_holder(engine, LEASE, t0 + 21) == "replica-b"
    events = await b.history("chat", 10)
    assert [(e.action, e.actor) for e in events] == [("promote", "canary-driver"), ("canary-step", "canary-driver"),
                                                     ("start-canary", "ops")]
    assert b.registry.get("chat").stable == GREEN  # type: ignore[union-attr]
    assert await driver_b.tick(now=t0 + 30) == []  # nothing left to drive


async def test_a_driver_that_lost_the_race_for_a_run_does_not_act_twice(engine: AsyncEngine) -> None:
    a, b = replica(engine), replica(engine)
    settings = CanaryConfig(steps=[50, 100], interval_s=10, min_requests=5, log_grace_s=0)
    _, run = await a.start_canary("chat", GREEN, settings, actor="ops", reason=None)
    t0 = run.step_started_at
    await log_requests(engine, "stable", t0, 10, "s")
    await log_requests(engine, "candidate", t0, 10, "c")
    stale = (await b.running_runs())[0]
    first = await CanaryDriver(a, "a", 5).evaluate(stale, t0 + 11)
    second = await CanaryDriver(b, "b", 5).evaluate(stale, t0 + 11)  # same revision: compare-and-set fails
    assert first is not None and second is None
    assert len(await b.verdicts(run.id or 0)) == 1
    assert [e.action for e in await a.history("chat", 10)] == ["canary-step", "start-canary"]


async def test_webhooks_retry_then_give_up_without_blocking() -> None:
    hits: list[bytes] = []

    async def broken(request: Request) -> Response:
        hits.append(await request.body())
        return Response(status_code=503)

    failures: list[int] = []
    notifier = WebhookNotifier(on_failure=lambda: failures.append(1), backoff_s=(0.0,))
    with serve_app(Starlette(routes=[Route("/hook", broken, methods=["POST"])])) as url:
        notifier.send([url + "/hook", f"http://127.0.0.1:{free_port()}/gone"],
                      {"event": "canary.rolled_back", "model": "chat"})
        assert (notifier.delivered, notifier.failed, hits) == (0, 0, [])  # queued: send returned at once
        await notifier.drain()
    assert len(hits) == 4 and orjson.loads(hits[0]) == {"event": "canary.rolled_back", "model": "chat"}
    assert (notifier.delivered, notifier.failed, len(failures)) == (0, 2, 2)  # both URLs given up on
    await notifier.close()


async def test_the_next_step_starts_when_the_verdict_is_stored_not_when_the_tick_began(engine: AsyncEngine) -> None:
    a = replica(engine)
    settings = CanaryConfig(steps=[50, 100], interval_s=10, min_requests=5, log_grace_s=0)
    _, run = await a.start_canary("chat", GREEN, settings, actor="ops", reason=None)
    t0 = run.step_started_at
    await log_requests(engine, "stable", t0, 10, "s")
    await log_requests(engine, "candidate", t0, 10, "c")
    # the tick began at t0 + 10.5, but reading the window and analysing it took until t0 + 16 (a loaded store,
    # scipy's first import): the 100 % step must not count those 5.5 s, served at 50 %, as its own
    driver = CanaryDriver(a, "a", 30, clock=lambda: t0 + 16)
    [(after, transition, _)] = await driver.tick(now=t0 + 10.5)
    assert (transition.kind, after.weight, after.step_started_at) == ("advance", 100.0, t0 + 16)
    [verdict] = await a.verdicts(run.id or 0)
    assert verdict.created_at == t0 + 16 and (verdict.window_start, verdict.window_end) == (t0, t0 + 10)
    assert await driver.tick(now=t0 + 25) == []  # the 100 % window runs to t0 + 26
