"""The request path, top to bottom: resolve the model, wait for a slot, call the backend, relay, record."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from time import perf_counter

from sluice.backends import (
    BackendCall,
    ChatCompletionRequest,
    Chunk,
    Completion,
    CompletionRequest,
    EmbeddingRequest,
    Embeddings,
    Endpoint,
    Usage,
)
from sluice.backends.sse import DONE, encode_data
from sluice.errors import BackendNotReady, ClientDisconnected, SluiceError, UpstreamStreamBroken
from sluice.gateway.context import RequestContext
from sluice.gateway.slots import Slots
from sluice.gateway.stages import Admission, NoAdmission, NoCache, NoPricing, Pricing, ResponseCache
from sluice.routing import RouteTable, Target
from sluice.telemetry.recorder import Recorder

log = logging.getLogger("sluice.gateway")


class InternalError(SluiceError):
    """Anything unexpected: the client gets a plain 500 body, the traceback goes to the server log."""


class Gateway:
    """What the request path needs, built once at start-up."""

    def __init__(self, routes: RouteTable, slots: dict[str, Slots], recorder: Recorder, *,
                 admission: Admission | None = None, cache: ResponseCache | None = None,
                 pricing: Pricing | None = None) -> None:
        self.routes = routes
        self.slots = slots
        self.recorder = recorder
        self.admission: Admission = admission or NoAdmission()
        self.cache: ResponseCache = cache or NoCache()
        self.pricing: Pricing = pricing or NoPricing()
        self.starting: dict[str, asyncio.Task[None]] = {}  # backend name -> its start() task

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
        target = _route(gw, ctx, request, ctx.endpoint)
        await gw.admission.admit(ctx, request)
        cached = await gw.cache.lookup(ctx, request)
        if cached is not None:
            completion = cached
        else:
            await gw.wait_started(target)
            call = _backend_call(gw, ctx, target, request)
            async with _upstream_call(gw, ctx, target):
                completion = await target.backend.complete(call)
        ctx.usage = completion.usage
        ctx.text_parts.append(completion.text)
        ctx.finish_reason = completion.finish_reason
        completion.payload["model"] = request.model
        if cached is None:
            gw.cache.store(ctx, request)
        return completion
    except BaseException as exc:
        _fail(ctx, exc)
        raise
    finally:
        _finish(gw, ctx)


def _finish(gw: Gateway, ctx: RequestContext) -> None:
    """However a request ended: price it, settle what admission reserved, record it."""
    gw.pricing.price(ctx)
    gw.admission.settle(ctx)
    gw.recorder.record(ctx)


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
        target = _route(gw, ctx, request, ctx.endpoint)
        await gw.admission.admit(ctx, request)
        await gw.wait_started(target)
        call = _backend_call(gw, ctx, target, request)
        async with gw.slots[target.name].hold() as waited_s:
            ctx.queue_s = waited_s
            ctx.attempts += 1
            chunks = target.backend.stream(call)
            try:
                while True:
                    started = perf_counter()
                    try:
                        chunk = await anext(chunks)
                    except StopAsyncIteration:
                        ctx.upstream_s += perf_counter() - started
                        break
                    now = perf_counter()
                    ctx.upstream_s += now - started
                    if chunk.has_output:
                        timer.on_output(now)
                        ctx.text_parts.append(chunk.text)
                    frame = _client_frame(ctx, chunk, public_model, include_usage)
                    if frame is None:
                        continue
                    held.append(frame)
                    if not chunk.buffered:
                        sent_any = True
                        yield _take(held)
            finally:
                await chunks.aclose()  # type: ignore[attr-defined]
        if include_usage and ctx.usage is None:
            held.append(_estimated_usage_frame(ctx, public_model))
        held.append(DONE)
        sent_any = True
        yield _take(held)
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
        yield _take(held)
    finally:
        _finish(gw, ctx)


def _take(held: list[bytes]) -> bytes:
    frames = held[0] if len(held) == 1 else b"".join(held)
    held.clear()
    return frames


def _client_frame(ctx: RequestContext, chunk: Chunk, public_model: str, include_usage: bool) -> bytes | None:
    payload = chunk.payload
    if chunk.usage is not None:
        ctx.usage = chunk.usage
    if chunk.finish_reason is not None:
        ctx.finish_reason = chunk.finish_reason
    if not include_usage:
        # We always ask upstream for usage; hide it from clients that did not ask.
        if not payload.get("choices"):
            return None
        payload.pop("usage", None)
    payload["model"] = public_model
    return encode_data(payload)


def _estimated_usage_frame(ctx: RequestContext, public_model: str) -> bytes:
    record = ctx.finish(keep_bodies=False)  # counts tokens with the tokenizer fallback
    usage = Usage(record.prompt_tokens or 0, record.completion_tokens or 0)
    obj = "chat.completion.chunk" if ctx.endpoint == "chat" else "text_completion"
    return encode_data({"id": f"usage-{ctx.request_id}", "object": obj, "model": public_model,
                        "choices": [], "usage": usage.to_dict()})


async def embed(gw: Gateway, ctx: RequestContext, request: EmbeddingRequest) -> Embeddings:
    try:
        target = _route(gw, ctx, request, "embeddings")
        await gw.wait_started(target)
        async with _upstream_call(gw, ctx, target):
            result = await target.backend.embed(request, target.upstream_model)
        ctx.usage = result.usage
        result.payload["model"] = request.model
        return result
    except BaseException as exc:
        _fail(ctx, exc)
        raise
    finally:
        gw.recorder.record(ctx)


def _route(gw: Gateway, ctx: RequestContext,
           request: ChatCompletionRequest | CompletionRequest | EmbeddingRequest, endpoint: Endpoint) -> Target:
    """Resolve the public model to a target (404/400 otherwise) and count the request in flight."""
    target = gw.routes.resolve(request.model, endpoint).pick()
    ctx.target = target
    gw.recorder.admit(ctx)
    return target


@asynccontextmanager
async def _upstream_call(gw: Gateway, ctx: RequestContext, target: Target) -> AsyncIterator[None]:
    """Hold a backend slot (time waiting for it is queue time) and time the call inside as upstream time."""
    async with gw.slots[target.name].hold() as waited_s:
        ctx.queue_s = waited_s
        ctx.attempts += 1
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


__all__ = ["Gateway", "InternalError", "UpstreamStreamBroken", "complete", "embed", "stream"]
