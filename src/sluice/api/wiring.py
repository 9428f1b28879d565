"""`AppState`: everything the routes need, built from config at start-up and torn down at shutdown."""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.backends import Backend, build_backend
from sluice.backends.base import Supervised
from sluice.backends.worker import WorkerMetrics
from sluice.cache import GatewayCache, build_cache
from sluice.config import BackendConfig, SimBackendConfig, SluiceConfig
from sluice.cost import KeyAdmission, KeyMetrics, build_pricing
from sluice.gateway.pipeline import Gateway
from sluice.gateway.slots import Slots
from sluice.gateway.startup import check_startup
from sluice.rollout import DeploymentRegistry
from sluice.rollout.controller import RolloutControl
from sluice.rollout.shadow_mode import ShadowMode
from sluice.routing import HealthChecker, Router, RoutingMetrics
from sluice.sim import simulator_backend
from sluice.state import SharedState, StateError, open_state
from sluice.telemetry.log_writer import RequestLogWriter
from sluice.telemetry.metrics import GatewayMetrics
from sluice.telemetry.record_bus import RecordBus
from sluice.telemetry.recorder import Recorder
from sluice.telemetry.tracing import Tracing

log = logging.getLogger("sluice.api")


@dataclass(slots=True)
class AppState:
    config: SluiceConfig
    backends: dict[str, Backend]
    gateway: Gateway
    recorder: Recorder
    metrics: GatewayMetrics
    bus: RecordBus  # finished records -> the request log (attached with the store) and analytic subscribers
    master_key: str | None
    started_at: int = field(default_factory=lambda: int(time.time()))
    log_writer: RequestLogWriter | None = None
    engine: AsyncEngine | None = None
    health_checks: HealthChecker | None = None
    rollout: RolloutControl | None = None  # deployment sync + canary driver, started with the store
    shadow: ShadowMode | None = None  # shadow mode: the mirror and its pair writer, opened with the store
    shared_state: SharedState | None = None  # state/: memory:// or Redis, shared by replicas
    admission: KeyAdmission | None = None  # virtual keys, limits, budgets (cost/); /v1 auth goes through it
    cache: GatewayCache | None = None  # exact + semantic response cache (cache/); None: no model caches

    def key_matches(self, token: str) -> bool:
        assert self.master_key is not None
        return hmac.compare_digest(token.encode(), self.master_key.encode())

    def backend_ready(self, name: str) -> bool:
        return self.backend_status(name)[0] == "ready"

    def backend_status(self, name: str) -> tuple[str, str | None]:
        """(`starting` | `ready` | `restarting` | `failed`, why not ready) — what /health/ready reports."""
        task = self.gateway.starting.get(name)
        if task is None or not task.done():
            return "starting", None
        if task.cancelled() or task.exception() is not None:
            backend = self.backends[name]
            if isinstance(backend, Supervised):
                return backend.readiness()
            return "failed", str(task.exception()) if not task.cancelled() else "start cancelled"
        backend = self.backends[name]
        return backend.readiness() if isinstance(backend, Supervised) else ("ready", None)


def build_state(config: SluiceConfig, *, tracing: Tracing | None = None) -> AppState:
    check_startup(config)  # before anything is built: what would not start is a ConfigError naming its key
    metrics = GatewayMetrics()
    worker_metrics = WorkerMetrics(metrics.registry)
    backends = {name: _build_backend(name, backend, worker_metrics) for name, backend in config.backends.items()}
    bus = RecordBus(metrics.registry)  # subscribers attach before the store opens it (api/app.py)
    recorder = Recorder(metrics, tracing or Tracing(config.telemetry.tracing), bus=bus,
                        keep_bodies=config.store.log_bodies != "none")
    slots = {name: Slots(cfg.max_concurrency, metrics.queued.labels(name))
             for name, cfg in config.backends.items()}
    deployments = DeploymentRegistry.from_config(config)
    router = Router.from_config(config, deployments, backends, metrics=RoutingMetrics(metrics.registry))
    gateway = Gateway(deployments, router, slots, recorder,
                      pricing=build_pricing(config, metrics.registry))
    shadow = ShadowMode(config, deployments, backends, metrics.registry, pricing=gateway.pricing)
    gateway.shadow = shadow.mirror
    cache = build_cache(config, metrics.registry, backends)
    if cache is not None:
        gateway.cache = cache
    master_key = config.server.master_key or os.environ.get("SLUICE_MASTER_KEY") or None
    shared_state = open_state(config.state)
    admission = KeyAdmission(shared_state, config.keys, KeyMetrics(metrics.registry), master_key)
    admission.pricing = gateway.pricing  # budget reservations use its estimates
    gateway.admission = admission
    rollout = RolloutControl(config.rollout, deployments, {name: b.endpoints for name, b in backends.items()},
                             metrics.registry, pricing=gateway.pricing)
    return AppState(config=config, backends=backends, gateway=gateway, recorder=recorder, metrics=metrics, bus=bus,
                    master_key=master_key, rollout=rollout, shadow=shadow, shared_state=shared_state,
                    admission=admission, cache=cache)


def _build_backend(name: str, config: BackendConfig, worker_metrics: WorkerMetrics) -> Backend:
    if isinstance(config, SimBackendConfig):  # sim/ builds on backends/, so its adapter is built here
        return simulator_backend(name, config)
    return build_backend(name, config, worker_metrics=worker_metrics)


async def start_admission(state: AppState) -> None:
    """Connect the shared state (Redis: scripts, notifications) and load whether virtual keys exist."""
    if state.shared_state is None or state.admission is None or state.engine is None:
        return
    try:
        await state.shared_state.start()
    except StateError as exc:
        if not state.config.keys.fail_open:
            raise
        log.error("%s; admitting without rate limits and budgets until it answers (keys.fail_open)", exc)
    await state.admission.start(state.engine)


async def stop_admission(state: AppState) -> None:
    """Settle reservations in flight, write keys' last-used times, close the shared state."""
    if state.admission is not None:
        await state.admission.close()
    if state.shared_state is not None:
        await state.shared_state.close()


async def start_backends(state: AppState) -> None:
    """Start every backend in the background: live at once, ready when all have loaded."""
    for name, backend in state.backends.items():
        task = asyncio.create_task(backend.start(), name=f"start-{name}")
        task.add_done_callback(_log_start_failure(name))
        state.gateway.starting[name] = task
    if state.gateway.router.health_checks_configured():
        state.health_checks = HealthChecker(state.gateway.router, state.backend_ready)
        state.health_checks.start()
    if state.cache is not None:
        await state.cache.start()  # its embedder loads and its Redis index syncs in the background


async def stop_backends(state: AppState) -> None:
    if state.health_checks is not None:
        await state.health_checks.stop()
    if state.cache is not None:
        await state.cache.close()
    for task in state.gateway.starting.values():
        task.cancel()
    await asyncio.gather(*state.gateway.starting.values(), return_exceptions=True)
    await asyncio.gather(*(backend.close() for backend in state.backends.values()), return_exceptions=True)


def _log_start_failure(name: str):  # type: ignore[no-untyped-def]
    def callback(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("backend %s failed to start: %s", name, task.exception())
    return callback
