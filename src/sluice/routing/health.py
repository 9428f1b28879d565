"""Active health checks: a background task calls `backend.health()` per target and takes failing ones out.

A target turns unhealthy after `unhealthy_after` failed checks in a row and healthy again after
`healthy_after` good ones; an unhealthy target gets no traffic. Off unless a model sets `interval_s`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sluice.config import HealthCheckConfig
from sluice.routing.router import Router
from sluice.routing.target import TargetState

log = logging.getLogger("sluice.routing")
_RESCAN_S = 1.0  # longest sleep, so targets of new deployments and backends that finish starting are seen


class HealthStreak:
    """Consecutive check results of one target, and the verdict they lead to (pure)."""

    __slots__ = ("failures", "successes")

    def __init__(self) -> None:
        self.successes = 0
        self.failures = 0

    def observe(self, ok: bool, healthy: bool, config: HealthCheckConfig) -> bool:
        """The target's health after this check result."""
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            return healthy or self.successes >= config.healthy_after
        self.successes, self.failures = 0, self.failures + 1
        return healthy and self.failures < config.unhealthy_after


class HealthChecker:
    """Runs the checks of every target whose model has them on, each at its model's interval."""

    def __init__(self, router: Router, started: Callable[[str], bool]) -> None:
        self._router = router
        self._started = started  # backend name -> has it finished starting (a loading model is not checked)
        self._streaks: dict[tuple[str, str], HealthStreak] = {}
        self._due: dict[tuple[str, str], float] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sluice-health-checks")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def check_due(self) -> float:
        """Run the checks that are due now; returns the seconds until the next one is."""
        router = self._router
        now = router.clock()
        due = []
        for state, backend, policy in router.checked_targets():
            if self._due.get(state.key, now) <= now and self._started(backend.name):
                interval_s = policy.health_check.interval_s or 0.0
                self._due[state.key] = now + interval_s
                due.append(self._check(state, backend.health, policy.health_check))
        if due:
            await asyncio.gather(*due)
        upcoming = min(self._due.values(), default=now + _RESCAN_S)
        return max(0.0, min(upcoming - router.clock(), _RESCAN_S))

    async def _run(self) -> None:
        while True:
            try:
                wait_s = await self.check_due()
            except Exception:  # a bug here must not end health checking for good
                log.exception("health checks failed")
                wait_s = _RESCAN_S
            await asyncio.sleep(wait_s)

    async def _check(self, state: TargetState, health: Callable[[], object],
                     config: HealthCheckConfig) -> None:
        try:
            async with asyncio.timeout(config.timeout_s):
                ok = bool(await health())  # type: ignore[misc]
        except Exception:  # a check that raises or times out is a failed check
            ok = False
        streak = self._streaks.setdefault(state.key, HealthStreak())
        healthy = streak.observe(ok, state.healthy, config)
        metrics = self._router.metrics
        if metrics is not None:
            metrics.health_checked(state, ok)
        if healthy != state.healthy:
            state.healthy = healthy
            log.warning("target %s:%s is now %s (active health checks)", state.backend, state.model,
                        "healthy" if healthy else "unhealthy")


__all__ = ["HealthChecker", "HealthStreak"]
