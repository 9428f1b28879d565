"""Deployments changed at run time: validated, stored with an audit event, applied here at once, and picked
up by every other replica on its next poll of the store (`sync`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.config import CanaryConfig
from sluice.errors import InvalidRequest, ModelNotFound
from sluice.rollout import actions
from sluice.rollout.analysis import Verdict, analyze, side_targets, split_by_role
from sluice.rollout.canary import CanaryRun, CanaryState
from sluice.rollout.deployment import Deployment, Side, Strategy, TargetRef
from sluice.rollout.errors import RolloutConflict, StoreNotOpen
from sluice.rollout.metrics import RolloutMetrics
from sluice.rollout.registry import DeploymentRegistry
from sluice.rollout.spec import SpecError, from_spec, to_spec
from sluice.rollout.webhooks import WebhookNotifier
from sluice.store import deployments as repo

log = logging.getLogger("sluice.rollout")

_MIRRORED = frozenset({"chat", "completions"})  # what shadow mode mirrors (rollout/shadow.py)
_RETRIES = 3  # a change that lost a race is re-read and re-applied this many times before a 409
Build = Callable[[Deployment, CanaryRun | None], Deployment]


class RolloutService:
    def __init__(self, registry: DeploymentRegistry, endpoints: Mapping[str, frozenset[str]], defaults: CanaryConfig,
                 metrics: RolloutMetrics, notifier: WebhookNotifier, *,
                 gpu_priced: Callable[[str, str], bool] | None = None) -> None:
        self.registry = registry
        self.gpu_priced = gpu_priced or (lambda backend, model: False)  # (backend, upstream model) -> bool
        self.endpoints = endpoints  # backend name -> the endpoints it serves
        self.defaults = defaults
        self.metrics = metrics
        self.notifier = notifier
        self.engine: AsyncEngine | None = None
        self._token: tuple[int, int] | None = None
        self._stored_versions: dict[str, int] = {}  # model -> newest version seen in the store
        for deployment in registry.all().values():
            metrics.in_force(deployment)

    # --- replicas: pick up what others changed -----------------------------------------------------------

    async def sync(self) -> bool:
        """Apply deployments changed in the store since the last look; True when something changed."""
        engine = self._engine()
        token = await repo.change_token(engine)
        if token == self._token:
            return False
        for stored in await repo.load_all(engine):
            self._apply_stored(stored)
        self._token = token
        return True

    async def resync(self, model: str) -> None:
        stored = await repo.load(self._engine(), model)
        if stored is not None:
            self._apply_stored(stored)

    def _apply_stored(self, stored: repo.StoredDeployment) -> None:
        if stored.version <= self._stored_versions.get(stored.model, 0):
            return
        self._stored_versions[stored.model] = stored.version
        try:
            deployment = from_spec(stored.model, stored.version, stored.spec)
        except SpecError as exc:
            self.registry.problems[stored.model] = f"stored version {stored.version} ignored: {exc}"
            log.warning("deployment of %s: %s", stored.model, self.registry.problems[stored.model])
            return
        problem = self.registry.apply_stored(deployment)
        if problem is not None:
            log.warning("deployment of %s: %s", stored.model, problem)
        else:
            self.metrics.in_force(deployment)

    # --- operator actions ---------------------------------------------------------------------------------

    async def set_weight(self, model: str, weight: float, *, actor: str, reason: str | None) -> Deployment:
        return await self._manual(model, "set-weight", actor, reason, lambda d: actions.set_weight(d, weight))

    async def set_candidate(self, model: str, candidate: tuple[TargetRef, ...], *, strategy: Strategy | None,
                            weight: float, actor: str, reason: str | None) -> Deployment:
        self._check_targets(model, candidate, "candidate")
        return await self._manual(model, "set-candidate", actor, reason,
                                  lambda d: actions.set_candidate(d, candidate, strategy=strategy, weight=weight))

    async def set_shadow(self, model: str, shadow: tuple[TargetRef, ...], *, sample_rate: float | None,
                         max_concurrency: int | None, actor: str, reason: str | None) -> Deployment:
        """Start, change or stop (no targets) shadow mirroring; a running canary is left alone."""
        self._check_targets(model, shadow, "shadow")
        deployment, _ = await self._change(
            model, "set-shadow", actor, reason,
            lambda d, _: actions.set_shadow(d, shadow, sample_rate=sample_rate, max_concurrency=max_concurrency),
            None)
        return deployment

    async def switch(self, model: str, to: Side | None, *, actor: str, reason: str | None) -> Deployment:
        return await self._manual(model, "switch", actor, reason, lambda d: actions.switch(d, to))

    async def start_canary(self, model: str, candidate: tuple[TargetRef, ...] | None, settings: CanaryConfig, *,
                           actor: str, reason: str | None) -> tuple[Deployment, CanaryRun]:
        if candidate is not None:
            self._check_targets(model, candidate, "candidate")
        now = time.time()
        run = CanaryRun(model=model, settings=settings, started_at=now, step_started_at=now, actor=actor,
                        reason=reason)

        def build(current: Deployment, latest: CanaryRun | None) -> Deployment:
            _refuse_if_active(latest, "start another canary")
            return actions.start_canary(current, candidate, settings.steps[0])

        deployment, stored = await self._change(model, "start-canary", actor, reason, build, lambda _: run)
        assert stored is not None
        self.notify(stored, "canary.started", actor=actor, weight=deployment.candidate_weight)
        return deployment, stored

    async def promote(self, model: str, *, actor: str, reason: str | None) -> Deployment:
        return await self._ending(model, "promote", "promoted", actor, reason, actions.promote)

    async def rollback(self, model: str, *, actor: str, reason: str | None) -> Deployment:
        return await self._ending(model, "rollback", "rolled_back", actor, reason, actions.rollback)

    async def _manual(self, model: str, action: str, actor: str, reason: str | None,
                      change: Callable[[Deployment], Deployment]) -> Deployment:
        """A change a running canary would fight with: refused (409) while one is active."""
        def build(current: Deployment, latest: CanaryRun | None) -> Deployment:
            _refuse_if_active(latest, action)
            return change(current)

        deployment, _ = await self._change(model, action, actor, reason, build, None)
        return deployment

    async def _ending(self, model: str, action: str, state: CanaryState, actor: str, reason: str | None,
                      change: Callable[[Deployment], Deployment]) -> Deployment:
        """Promote / rollback: also ends an active canary, in the same transaction."""
        now = time.time()

        def ended(latest: CanaryRun | None) -> CanaryRun | None:
            return latest.finish(state, now) if latest is not None and latest.active else None

        deployment, run = await self._change(model, action, actor, reason, lambda d, _: change(d), ended)
        if run is not None:
            self.notify(run, f"canary.{state}", actor=actor, weight=deployment.candidate_weight)
        return deployment

    async def _change(self, model: str, action: str, actor: str, reason: str | None, build: Build,
                      run_after: Callable[[CanaryRun | None], CanaryRun | None] | None,
                      ) -> tuple[Deployment, CanaryRun | None]:
        """Read, build, store (compare-and-set), apply; re-read and retry when another writer won a race."""
        for _ in range(_RETRIES):
            current = self.require(model)
            latest = await self.latest_run(model)
            deployment = build(current, latest)
            run = run_after(latest) if run_after is not None else None
            try:
                run = await self.commit(deployment, action, actor, reason, run=run)
            except repo.VersionConflict:
                await self.resync(model)
                continue
            return self.registry.get(model) or deployment, run
        raise RolloutConflict(f"The deployment of `{model}` kept changing under this request; try again.",
                              code="deployment_changed")

    async def commit(self, deployment: Deployment | None, action: str, actor: str, reason: str | None, *,
                     run: CanaryRun | None = None, verdict: repo.VerdictRecord | None = None,
                     ) -> CanaryRun | None:
        """Store a new deployment (numbered after the store's version) with its audit event, plus a canary
        run and verdict, in one transaction; then put it in force here. Raises `repo.VersionConflict`."""
        change = None
        if deployment is not None:
            model = deployment.model
            expected = self._stored_versions.get(model, 0)
            deployment = replace(deployment, version=expected + 1)
            before = self.registry.get(model)
            change = repo.DeploymentChange(model=model, expected_version=expected, version=deployment.version,
                                           spec=to_spec(deployment), before=None if before is None else to_spec(before),
                                           action=action, actor=actor, reason=reason, at=time.time())
        stored = await repo.commit(self._engine(), change, run=None if run is None else _to_stored(run),
                                   verdict=verdict)
        if deployment is not None:
            self._stored_versions[deployment.model] = deployment.version
            self.registry.put(deployment)
            self.metrics.in_force(deployment)
            self.metrics.changes.labels(deployment.model, action).inc()
        return None if stored is None else _from_stored(stored)

    # --- reads --------------------------------------------------------------------------------------------

    def require(self, model: str) -> Deployment:
        deployment = self.registry.get(model)
        if deployment is None:
            raise ModelNotFound(model)
        return deployment

    async def latest_run(self, model: str) -> CanaryRun | None:
        stored = await repo.latest_run(self._engine(), model)
        return None if stored is None else _from_stored(stored)

    async def latest_runs(self) -> dict[str, CanaryRun]:
        return {model: _from_stored(run) for model, run in (await repo.latest_runs(self._engine())).items()}

    async def running_runs(self) -> list[CanaryRun]:
        return [_from_stored(run) for run in await repo.running_runs(self._engine())]

    async def history(self, model: str, limit: int) -> list[repo.AuditEvent]:
        self.require(model)
        return await repo.history(self._engine(), model, limit)

    async def verdicts(self, run_id: int, limit: int = 20) -> list[repo.VerdictRecord]:
        return await repo.verdicts(self._engine(), run_id, limit)

    async def analyze_recent(self, model: str, window_s: float) -> tuple[Verdict, float, float]:
        """Candidate vs stable over the last `window_s` seconds, with the running canary's settings (else the
        config's); nothing is stored or changed."""
        deployment = self.require(model)
        end = time.time()
        start = end - window_s
        latest = await self.latest_run(model)
        settings = latest.settings if latest is not None and latest.active else self.defaults
        in_force = [deployment, *await self._versions_since(model, start)]
        stable, candidate = split_by_role(await repo.role_rows(self._engine(), model, start, end),
                                          side_targets(in_force))
        verdict = await asyncio.to_thread(analyze, stable, candidate, settings.thresholds, settings.min_requests,
                                          compare_cost=self.cost_comparable(model))
        return verdict, start, end

    async def _versions_since(self, model: str, since: float) -> list[Deployment]:
        """The versions in force at some moment since `since` besides the current one, from the audit trail
        (a request served by a version's targets then is not a fallback's answer)."""
        versions = []
        for event in await repo.history(self._engine(), model, 1000):  # newest first
            older = event.created_at < since  # the newest change before the window: in force as it began
            specs = [event.after] if older or event.before is None else [event.after, event.before]
            for spec in specs:
                try:
                    versions.append(from_spec(model, event.version, spec))
                except SpecError:
                    continue
            if older:
                break
        return versions

    def cost_comparable(self, model: str) -> bool:
        """Whether cost per request compares versions: not when any target is priced by GPU-hours."""
        deployment = self.require(model)
        return not any(self.gpu_priced(t.backend, t.model) for t in (*deployment.stable, *deployment.candidate))

    def view(self, deployment: Deployment) -> dict[str, Any]:
        model = deployment.model
        return {"model": model, "version": deployment.version,
                "source": "store" if self.registry.from_store(model) else "config", **to_spec(deployment),
                "problem": self.registry.problems.get(model)}

    # --- helpers ------------------------------------------------------------------------------------------

    def _engine(self) -> AsyncEngine:
        if self.engine is None:
            raise StoreNotOpen("The store is not open; deployments cannot change now.", code="store_not_open")
        return self.engine

    def _check_targets(self, model: str, targets: tuple[TargetRef, ...], where: str) -> None:
        """Unknown backend -> 400; a backend that cannot serve what the stable side serves -> 400 (a shadow
        need only serve one of the generation endpoints the stable side serves: those are what is mirrored)."""
        stable = self.require(model).stable
        needed = frozenset.intersection(*(self.endpoints.get(t.backend, frozenset()) for t in stable))
        for index, target in enumerate(targets):
            served = self.endpoints.get(target.backend)
            if served is None:
                known = ", ".join(sorted(self.endpoints)) or "none"
                raise InvalidRequest(f"Unknown backend `{target.backend}` (configured: {known}).",
                                     param=f"{where}.{index}.backend", code="unknown_backend")
            if where == "shadow":
                mirrored = needed & _MIRRORED
                if not mirrored & served:
                    what = " or ".join(sorted(mirrored)) or "chat or completions"
                    raise InvalidRequest(f"Backend `{target.backend}` cannot shadow `{model}`: it does not serve "
                                         f"{what}.", param=f"{where}.{index}.backend", code="unsupported_endpoint")
                continue
            missing = needed - served
            if missing:
                raise InvalidRequest(f"Backend `{target.backend}` does not serve {', '.join(sorted(missing))}, "
                                     f"which `{model}` serves.", param=f"{where}.{index}.backend",
                                     code="unsupported_endpoint")

    def notify(self, run: CanaryRun, event: str, *, actor: str, weight: float,
                evidence: dict[str, Any] | None = None) -> None:
        self.notifier.send(run.settings.webhooks, {
            "event": event, "model": run.model, "run_id": run.id, "state": run.state, "step": run.step_index + 1,
            "steps": run.settings.steps, "weight": weight, "actor": actor, "reason": run.reason,
            "verdict": None if evidence is None else evidence.get("verdict"), "evidence": evidence,
            "at": time.time()})



def _refuse_if_active(run: CanaryRun | None, what: str) -> None:
    if run is not None and run.active:
        raise RolloutConflict(f"Cannot {what}: a canary of `{run.model}` is {run.state} (run {run.id}, step "
                              f"{run.step_index + 1}/{len(run.settings.steps)}); promote or roll it back first.",
                              code="canary_active")


def _to_stored(run: CanaryRun) -> repo.StoredRun:
    return repo.StoredRun(model=run.model, state=run.state, settings=run.settings.model_dump(mode="json"),
                          step_index=run.step_index, step_started_at=run.step_started_at, extensions=run.extensions,
                          started_at=run.started_at, finished_at=run.finished_at, actor=run.actor, reason=run.reason,
                          id=run.id, revision=run.revision)


def _from_stored(run: repo.StoredRun) -> CanaryRun:
    return CanaryRun(model=run.model, settings=CanaryConfig.model_validate(run.settings), started_at=run.started_at,
                     step_started_at=run.step_started_at, actor=run.actor, reason=run.reason,
                     state=run.state,  # type: ignore[arg-type]
                     step_index=run.step_index, extensions=run.extensions, finished_at=run.finished_at, id=run.id,
                     revision=run.revision)


__all__ = ["RolloutService"]
