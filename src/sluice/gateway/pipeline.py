"""The request path, top to bottom: resolve the model, wait for a slot, call the backend, relay, record."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from functools import partial
from time import perf_counter

from sluice.backends import (
    Backend,
    BackendCall,
    ChatCompletionRequest,
    Chunk,
    Completion,
    CompletionRequest,
    EmbeddingRequest,
    Embeddings,
    Endpoint,
)
from sluice.backends.sse import DONE, encode_data
from sluice.errors import (
    BackendNotReady,
    ClientDisconnected,
    InternalError,
    ModelNotFound,
    SluiceError,
    UpstreamStreamBroken,
)
from sluice.gateway.context import RequestContext
from sluice.gateway.frames import client_frame, estimated_usage_frame, replay_frames, take
from sluice.gateway.resume import Delivered, Resume, StreamDiverged, may_resume, resume_outcome
from sluice.gateway.slots import Slots
from sluice.gateway.stages import Admission, NoAdmission, NoCache, NoPricing, Pricing, ResponseCache
from sluice.rollout import DeploymentRegistry
from sluice.rollout.shadow import NoShadow, ShadowHook
from sluice.routing import Attempt, NoHealthyTarget, Pool, Router, Target, call, open_attempt
from sluice.telemetry.recorder import Recorder

log = logging.getLogger("sluice.gateway")


class Gateway:
    """What the request path needs, built once at start-up."""

    def __init__(self, deployments: DeploymentRegistry, router: Router, slots: dict[str, Slots],
                 recorder: Recorder, *, admission: Admission | None = None, cache: ResponseCache | None = None,
                 pricing: Pricing | None = None) -> None:
        self.deployments = deployments  # public model -> current Deployment (rollout/)
        self.router = router  # replicas' state, pools, policies (routing/)
        self.slots = slots
        self.recorder = recorder
        self.admission: Admission = admission or NoAdmission()
        self.cache: ResponseCache = cache or NoCache()
        self.pricing: Pricing = pricing or NoPricing()
        self.starting: dict[str, asyncio.Task[None]] = {}  # backend name -> its start() task
        self.shadow: ShadowHook = NoShadow()  # shadow mode (rollout/shadow.py); wiring installs the mirror

    @property
    def backends(self) -> dict[str, Backend]:
        return self.router.backends

    async def wait_started(self, target: Target) -> None:
        """Requests that arrive while a local model still loads wait for it; a failed load is a 503."""
        task = self.starting.get(target.name)
        if task is None or (task.done() and not task.cancelled() and task.exception() is None):
            return
        if not task.done():
            await asyncio.shield(task)
            return
        raise BackendNotReady(f"Backend `{target.name}` failed to start; see the gateway log.")


async def complete(gw: Gateway, ctx: RequestContext, request: ChatCompletionRequest | CompletionRequest,
                   ) -> Completion:
    """A whole answer; the record is written however it ends."""
    try:
        pool = _route(gw, ctx, request, ctx.endpoint)
        await gw.admission.admit(ctx, request)
        cached = await gw.cache.lookup(ctx, request)
        if cached is not None:
            completion = cached
        else:  # retries, other replicas, fallback models: routing.call
            gw.shadow.start(ctx, request)  # shadow mode: mirror in the background as the primary starts
            completion = await call(gw.router, ctx, pool, partial(_complete_once, gw, ctx, request))
        ctx.usage = completion.usage
        ctx.text_parts.append(completion.text)
        ctx.finish_reason = completion.finish_reason
        completion.payload["model"] = request.model
        if cached is None:
            gw.cache.store(ctx, request, completion)
        return completion
    except BaseException as exc:
        _fail(ctx, exc)
        raise
    finally:
        _finish(gw, ctx)


async def _complete_once(gw: Gateway, ctx: RequestContext, request: ChatCompletionRequest | CompletionRequest,
                         target: Target) -> Completion:
    await gw.wait_started(target)
    backend_call = _backend_call(gw, ctx, target, request)
    async with _upstream_call(gw, ctx, target):
        return await target.backend.complete(backend_call)


def _finish(gw: Gateway, ctx: RequestContext) -> None:
    """However a request ended: price it, settle what admission reserved, record it."""
    gw.pricing.price(ctx)
    gw.admission.settle(ctx)
    record = gw.recorder.record(ctx)
    gw.shadow.primary_done(ctx, record)  # shadow mode: the primary's outcome, to pair with its mirror (if any)


async def stream(gw: Gateway, ctx: RequestContext, request: ChatCompletionRequest | CompletionRequest,
                 ) -> tuple[bytes, AsyncIterator[bytes]]:
    """Start a streamed answer: returns its first SSE frame and the rest.

    The first frame is awaited here so that failures before any output (unknown model, upstream 429/5xx,
    timeouts) become proper HTTP errors instead of a 200 with an error event.
    """
    frames = _relay(gw, ctx, request)
    first = await anext(frames)
    return first, frames


async def _relay(gw: Gateway, ctx: RequestContext, request: ChatCompletionRequest | CompletionRequest,
                 ) -> AsyncIterator[bytes]:
    include_usage = request.include_usage
    public_model = request.model
    timer = ctx.timer
    sent_any = False
    held: list[bytes] = []  # frames of chunks that arrived together, written in one send
    try:
        pool = _route(gw, ctx, request, ctx.endpoint)
        await gw.admission.admit(ctx, request)
        cached = await gw.cache.lookup(ctx, request)
        if cached is not None:  # replayed as a stream: role, content, finish, usage chunks, [DONE]
            yield replay_frames(ctx, cached, public_model, include_usage, gw.pricing)
            return
        capture = gw.cache.capture(ctx, request)  # collects the answer to store after a clean end (or None)
        gw.shadow.start(ctx, request)  # shadow mode: mirror in the background (never streamed) as the primary starts
        # Tries (with retries, fallbacks) until a first output chunk: nothing has reached the client before.
        opened, attempt = await open_attempt(gw.router, ctx, pool, partial(_open_stream, gw, ctx, request))
        delivered = Delivered()
        resume: Resume | None = None
        resumes_left = pool.policy.retry.max_attempts - 1
        while True:  # one pass per attempt: the first, then any that resume it (gateway/resume.py)
            error: BaseException | None = None
            try:
                async with aclosing(opened.chunks_timed(ctx)) as chunks:
                    async for chunk, arrived in chunks:
                        if resume is not None and (chunk := resume.admit(chunk)) is None:  # type: ignore[assignment]
                            continue
                        if chunk.has_output:
                            timer.on_output(arrived)
                            ctx.text_parts.append(chunk.text)
                            delivered.add(chunk)
                        if capture is not None:
                            capture.add(chunk)
                        frame = client_frame(ctx, chunk, public_model, include_usage, gw.pricing)
                        if frame is None:
                            continue
                        held.append(frame)
                        if not chunk.buffered:
                            sent_any = True
                            yield take(held)
                if resume is not None and not resume.caught_up:
                    raise StreamDiverged("the resumed stream ended before repeating the answer already sent")
            except BaseException as exc:
                error = exc
                if not (resumes_left > 0 and may_resume(exc, delivered, pool.policy.retry.resume_streams, request)):
                    raise
            finally:
                await opened.aclose()
                # The stream's outcome feeds the breaker (a client leaving is no one's fault, nor a divergence).
                attempt.end(None if isinstance(error, StreamDiverged) else error)
                if resume is not None and gw.router.metrics is not None:
                    gw.router.metrics.stream_resumed(request.model, resume_outcome(error))
            if error is None:
                break
            resumes_left -= 1
            log.info("request %s: stream from %s broke after output (%s); resuming", ctx.request_id,
                     attempt.target.name, error)
            resume = Resume("".join(ctx.text_parts), ctx.endpoint)
            try:
                opened, attempt = await _reopen(gw, ctx, pool, request, attempt.target)
            except BaseException:
                if gw.router.metrics is not None:
                    gw.router.metrics.stream_resumed(request.model, "failed")
                raise
        if capture is not None:
            capture.finish()
        if include_usage and ctx.usage is None:
            held.append(estimated_usage_frame(ctx, public_model, gw.pricing))
        held.append(DONE)
        sent_any = True
        yield take(held)
    except GeneratorExit:
        _fail(ctx, ClientDisconnected("client closed the stream"))
        raise
    except BaseException as exc:
        # Once output frames exist (sent or held), the answer has started: errors become an event, not a status.
        started = sent_any or bool(held)
        _fail(ctx, exc, status_code=200 if started else None)
        if not started or isinstance(exc, asyncio.CancelledError):
            raise
        # The client already has a 200 and part of the answer: end with an error event and a clean close.
        assert ctx.error is not None
        held.append(encode_data(ctx.error.to_body()))
        yield take(held)
    finally:
        _finish(gw, ctx)


async def embed(gw: Gateway, ctx: RequestContext, request: EmbeddingRequest) -> Embeddings:
    try:
        pool = _route(gw, ctx, request, "embeddings")
        await gw.admission.admit(ctx, request)  # type: ignore[arg-type]  # keys, limits (embeddings too)
        result = await call(gw.router, ctx, pool, partial(_embed_once, gw, ctx, request))
        ctx.usage = result.usage
        result.payload["model"] = request.model
        return result
    except BaseException as exc:
        _fail(ctx, exc)
        raise
    finally:
        gw.pricing.price(ctx)
        gw.admission.settle(ctx)
        gw.recorder.record(ctx)


async def _embed_once(gw: Gateway, ctx: RequestContext, request: EmbeddingRequest, target: Target) -> Embeddings:
    await gw.wait_started(target)
    async with _upstream_call(gw, ctx, target):
        return await target.backend.embed(request, target.upstream_model)


def _route(gw: Gateway, ctx: RequestContext,
           request: ChatCompletionRequest | CompletionRequest | EmbeddingRequest, endpoint: Endpoint) -> Pool:
    """Public model -> its deployment -> the caller's side of a rollout -> that side's replicas (404/400
    otherwise); counts the request in flight. Each attempt then picks its replica from the pool."""
    model = request.model
    decision = gw.router.decide(model, request, ctx.headers)
    if decision is not None:  # cost-based routing: the chosen model's deployment serves; ctx.model stays as sent
        ctx.routed_to = model = decision.model
        ctx.annotate("router.choice", decision.choice)  # easy | hard
        ctx.annotate("router.model", decision.model)
        if decision.score is not None:  # None: the caller's x-sluice-difficulty header decided
            ctx.annotate("router.score", round(decision.score, 4))
    deployment = gw.deployments.get(model)
    if deployment is None:
        raise ModelNotFound(model)
    side = deployment.side_for(ctx.user, ctx.headers)
    ctx.route_role = side
    pool = gw.router.pool(deployment, side, endpoint)
    ctx.target = pool.targets[0]  # provisional, for admission's estimate; each attempt sets its own
    gw.recorder.admit(ctx)
    return pool


class _OpenStream:
    """A stream whose first output chunk has arrived: the chunks so far, the rest, and its backend slot."""

    __slots__ = ("chunks", "head", "output_at", "slot")

    def __init__(self, chunks: AsyncIterator[Chunk], head: list[Chunk], output_at: float,
                 slot: AbstractAsyncContextManager[float]) -> None:
        self.chunks = chunks
        self.head = head
        self.output_at = output_at
        self.slot = slot

    async def chunks_timed(self, ctx: RequestContext) -> AsyncIterator[tuple[Chunk, float]]:
        """Every chunk (the head, then the rest) with its arrival time; waiting on it counts as upstream time."""
        for chunk in self.head:
            yield chunk, self.output_at
        while True:
            started = perf_counter()
            try:
                chunk = await anext(self.chunks)
            except StopAsyncIteration:
                ctx.upstream_s += perf_counter() - started
                return
            now = perf_counter()
            ctx.upstream_s += now - started
            yield chunk, now

    async def aclose(self) -> None:
        try:
            await self.chunks.aclose()  # type: ignore[attr-defined]
        finally:
            await self.slot.__aexit__(None, None, None)


async def _reopen(gw: Gateway, ctx: RequestContext, pool: Pool, request: ChatCompletionRequest | CompletionRequest,
                  broken: Target) -> tuple[_OpenStream, Attempt]:
    """A new attempt for a stream being resumed: elsewhere if any replica or fallback can serve, else again."""
    once = partial(_open_stream, gw, ctx, request)
    try:
        return await open_attempt(gw.router, ctx, pool, once, avoid=(broken.state,))
    except NoHealthyTarget:
        return await open_attempt(gw.router, ctx, pool, once)


async def _open_stream(gw: Gateway, ctx: RequestContext, request: ChatCompletionRequest | CompletionRequest,
                       target: Target) -> _OpenStream:
    """One try at a stream, up to its first output chunk (or its end): failures up to here may be retried."""
    await gw.wait_started(target)
    backend_call = _backend_call(gw, ctx, target, request)
    slot = gw.slots[target.name].hold()
    ctx.queue_s += await slot.__aenter__()
    chunks = target.backend.stream(backend_call)
    head: list[Chunk] = []
    started = perf_counter()
    try:
        while True:  # up to and including the first chunk with output (or the end, when none has any)
            chunk = await anext(chunks)
            head.append(chunk)
            if chunk.has_output:
                break
    except StopAsyncIteration:
        pass
    except BaseException:
        ctx.upstream_s += perf_counter() - started
        await _OpenStream(chunks, head, started, slot).aclose()
        raise
    now = perf_counter()
    ctx.upstream_s += now - started
    return _OpenStream(chunks, head, now, slot)


@asynccontextmanager
async def _upstream_call(gw: Gateway, ctx: RequestContext, target: Target) -> AsyncIterator[None]:
    """Hold a backend slot (time waiting for it is queue time) and time the call inside as upstream time."""
    async with gw.slots[target.name].hold() as waited_s:
        ctx.queue_s += waited_s
        started = perf_counter()
        try:
            yield
        finally:
            ctx.upstream_s += perf_counter() - started


def _backend_call(gw: Gateway, ctx: RequestContext, target: Target,
                  request: ChatCompletionRequest | CompletionRequest) -> BackendCall:
    headers = gw.recorder.tracing.inject(ctx.span)
    headers["x-request-id"] = ctx.request_id  # vLLM and most servers log it: one id end to end
    return BackendCall(endpoint=ctx.endpoint, request=request, upstream_model=target.upstream_model,
                       request_id=ctx.request_id, extra_headers=headers, raw_body=ctx.raw_body)


def _fail(ctx: RequestContext, exc: BaseException, *, status_code: int | None = None) -> None:
    if isinstance(exc, SluiceError):
        ctx.fail(exc, status_code=status_code)
    elif isinstance(exc, asyncio.CancelledError | GeneratorExit):
        ctx.fail(ClientDisconnected("client disconnected"), status_code=status_code)
    else:
        log.exception("internal error in request %s", ctx.request_id, exc_info=exc)
        ctx.fail(InternalError("The gateway failed to handle this request."), status_code=status_code)


__all__ = ["Gateway", "UpstreamStreamBroken", "complete", "embed", "stream"]
