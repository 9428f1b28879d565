"""Shadow mode: mirror sampled requests to a deployment's shadow target in the background and pair the answers.

The chain's `shadow` stage (`ShadowStage`, below) calls `start` when the primary is about to call its upstream,
and `primary_done` once the primary's record exists. Neither awaits or raises: `start` decides (sample,
concurrency bound) and creates a task; the task makes one non-streaming call with its own deadline, waits for
the primary's record, and hands a `ShadowPair` to a sink (the batched writer). Whatever happens to the shadow,
the primary never sees it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol

from sluice.backends import Backend, BackendCall, GenerationRequest, Usage
from sluice.errors import SluiceError, UpstreamError, UpstreamTimeout
from sluice.records import RequestRecord
from sluice.rollout.deployment import Deployment, TargetRef, bucket_of
from sluice.rollout.shadow_metrics import ShadowMetrics
from sluice.rollout.shadow_pair import ShadowPair, build_pair

if TYPE_CHECKING:
    from sluice.cost import GatewayPricing
    from sluice.gateway.chain import Call, Next, Reply
    from sluice.gateway.context import RequestContext

log = logging.getLogger("sluice.shadow")

SHADOW_HEADER = "x-sluice-shadow"  # sent to the shadow upstream, so its logs can tell mirrored traffic apart
SAMPLE_BUCKETS = 10_000  # bucket_of's range: sample rates resolve to 0.01 %


class DeploymentSource(Protocol):
    def get(self, model: str) -> Deployment | None: ...


class PairSink(Protocol):
    def submit(self, pair: ShadowPair) -> None: ...


class ShadowHook(Protocol):
    """What the pipeline calls; `NoShadow` when shadow mode is not wired in."""

    def start(self, ctx: RequestContext, request: GenerationRequest) -> None: ...

    def primary_done(self, ctx: RequestContext, record: RequestRecord) -> None: ...


class NoShadow:
    def start(self, ctx: RequestContext, request: GenerationRequest) -> None:
        return None

    def primary_done(self, ctx: RequestContext, record: RequestRecord) -> None:
        return None


def sampled(model: str, request_id: str, rate: float) -> bool:
    """Whether a request is mirrored: a stable hash of its id against the rate (same id, same answer)."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return bucket_of(model, f"shadow\x00{request_id}") < rate * SAMPLE_BUCKETS


def pick_shadow(refs: tuple[TargetRef, ...], model: str, request_id: str) -> TargetRef:
    """One of several shadow replicas, in proportion to weight, stable per request id."""
    if len(refs) == 1:
        return refs[0]
    total = sum(ref.weight for ref in refs)
    if total <= 0:
        return refs[0]
    point = bucket_of(model, f"shadow-target\x00{request_id}") / SAMPLE_BUCKETS * total
    for ref in refs:
        point -= ref.weight
        if point < 0:
            return ref
    return refs[-1]


@dataclass(slots=True, frozen=True)
class ShadowTarget:
    """The shadow replica, shaped like routing's `Target` where a context and pricing read it."""

    backend: Backend
    upstream_model: str
    weight: float

    @property
    def name(self) -> str:
        return self.backend.name


@dataclass(slots=True, frozen=True)
class _Job:
    """What a shadow task needs from the primary's context, copied at dispatch (the context keeps changing)."""

    request_id: str
    endpoint: str
    model: str
    arrival: float  # perf_counter seconds
    created_at: float
    request: GenerationRequest
    raw_body: dict[str, Any] | None
    target: ShadowTarget
    context_type: type[RequestContext]  # the primary's: gateway/ sits above rollout/, which must not import it


class ShadowMirror:
    """Mirrors requests of deployments that have shadow targets; see the module docstring."""

    def __init__(self, deployments: DeploymentSource, backends: Mapping[str, Backend], metrics: ShadowMetrics,
                 *, timeout_s: float = 30.0, pricing: GatewayPricing | None = None, sink: PairSink | None = None,
                 keep_bodies: bool = True) -> None:
        self.deployments = deployments
        self.backends = backends
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.pricing = pricing
        self.sink = sink
        self.keep_bodies = keep_bodies
        self._waiting: dict[int, asyncio.Future[tuple[RequestRecord, str]]] = {}  # id(ctx) -> primary's outcome
        self._in_flight: dict[str, int] = {}  # model -> shadow calls running
        self._tasks: set[asyncio.Task[None]] = set()
        self._warned: set[tuple[str, str, str]] = set()

    def in_flight(self, model: str) -> int:
        return self._in_flight.get(model, 0)

    def start(self, ctx: RequestContext, request: GenerationRequest) -> None:
        """The primary is about to call its upstream: mirror it if its deployment says so. Never raises."""
        try:
            deployment = self.deployments.get(ctx.model)
            if deployment is None or not deployment.shadow:
                return  # the common case: one dict lookup
            self._dispatch(ctx, request, deployment)
        except Exception:  # a bug here must not fail the primary
            log.exception("shadow: could not mirror request %s", ctx.request_id)
            self.metrics.outcome(ctx.model, "error")

    def primary_done(self, ctx: RequestContext, record: RequestRecord) -> None:
        """The primary finished (however): release its shadow task to pair up. Never raises."""
        if not self._waiting:
            return
        waiting = self._waiting.pop(id(ctx), None)
        if waiting is None or waiting.done():
            return
        try:
            waiting.set_result((record, "".join(ctx.text_parts)))
        except Exception:
            log.exception("shadow: could not hand over the primary of request %s", ctx.request_id)

    async def close(self, grace_s: float) -> None:
        """Let running shadow calls finish for up to `grace_s`, then cancel them (recorded as errors)."""
        tasks = set(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _dispatch(self, ctx: RequestContext, request: GenerationRequest, deployment: Deployment) -> None:
        key = id(ctx)
        if key in self._waiting:
            return  # already mirrored (a retry of the same request)
        model = deployment.model
        if not sampled(model, ctx.request_id, deployment.shadow_sample_rate):
            self.metrics.outcome(model, "skipped_sampled")
            return
        if self._in_flight.get(model, 0) >= deployment.shadow_max_concurrency:
            self.metrics.outcome(model, "skipped_full")  # never queue: the shadow is optional
            return
        ref = pick_shadow(deployment.shadow, model, ctx.request_id)
        backend = self.backends.get(ref.backend)
        if backend is None or ctx.endpoint not in backend.endpoints:
            if (model, ref.backend, ctx.endpoint) not in self._warned:  # once, not per request
                self._warned.add((model, ref.backend, ctx.endpoint))
                log.warning("shadow: model %s: backend %r is unknown or does not serve /v1/%s", model,
                            ref.backend, ctx.endpoint)
            self.metrics.outcome(model, "error")
            return
        raw_body = None if ctx.raw_body is None else dict(ctx.raw_body)  # later stages may edit the primary's
        job = _Job(ctx.request_id, ctx.endpoint, model, ctx.arrival, ctx.created_at, request, raw_body,
                   ShadowTarget(backend, ref.model, ref.weight), type(ctx))
        waiting: asyncio.Future[tuple[RequestRecord, str]] = asyncio.get_running_loop().create_future()
        # the task first runs when the primary next awaits (its upstream call): both legs leave together
        task = asyncio.create_task(self._mirror(job, waiting), name=f"sluice-shadow-{ctx.request_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._waiting[key] = waiting
        self._in_flight[model] = self._in_flight.get(model, 0) + 1
        self.metrics.in_flight.labels(model).inc()
        self.metrics.outcome(model, "sent")

    async def _mirror(self, job: _Job, waiting: asyncio.Future[tuple[RequestRecord, str]]) -> None:
        shadow = self._shadow_context(job)
        cancelled = False
        started = perf_counter()
        try:
            call = BackendCall(endpoint=job.endpoint, request=job.request,  # type: ignore[arg-type]
                               upstream_model=job.target.upstream_model, request_id=f"{job.request_id}-shadow",
                               extra_headers={"x-request-id": f"{job.request_id}-shadow", SHADOW_HEADER: "1"},
                               raw_body=job.raw_body)
            async with asyncio.timeout(self.timeout_s):
                completion = await job.target.backend.complete(call)
            shadow.usage, shadow.finish_reason = completion.usage, completion.finish_reason
            shadow.text_parts.append(completion.text)
            self.metrics.latency.labels(job.model, job.target.name).observe(perf_counter() - started)
        except asyncio.CancelledError:
            cancelled = True
            shadow.fail(UpstreamError("shadow call cancelled: the gateway is shutting down", code="cancelled"))
            self.metrics.outcome(job.model, "error")
        except Exception as exc:
            shadow.fail(self._as_error(exc))
            self.metrics.outcome(job.model, "error")
        finally:
            e2e_s = perf_counter() - job.arrival
            self._release(job.model)
        try:
            shadow_record = self._finish_leg(shadow, e2e_s)
            if cancelled and not waiting.done():
                return  # shutting down while the primary still runs: nothing to pair
            primary, primary_text = await waiting
            if self.sink is not None:
                shadow_text = "".join(shadow.text_parts)
                self.sink.submit(build_pair(primary, shadow_record, primary_text, shadow_text,
                                            keep_bodies=self.keep_bodies))
        except asyncio.CancelledError:
            pass  # shutdown while the primary still ran: no pair
        except Exception:
            log.exception("shadow: could not pair request %s", job.request_id)
            self.metrics.outcome(job.model, "error")

    @staticmethod
    def _shadow_context(job: _Job) -> RequestContext:
        """A context for the shadow leg, arriving with the primary, so latencies share an origin."""
        shadow = job.context_type(job.request_id, job.endpoint, None)  # type: ignore[arg-type]
        shadow.arrival, shadow.created_at = job.arrival, job.created_at
        shadow.model, shadow.request, shadow.target = job.model, job.request, job.target  # type: ignore[assignment]
        return shadow

    def _finish_leg(self, shadow: RequestContext, e2e_s: float) -> RequestRecord:
        """The shadow leg as a record: tokens (usage, else the tokenizer) and, when pricing can quote a target
        without side effects (`cost_of`), its cost at the same prices as the primary's."""
        # the latency is when the shadow answered, not when its record was built
        record = replace(shadow.finish(keep_bodies=False), e2e_s=e2e_s, overhead_s=0.0)
        cost_of = getattr(self.pricing, "cost_of", None)
        if cost_of is None or record.error_type is not None or record.prompt_tokens is None:
            return record
        usage = shadow.usage or Usage(record.prompt_tokens or 0, record.completion_tokens or 0)
        try:
            return replace(record, cost_usd=cost_of(shadow.target, usage))
        except Exception:
            log.exception("shadow: pricing the shadow of request %s failed", shadow.request_id)
            return record

    def _as_error(self, exc: Exception) -> SluiceError:
        if isinstance(exc, SluiceError):
            return exc
        if isinstance(exc, TimeoutError):
            return UpstreamTimeout(f"shadow call exceeded shadow.timeout_s ({self.timeout_s:g} s)",
                                   code="shadow_timeout")
        log.warning("shadow: call failed with an unexpected %s: %s", type(exc).__name__, exc)
        return UpstreamError(f"shadow call failed: {type(exc).__name__}: {exc}")

    def _release(self, model: str) -> None:
        self._in_flight[model] -= 1
        self.metrics.in_flight.labels(model).dec()


class ShadowStage:
    """The chain's shadow stage (gateway/chain.py), in the chains of models whose deployment has shadow targets:
    after a cache miss, as the primary starts, mirror it; once the primary's record exists, pair them."""

    name = "shadow"

    def __init__(self, mirror: ShadowMirror) -> None:
        self.mirror = mirror

    async def __call__(self, call: Call, next: Next) -> Reply:
        self.mirror.start(call.ctx, call.request)  # type: ignore[arg-type]
        call.on_record(self.mirror.primary_done)
        return await next(call)


__all__ = ["SHADOW_HEADER", "DeploymentSource", "NoShadow", "PairSink", "ShadowHook", "ShadowMirror", "ShadowStage",
           "ShadowTarget", "pick_shadow", "sampled"]
