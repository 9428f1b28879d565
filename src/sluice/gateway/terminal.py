"""The routing terminal that ends every chain: replica choice, retries, fallbacks, breakers, stream resume,
the backend's concurrency slot, then the backend call (routing/ chooses; this calls and relays).

It returns once the answer has *started* — a whole answer, or a stream's first output chunk — so that every
failure up to then may be retried elsewhere and, past every retry, is an HTTP error rather than a broken
stream. It counts the time spent waiting on the upstream (`ctx.upstream_s`) and for a slot (`ctx.queue_s`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from functools import partial
from time import perf_counter
from typing import TYPE_CHECKING

from sluice.backends import (
    BackendCall,
    ChatCompletionRequest,
    Chunk,
    CompletionRequest,
    EmbeddingRequest,
    Whole,
)
from sluice.errors import BackendNotReady
from sluice.gateway.resume import Delivered, Resume, StreamDiverged, may_resume, resumable, resume_outcome
from sluice.gateway.slots import Slots
from sluice.routing import Attempt, NoHealthyTarget, Pool, Router, Target, open_attempt
from sluice.routing import call as with_retries
from sluice.structured import adapt, constrains

if TYPE_CHECKING:
    from sluice.gateway.chain import Call, Reply
    from sluice.gateway.context import RequestContext
    from sluice.telemetry.tracing import Tracing

log = logging.getLogger("sluice.gateway")


class RoutingTerminal:
    """Calls the pool the `route` stage chose (`call.pool`) through `routing.call` / `open_attempt`."""

    def __init__(self, router: Router, slots: dict[str, Slots], tracing: Tracing) -> None:
        self.router = router
        self.slots = slots
        self.tracing = tracing
        self.starting: dict[str, asyncio.Task[None]] = {}  # backend name -> its start() task (the composition root)

    async def __call__(self, call: Call) -> Reply:
        ctx, pool, request = call.ctx, call.pool, call.request
        assert pool is not None, "the chain's `route` stage sets call.pool"
        if isinstance(request, EmbeddingRequest):
            result = await with_retries(self.router, ctx, pool, partial(self._embed_once, ctx, request))
            return Whole(result)  # type: ignore[return-value]
        if not ctx.stream:
            completion = await with_retries(self.router, ctx, pool, partial(self._complete_once, ctx, request))
            return Whole(completion)  # type: ignore[return-value]
        # Tries (with retries, fallbacks) until a first output chunk: nothing has reached the client before.
        opened, attempt = await open_attempt(self.router, ctx, pool, partial(self._open_stream, ctx, request))
        relay = self._relay(ctx, pool, request, opened, attempt)
        await anext(relay)  # primed: from here its `finally` releases the upstream however the reply ends
        call.upstream = relay  # the runner closes it last, even if a stage above drops the reply unread
        return relay  # type: ignore[return-value]

    async def wait_started(self, target: Target) -> None:
        """Requests that arrive while a local model still loads wait for it; a failed load is a 503."""
        task = self.starting.get(target.name)
        if task is None or (task.done() and not task.cancelled() and task.exception() is None):
            return
        if not task.done():
            await asyncio.shield(task)
            return
        raise BackendNotReady(f"Backend `{target.name}` failed to start; see the gateway log.")

    # --- streams -------------------------------------------------------------------------------------------

    async def _relay(self, ctx: RequestContext, pool: Pool, request: ChatCompletionRequest | CompletionRequest,
                     opened: _OpenStream, attempt: Attempt) -> AsyncGenerator[Chunk | None, None]:
        """The stream's chunks (after one `None` that primes it); one that breaks after output is resumed on
        another attempt where it may be."""
        metrics = self.router.metrics
        delivered = Delivered()
        mode = pool.policy.retry.resume_streams
        sent: list[str] | None = [] if resumable(mode, request) else None  # the text so far, to check a resume
        resume: Resume | None = None
        resumes_left = pool.policy.retry.max_attempts - 1
        try:
            yield None
            while True:  # one pass per attempt: the first, then any that resume it (gateway/resume.py)
                error: BaseException | None = None
                try:
                    async with aclosing(opened.chunks_timed(ctx)) as chunks:
                        async for chunk in chunks:
                            if resume is not None and (chunk := resume.admit(chunk)) is None:  # type: ignore[assignment]
                                continue
                            if chunk.has_output and sent is not None:
                                sent.append(chunk.text)
                                delivered.add(chunk)
                            yield chunk
                    if resume is not None and not resume.caught_up:
                        raise StreamDiverged("the resumed stream ended before repeating the answer already sent")
                except BaseException as exc:
                    error = exc
                    if sent is None or not (resumes_left > 0 and may_resume(exc, delivered, mode, request)):
                        raise
                finally:
                    await opened.aclose()
                    # The stream's outcome feeds the breaker (a client leaving is no one's fault, nor a divergence).
                    attempt.end(None if isinstance(error, StreamDiverged) else error)
                    if resume is not None and metrics is not None:
                        metrics.stream_resumed(request.model, resume_outcome(error))
                if error is None:
                    return
                assert sent is not None
                resumes_left -= 1
                log.info("request %s: stream from %s broke after output (%s); resuming", ctx.request_id,
                         attempt.target.name, error)
                resume = Resume("".join(sent), ctx.endpoint)
                try:
                    opened, attempt = await self._reopen(ctx, pool, request, attempt.target)
                except BaseException:
                    if metrics is not None:
                        metrics.stream_resumed(request.model, "failed")
                    raise
        finally:
            if not attempt.ended:  # closed before its first pass began (a stage above failed)
                await opened.aclose()
                attempt.end(GeneratorExit())

    async def _reopen(self, ctx: RequestContext, pool: Pool, request: ChatCompletionRequest | CompletionRequest,
                      broken: Target) -> tuple[_OpenStream, Attempt]:
        """A new attempt for a stream being resumed: elsewhere if any replica or fallback can serve, else again."""
        once = partial(self._open_stream, ctx, request)
        try:
            return await open_attempt(self.router, ctx, pool, once, avoid=(broken.state,))
        except NoHealthyTarget:
            return await open_attempt(self.router, ctx, pool, once)

    async def _open_stream(self, ctx: RequestContext, request: ChatCompletionRequest | CompletionRequest,
                           target: Target) -> _OpenStream:
        """One try at a stream, up to its first output chunk (or its end): failures up to here may be retried."""
        await self.wait_started(target)
        backend_call = self._backend_call(ctx, target, request)
        slot = self.slots[target.name].hold()
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
            await _OpenStream(chunks, head, slot).aclose()
            raise
        ctx.upstream_s += perf_counter() - started
        return _OpenStream(chunks, head, slot)

    # --- whole answers -------------------------------------------------------------------------------------

    async def _complete_once(self, ctx: RequestContext, request: ChatCompletionRequest | CompletionRequest,
                             target: Target):  # type: ignore[no-untyped-def]
        await self.wait_started(target)
        backend_call = self._backend_call(ctx, target, request)
        async with self._upstream_call(ctx, target):
            return await target.backend.complete(backend_call)

    async def _embed_once(self, ctx: RequestContext, request: EmbeddingRequest, target: Target):  # type: ignore[no-untyped-def]
        await self.wait_started(target)
        async with self._upstream_call(ctx, target):
            return await target.backend.embed(request, target.upstream_model)

    @asynccontextmanager
    async def _upstream_call(self, ctx: RequestContext, target: Target) -> AsyncIterator[None]:
        """Hold a backend slot (time waiting for it is queue time) and time the call inside as upstream time."""
        async with self.slots[target.name].hold() as waited_s:
            ctx.queue_s += waited_s
            started = perf_counter()
            try:
                yield
            finally:
                ctx.upstream_s += perf_counter() - started

    def _backend_call(self, ctx: RequestContext, target: Target,
                      request: ChatCompletionRequest | CompletionRequest) -> BackendCall:
        headers = self.tracing.inject(ctx.span)
        headers["x-request-id"] = ctx.request_id  # vLLM and most servers log it: one id end to end
        raw_body = ctx.raw_body
        if constrains(request):  # a response_format or vLLM constraint: what this backend takes of it
            request, raw_body = adapt(request, raw_body, target.backend)
        return BackendCall(endpoint=ctx.endpoint, request=request, upstream_model=target.upstream_model,
                           request_id=ctx.request_id, extra_headers=headers, raw_body=raw_body)


class _OpenStream:
    """A stream whose first output chunk has arrived: the chunks so far, the rest, and its backend slot."""

    __slots__ = ("chunks", "head", "slot")

    def __init__(self, chunks: AsyncIterator[Chunk], head: list[Chunk],
                 slot: AbstractAsyncContextManager[float]) -> None:
        self.chunks = chunks
        self.head = head
        self.slot = slot

    async def chunks_timed(self, ctx: RequestContext) -> AsyncIterator[Chunk]:
        """Every chunk (the head, then the rest); waiting on the rest counts as upstream time."""
        for chunk in self.head:
            yield chunk
        while True:
            started = perf_counter()
            try:
                chunk = await anext(self.chunks)
            except StopAsyncIteration:
                ctx.upstream_s += perf_counter() - started
                return
            ctx.upstream_s += perf_counter() - started
            yield chunk

    async def aclose(self) -> None:
        try:
            await self.chunks.aclose()  # type: ignore[attr-defined]
        finally:
            await self.slot.__aexit__(None, None, None)


__all__ = ["RoutingTerminal"]
