"""The composition root: the one place that reads the config and builds the gateway — backends, router, every
model's stage chain, stores, the record bus and its subscribers — and starts and closes them in order.

Routes get an `AppState` and call `state.gateway`; they never reach into a stage. Adding a stage to the request
path is one line in `_stages` (docs/architecture.md#adding-a-stage).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.backends import Backend, Completion, CompletionRequest, Supervised, WorkerMetrics, build_backend
from sluice.cache import CacheStage, GatewayCache, build_cache
from sluice.config import BackendConfig, SimBackendConfig, SluiceConfig, merge_structured_config
from sluice.cost import AdmissionStage, GatewayPricing, KeyAdmission, KeyMetrics, PricingStage, build_pricing
from sluice.gateway import (
    Call,
    Chain,
    ChainSet,
    EndStage,
    Gateway,
    Kind,
    RequestContext,
    RoutingTerminal,
    Slots,
    Stage,
    check_startup,
)
from sluice.prompts import PromptResolver, PromptStage
from sluice.records import new_request_id
from sluice.rollout import DeploymentRegistry, RolloutControl, ShadowMode, ShadowStage
from sluice.routing import CostRoutingStage, HealthChecker, Router, RouteStage, RoutingMetrics
from sluice.safety import (
    GUARD_CALL,
    CalledGuard,
    Guard,
    GuardStage,
    LlamaGuard,
    ModelCaller,
    SafetyMetrics,
    build_guard,
)
from sluice.sim import simulator_backend
from sluice.state import SharedState, StateError, open_state
from sluice.store import create_engine, migrate
from sluice.structured import StructuredMetrics, StructuredStage
from sluice.tags import HeaderTags
from sluice.telemetry import GatewayMetrics, RecordBus, Recorder, RequestLogWriter, Tracing

log = logging.getLogger("sluice.compose")


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
    prompts: PromptResolver | None = None  # registered prompts named by requests; its store opens with the state's

    def key_matches(self, token: str) -> bool:
        assert self.master_key is not None
        return hmac.compare_digest(token.encode(), self.master_key.encode())

    def backend_ready(self, name: str) -> bool:
        return self.backend_status(name)[0] == "ready"

    def backend_status(self, name: str) -> tuple[str, str | None]:
        """(`starting` | `ready` | `restarting` | `failed`, why not ready) — what /health/ready reports."""
        task = self.gateway.terminal.starting.get(name)
        if task is None or not task.done():
            return "starting", None
        if task.cancelled() or task.exception() is not None:
            backend = self.backends[name]
            if isinstance(backend, Supervised):
                return backend.readiness()
            return "failed", str(task.exception()) if not task.cancelled() else "start cancelled"
        backend = self.backends[name]
        return backend.readiness() if isinstance(backend, Supervised) else ("ready", None)


@dataclass(slots=True, frozen=True)
class _Parts:
    """What the chains are built from."""

    config: SluiceConfig
    router: Router
    admission: KeyAdmission
    pricing: GatewayPricing | None
    cache: GatewayCache | None
    shadow: ShadowMode
    guards: dict[str, Guard | CalledGuard]  # safety.guards, built once; models share them
    safety_metrics: SafetyMetrics | None
    structured_metrics: StructuredMetrics
    prompts: PromptResolver


def build_state(config: SluiceConfig, *, tracing: Tracing | None = None) -> AppState:
    check_startup(config)  # before anything is built: what would not start is a ConfigError naming its key
    metrics = GatewayMetrics()
    worker_metrics = WorkerMetrics(metrics.registry)
    backends = {name: _build_backend(name, backend, worker_metrics) for name, backend in config.backends.items()}
    bus = RecordBus(metrics.registry)  # the request log attaches when the store opens (`start`)
    tracing = tracing or Tracing(config.telemetry.tracing)
    recorder = Recorder(metrics, tracing, bus=bus, keep_bodies=config.store.log_bodies != "none")
    slots = {name: Slots(cfg.max_concurrency, metrics.queued.labels(name)) for name, cfg in config.backends.items()}
    deployments = DeploymentRegistry.from_config(config)
    router = Router.from_config(config, deployments, backends, metrics=RoutingMetrics(metrics.registry))
    pricing = build_pricing(config, metrics.registry)
    shadow = ShadowMode(config, deployments, backends, metrics.registry, pricing=pricing)
    cache = build_cache(config, metrics.registry, backends)
    master_key = config.server.master_key or os.environ.get("SLUICE_MASTER_KEY") or None
    shared_state = open_state(config.state)
    admission = KeyAdmission(shared_state, config.keys, KeyMetrics(metrics.registry), master_key)
    admission.pricing = pricing  # budget reservations use its estimates
    guards = {name: build_guard(name, guard) for name, guard in config.safety.guards.items()}
    safety_metrics = SafetyMetrics(metrics.registry) if guards else None
    prompts = PromptResolver(None)  # the store opens in `start`
    parts = _Parts(config, router, admission, pricing, cache, shadow, guards, safety_metrics,
                   StructuredMetrics(metrics.registry), prompts)
    terminal = RoutingTerminal(router, slots, tracing)
    chains = ChainSet(lambda model, kind: _chain(parts, terminal, model, kind))
    deployments.on_change(chains.invalidate)  # a new deployment version may add or drop its shadow stage
    gateway = Gateway(chains, terminal, deployments, recorder, quote=pricing.quote if pricing is not None else None)
    for guard in guards.values():
        if isinstance(guard, LlamaGuard):  # its model is called through the gateway's own chains
            guard.bind(_model_caller(gateway))
    rollout = RolloutControl(config.rollout, deployments, {name: b.endpoints for name, b in backends.items()},
                             metrics.registry, pricing=pricing)
    return AppState(config=config, backends=backends, gateway=gateway, recorder=recorder, metrics=metrics, bus=bus,
                    master_key=master_key, rollout=rollout, shadow=shadow, shared_state=shared_state,
                    admission=admission, cache=cache, prompts=prompts)


def _stages(parts: _Parts, model: str, kind: Kind) -> list[Stage | EndStage]:
    """A model's stages, in order (docs/architecture.md#the-chain); a feature that is off adds none."""
    router = parts.router
    model_config = parts.config.models.get(model)
    stages: list[Stage | EndStage] = []
    if kind == "generate":  # a prompt the request names, rendered into it before anything reads the request
        stages.append(PromptStage(parts.prompts))
    if model in router.difficulty:
        stages.append(CostRoutingStage(router))  # a router model: which of its models serves
    stages.append(RouteStage(router))  # the serving deployment, the caller's side of a rollout, its replicas
    if parts.config.tags.headers:
        stages.append(HeaderTags(parts.config.tags))
    stages.append(AdmissionStage(parts.admission))  # keys: permissions, limits, budget (settled at the end)
    if parts.pricing is not None:
        stages.append(PricingStage(parts.pricing))  # the cost, at the end: inside admission, which settles it
    if parts.safety_metrics is not None and kind == "generate":  # the model's guards, and any a request adds
        names = model_config.guards if model_config is not None else []
        safety = parts.config.safety  # the prompt before the cache or any upstream sees it; the answer as it streams
        stages.append(GuardStage([parts.guards[name] for name in names], parts.guards, parts.safety_metrics,
                                 window_chars=safety.window_chars, hold_back_chars=safety.hold_back_chars,
                                 teams=safety.teams, keys=safety.keys))
    if kind == "generate":
        if parts.cache is not None and model in parts.cache.settings:
            stages.append(CacheStage(parts.cache))
        deployment = router.deployments.get(model)
        if deployment is not None and deployment.shadow:
            stages.append(ShadowStage(parts.shadow.mirror))  # mirrors misses as the primary starts
        structured = merge_structured_config(parts.config.structured, model_config and model_config.structured)
        if structured.enforce:  # innermost: a re-ask goes straight upstream; the cache keeps what the client got
            stages.append(StructuredStage(structured, parts.structured_metrics))
    return stages


def _chain(parts: _Parts, terminal: RoutingTerminal, model: str, kind: Kind) -> Chain | None:
    """The chain of a model this gateway serves (a deployment or a router model); None for any other name."""
    if parts.router.deployments.get(model) is None and model not in parts.router.difficulty:
        return None
    return Chain(_stages(parts, model, kind), terminal)


def _model_caller(gateway: Gateway) -> ModelCaller:
    """A guard's own model call (Llama Guard): a /v1/completions request of the gateway's, through the model's
    chain — routed, priced and logged like any — linked to the request it guards (`guard.parent_request_id`)."""

    async def call(model: str, body: dict[str, Any], parent: RequestContext | None) -> Completion:
        ctx = RequestContext(new_request_id(), "completions", None)
        ctx.model = model
        request = CompletionRequest.model_validate(body)
        ctx.request, ctx.raw_body = request, body
        if parent is not None:
            ctx.team = parent.team
            ctx.annotate(GUARD_CALL, parent.request_id)  # its own guards skip it: no guard calls itself
        gateway.recorder.start(ctx)
        return await gateway.complete(Call(ctx, request))

    return call


def _build_backend(name: str, config: BackendConfig, worker_metrics: WorkerMetrics) -> Backend:
    if isinstance(config, SimBackendConfig):  # sim/ builds on backends/, so its adapter is built here
        return simulator_backend(name, config)
    return build_backend(name, config, worker_metrics=worker_metrics)


# --- start and close, in order -----------------------------------------------------------------------------


async def start(state: AppState) -> None:
    """Everything a request may need, before the first one: the store and the record bus, shared state and keys,
    stored deployments, shadow mode's pair writer; then the backends (they load in the background)."""
    await _open_store(state)
    await _start_admission(state)  # shared state (Redis) and virtual keys, before any request
    _start_prompts(state)
    if state.rollout is not None and state.engine is not None:
        await state.rollout.start(state.engine)  # stored deployments win over the config's, before any request
    if state.shadow is not None and state.engine is not None:
        await state.shadow.open(state.engine)  # shadow mode: its pair writer, on the store
    state.gateway.describe(state.config.models)  # every model's chains built now, not by its first request
    await _start_backends(state)


async def close(state: AppState) -> None:
    """The reverse: shadow calls get their deadline, backends stop, settlements land, then the record bus drains
    every record into the store before it closes."""
    if state.shadow is not None:
        await state.shadow.close()  # shadow calls get their deadline, then their pairs are written
    await _stop_backends(state)
    await _stop_admission(state)
    if state.rollout is not None:
        await state.rollout.stop()
    await _close_store(state)
    state.recorder.tracing.shutdown()


async def _open_store(state: AppState) -> None:
    await migrate(state.config.store.url)
    engine = create_engine(state.config.store.url)
    metrics = state.metrics
    writer = RequestLogWriter(engine, state.config.store, on_queue_full=metrics.log_queue_full.inc,
                              on_rows_written=metrics.log_rows.inc, on_write_error=metrics.log_write_errors.inc,
                              on_rows_dropped=metrics.log_rows_dropped.inc)
    state.engine, state.log_writer = engine, writer
    state.bus.attach("request_log", writer)  # hold in order: no row lost on a clean shutdown
    await state.bus.start()


async def _close_store(state: AppState) -> None:
    engine = state.engine
    if state.log_writer is not None:  # the bus was started with the store: drain every subscriber
        await state.bus.close(timeout_s=state.config.server.graceful_shutdown_s)
        state.bus.detach("request_log")  # a later start opens the store with a new writer
    if engine is not None:
        await engine.dispose()


async def _start_admission(state: AppState) -> None:
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


def _start_prompts(state: AppState) -> None:
    """The prompt resolver reads the store and drops what it kept of a prompt when any replica announces a change."""
    if state.prompts is not None and state.engine is not None:
        state.prompts.engine = state.engine
        if state.shared_state is not None:
            state.prompts.listen(state.shared_state)


async def _stop_admission(state: AppState) -> None:
    """Settle reservations in flight, write keys' last-used times, close the shared state."""
    if state.admission is not None:
        await state.admission.close()
    if state.shared_state is not None:
        await state.shared_state.close()


async def _start_backends(state: AppState) -> None:
    """Start every backend in the background: live at once, ready when all have loaded."""
    starting = state.gateway.terminal.starting
    for name, backend in state.backends.items():
        task = asyncio.create_task(backend.start(), name=f"start-{name}")
        task.add_done_callback(_log_start_failure(name))
        starting[name] = task
    if state.gateway.router.health_checks_configured():
        state.health_checks = HealthChecker(state.gateway.router, state.backend_ready)
        state.health_checks.start()
    if state.cache is not None:
        await state.cache.start()  # its embedder loads and its Redis index syncs in the background


async def _stop_backends(state: AppState) -> None:
    if state.health_checks is not None:
        await state.health_checks.stop()
    if state.cache is not None:
        await state.cache.close()
    starting = state.gateway.terminal.starting
    for task in starting.values():
        task.cancel()
    await asyncio.gather(*starting.values(), return_exceptions=True)
    await asyncio.gather(*(backend.close() for backend in state.backends.values()), return_exceptions=True)


def _log_start_failure(name: str):  # type: ignore[no-untyped-def]
    def callback(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("backend %s failed to start: %s", name, task.exception())
    return callback


__all__ = ["AppState", "build_state", "close", "start"]
