"""Active health checks against a real loopback upstream, on a clock the test moves: thresholds, intervals,
timeouts, and which targets are checked at all."""

from __future__ import annotations

import pytest

from sluice.backends.openai_compat import OpenAICompatBackend
from sluice.config import HealthCheckConfig, OpenAIBackendConfig
from sluice.routing import HealthChecker, HealthStreak, Router
from tests.routing.helpers import Clock, router_for
from tests.support.openai_server import OpenAIUpstream, make_openai_upstream
from tests.support.servers import serve_app


def test_streaks_need_n_failures_to_go_down_and_m_successes_to_come_back() -> None:
    config = HealthCheckConfig(unhealthy_after=3, healthy_after=2)
    streak, healthy = HealthStreak(), True
    verdicts = []
    for ok in (False, False, True, False, False, False, True, True, False):
        healthy = streak.observe(ok, healthy, config)
        verdicts.append(healthy)
    assert verdicts == [True, True, True, True, True, False, False, True, True]


def checks(app: OpenAIUpstream) -> int:
    return len(app.bodies("/v1/models"))


@pytest.fixture
def served() -> object:
    app = make_openai_upstream(models=["up-model"])
    with serve_app(app) as url:
        yield app, url


def build(url: str, clock: Clock, **health: float) -> tuple[Router, OpenAICompatBackend]:
    backend = OpenAICompatBackend("a", OpenAIBackendConfig(type="openai", base_url=url + "/v1"))
    router = router_for({"m": {"targets": [{"backend": "a"}], "health_check": {"interval_s": 10, **health}},
                         "quiet": {"targets": [{"backend": "a", "model": "other"}]}}, backend, clock=clock)
    router.backends["a"] = backend  # the real adapter, pointed at the loopback upstream
    return router, backend


async def test_a_failing_target_goes_unhealthy_and_comes_back(served: tuple[OpenAIUpstream, str]) -> None:
    app, url = served
    clock = Clock()
    router, backend = build(url, clock, unhealthy_after=2, healthy_after=2)
    checker = HealthChecker(router, started=lambda name: True)
    state = router.state_for("a", "m", router.policy("m"))
    try:
        app.fault = "http_500"
        assert await checker.check_due() == pytest.approx(1.0)  # rescans at least every second
        assert (checks(app), state.healthy) == (1, True)
        await checker.check_due()
        assert checks(app) == 1  # not due again before its interval
        clock.advance(10)
        await checker.check_due()
        assert (checks(app), state.healthy) == (2, False)

        app.fault = None
        clock.advance(10)
        await checker.check_due()
        assert state.healthy is False  # one good check is not enough
        clock.advance(10)
        await checker.check_due()
        assert (checks(app), state.healthy) == (4, True)
    finally:
        await backend.close()


async def test_a_check_that_hangs_past_its_timeout_fails(served: tuple[OpenAIUpstream, str]) -> None:
    app, url = served
    clock = Clock()
    router, backend = build(url, clock, unhealthy_after=1, timeout_s=0.2)
    checker = HealthChecker(router, started=lambda name: True)
    try:
        app.fault = "slow_headers:5"
        await checker.check_due()
        assert router.state_for("a", "m", router.policy("m")).healthy is False
    finally:
        await backend.close()


async def test_only_started_backends_of_models_with_checks_are_checked(served: tuple[OpenAIUpstream, str]) -> None:
    app, url = served
    clock = Clock()
    router, backend = build(url, clock)
    started = False
    checker = HealthChecker(router, started=lambda name: started)
    try:
        await checker.check_due()
        assert checks(app) == 0  # still loading
        started = True
        await checker.check_due()
        assert checks(app) == 1  # `m` only: `quiet` has no health checks
        assert [s.key for s, _, _ in router.checked_targets()] == [("a", "m")]
    finally:
        await backend.close()
