"""The background side of rollouts: every `poll_interval_s`, pick up deployment changes from the store, and —
on the one replica holding the driver lease — analyse canary windows that are due and act on the verdicts.

Idle cost: one aggregate query per poll (the store's change token). Canary runs are read only when that
token moved (someone started, stepped or ended a canary) or while runs are known to be in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.config import RolloutControlConfig
from sluice.cost import GatewayPricing, GPUPriced
from sluice.rollout import actions
from sluice.rollout.analysis import SideSample, Verdict, analyze, side_targets, split_by_role
from sluice.rollout.canary import CanaryRun, Transition, decide
from sluice.rollout.deployment import Deployment
from sluice.rollout.metrics import RolloutMetrics
from sluice.rollout.registry import DeploymentRegistry
from sluice.rollout.service import RolloutService
from sluice.rollout.stats import load_scipy
from sluice.rollout.webhooks import WebhookNotifier
from sluice.store import deployments as repo

log = logging.getLogger("sluice.rollout")

LEASE = "canary-driver"
DRIVER = "canary-driver"  # the actor of the driver's changes in the audit trail
_ACTIONS = {"advance": "canary-step", "promote": "promote", "rollback": "rollback"}


class CanaryDriver:
    """Drives every running canary while it holds the store lease `canary-driver`."""

    def __init__(self, service: RolloutService, holder: str, lease_s: float, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.service = service
        self.holder = holder
        self.lease_s = lease_s
        self.clock = clock
        self.watching = True  # runs may be in progress: read them on every tick (until a read finds none)
        self._lease_until = 0.0
        self._warming: asyncio.Task[None] | None = None

    async def tick(self, now: float | None = None) -> list[tuple[CanaryRun, Transition, Verdict]]:
        """Analyse and act on every canary window that is due; returns what was done."""
        now = self.clock() if now is None else now
        runs = await self.service.running_runs()
        self.watching = bool(runs)
        if not runs or not await self._lead(now):
            return []
        if self._warming is None:  # the first window is usually an interval away: load scipy meanwhile
            self._warming = asyncio.create_task(asyncio.to_thread(load_scipy), name="canary-load-scipy")
        done = []
        for run in runs:
            if now >= run.due_at:
                result = await self.evaluate(run, now)
                if result is not None:
                    done.append(result)
        return done

    async def evaluate(self, run: CanaryRun, now: float) -> tuple[CanaryRun, Transition, Verdict] | None:
        """Analyse the run's current window, decide, and store the transition, verdict and deployment change
        together. None when someone changed the run or the deployment meanwhile (next tick re-reads).

        The transition is stamped when the analysis is done, not when the tick began: the next step's window
        starts when its weight takes effect (the first analysis loads scipy; a loaded store is slow to read),
        so no part of it is served at the previous weight."""
        engine = self.service.engine
        assert engine is not None
        stable, candidate = await _window_samples(engine, run, self.service.require(run.model))
        settings = run.settings
        verdict = await asyncio.to_thread(analyze, stable, candidate, settings.thresholds, settings.min_requests,
                                          compare_cost=self.service.cost_comparable(run.model),
                                          compare_latency=run.weight < 100)
        now = max(now, self.clock())
        transition = decide(run, verdict.outcome, now)
        start, end = run.step_started_at, run.window_end
        record = repo.VerdictRecord(run_id=run.id or 0, model=run.model, step_index=run.step_index,
                                    weight=run.weight, verdict=verdict.outcome, action=transition.kind,
                                    window_start=start, window_end=end, evidence=verdict.evidence(), created_at=now)
        deployment = self._deployment_after(run, transition)
        reason = "; ".join(verdict.reasons) or f"canary step {run.step_index + 1} {verdict.outcome}"
        try:
            stored = await self.service.commit(deployment, _ACTIONS.get(transition.kind, transition.kind), DRIVER,
                                               reason, run=transition.run, verdict=record)
        except repo.VersionConflict:
            await self.service.resync(run.model)
            return None
        self.service.metrics.verdicts.labels(run.model, verdict.outcome).inc()
        after = stored or transition.run
        current = self.service.registry.get(run.model)
        self.service.notify(after, transition.event, actor=DRIVER,
                            weight=current.candidate_weight if current is not None else 0.0,
                            evidence=verdict.evidence())
        log.info("canary %s of %s: step %d %s -> %s", run.id, run.model, run.step_index + 1, verdict.outcome,
                 transition.kind)
        return after, transition, verdict

    def _deployment_after(self, run: CanaryRun, transition: Transition) -> Deployment | None:
        current = self.service.require(run.model)
        if transition.kind == "promote":
            return actions.promote(current)
        if transition.weight is not None:
            return actions.set_weight(current, transition.weight)
        return None

    async def _lead(self, now: float) -> bool:
        if now < self._lease_until - self.lease_s / 2:
            return True  # renewed recently enough
        engine = self.service.engine
        assert engine is not None
        if await repo.acquire_lease(engine, LEASE, self.holder, now, self.lease_s):
            self._lease_until = now + self.lease_s
            return True
        self._lease_until = 0.0
        return False

    async def release(self) -> None:
        if self._lease_until and self.service.engine is not None:
            await repo.release_lease(self.service.engine, LEASE, self.holder)
            self._lease_until = 0.0


async def _window_samples(engine: AsyncEngine, run: CanaryRun, deployment: Deployment,
                          ) -> tuple[SideSample, SideSample]:
    # While a canary runs only its weight changes (other changes are refused): the sides' targets now are theirs
    # over the whole run, so an answer from any other target came from a fallback model.
    targets = side_targets([deployment])
    rows = await repo.role_rows(engine, run.model, run.step_started_at, run.window_end)
    stable, candidate = split_by_role(rows, targets)
    if run.weight >= 100:  # no stable traffic at 100 %: compare with what stable served earlier in the canary
        start, end = run.baseline_window()
        stable, _ = split_by_role(await repo.role_rows(engine, run.model, start, end), targets)
    return stable, candidate


def gpu_priced_by(pricing: object) -> Callable[[str, str], bool]:
    """(backend, upstream model) -> whether the gateway's pricing stage prices it by GPU-hours."""
    if not isinstance(pricing, GatewayPricing):
        return lambda backend, model: False
    book = pricing.book
    return lambda backend, model: isinstance(book.price_for(backend, model), GPUPriced)


class RolloutControl:
    """What the app lifespan starts and stops: the store sync and the canary driver, in one background task."""

    def __init__(self, config: RolloutControlConfig, registry: DeploymentRegistry,
                 endpoints: Mapping[str, frozenset[str]], metrics_registry: CollectorRegistry, *,
                 pricing: object = None) -> None:
        self.config = config
        self.metrics = RolloutMetrics(metrics_registry)
        self.notifier = WebhookNotifier(on_failure=self.metrics.webhook_failures.inc)
        self.service = RolloutService(registry, endpoints, config.canary, self.metrics, self.notifier,
                                      gpu_priced=gpu_priced_by(pricing))
        holder = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        self.driver = CanaryDriver(self.service, holder, config.lease_s)
        self._task: asyncio.Task[None] | None = None

    async def start(self, engine: AsyncEngine) -> None:
        """Apply the stored deployments before the first request, then keep polling in the background."""
        self.service.engine = engine
        try:
            await self.service.sync()
        except Exception:
            self.metrics.sync_errors.inc()
            log.exception("could not read deployments from the store; serving the config's until it answers")
        self._task = asyncio.create_task(self._loop(), name="rollout-control")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        with contextlib.suppress(Exception):
            await self.driver.release()
        await self.notifier.close()
        self.service.engine = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_interval_s)
            try:
                changed = await self.service.sync()
                if changed or self.driver.watching:
                    await self.driver.tick()
            except Exception:
                self.metrics.sync_errors.inc()
                log.exception("rollout poll failed; retrying in %.1f s", self.config.poll_interval_s)


__all__ = ["DRIVER", "LEASE", "CanaryDriver", "RolloutControl"]
