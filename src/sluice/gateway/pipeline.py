"""The chain runner at the API's edge: find the model's chain, run it, turn its chunks into the HTTP answer, and
end every request the same way — end hooks, then its record, then what waits on the record.

A non-streamed answer is the chain's single whole chunk; a stream's chunks become SSE frames (coalesced when
they arrived together). TTFT and ITL are timed here, on the chunks as the client gets them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import aclosing
from time import perf_counter

from sluice.backends import DONE, Chunk, Completion, Embeddings, Whole, encode_data
from sluice.errors import ClientDisconnected, InternalError, ModelNotFound, SluiceError
from sluice.gateway.chain import Call, ChainSet, Kind, Reply
from sluice.gateway.context import RequestContext
from sluice.gateway.frames import Quote, client_frame, estimated_usage_frame, take
from sluice.gateway.terminal import RoutingTerminal
from sluice.rollout import DeploymentRegistry
from sluice.routing import Router
from sluice.telemetry import Recorder

log = logging.getLogger("sluice.gateway")


class Gateway:
    """Every model's chain and how a request ends, built by the composition root."""

    def __init__(self, chains: ChainSet, terminal: RoutingTerminal, deployments: DeploymentRegistry,
                 recorder: Recorder, *, quote: Quote | None = None) -> None:
        self.chains = chains
        self.terminal = terminal
        self.deployments = deployments  # public model -> current Deployment (rollout/)
        self.recorder = recorder
        self.quote = quote  # a stream's usage chunk carries the cost so far (cost/), when pricing is on

    @property
    def router(self) -> Router:
        return self.terminal.router

    def describe(self, models: Iterable[str]) -> dict[str, dict[str, list[str]]]:
        """Each model's stages in order, per kind (what /admin/status shows)."""
        described: dict[str, dict[str, list[str]]] = {}
        for model in models:
            for kind in ("generate", "embed"):
                chain = self.chains.get(model, kind)  # type: ignore[arg-type]
                if chain is not None:
                    described.setdefault(model, {})[kind] = [*chain.names, "terminal"]
        return described

    async def complete(self, call: Call) -> Completion:
        """A whole answer; the record is written however it ends."""
        return await self._whole(call, "generate")  # type: ignore[return-value]

    async def embed(self, call: Call) -> Embeddings:
        return await self._whole(call, "embed")  # type: ignore[return-value]

    async def _whole(self, call: Call, kind: Kind) -> Completion | Embeddings:
        ctx = call.ctx
        try:
            reply = await self._start(call, kind)
            call.close_stage()
            # an unwrapped whole answer is taken as is; one that stages wrapped is read through them
            if type(reply) is Whole:
                answer = reply.answer
            else:
                chunk = await _read_whole(reply)
                answer = Completion.of_chunk(chunk) if kind == "generate" else Embeddings.of_chunk(chunk)
            ctx.usage = answer.usage
            if isinstance(answer, Completion):
                ctx.text_parts.append(answer.text)
                ctx.finish_reason = answer.finish_reason
            answer.payload["model"] = call.request.model
            return answer
        except BaseException as exc:
            _fail(ctx, exc)
            raise
        finally:
            self._finish(call)

    async def stream(self, call: Call) -> tuple[bytes, AsyncIterator[bytes]]:
        """Start a streamed answer: returns its first SSE frame and the rest.

        The first frame is awaited here so that failures before any output (unknown model, upstream 429/5xx,
        timeouts, a refusal by any stage) become proper HTTP errors instead of a 200 with an error event.
        """
        frames = self._frames(call)
        first = await anext(frames)
        return first, frames

    def _start(self, call: Call, kind: Kind) -> Awaitable[Reply]:
        """The model's chain, started (a plain call: no coroutine of its own); await it, then `close_stage()`."""
        model = call.request.model
        chain = self.chains.get(model, kind)
        if chain is None:
            raise ModelNotFound(model)
        self.recorder.admit(call.ctx)  # a configured model: count it in flight
        return chain(call)

    async def _frames(self, call: Call) -> AsyncIterator[bytes]:
        ctx = call.ctx
        request = call.request
        include_usage = request.include_usage  # type: ignore[union-attr]
        public_model = request.model
        timer = ctx.timer
        quote = self.quote
        sent_any = False
        held: list[bytes] = []  # frames of chunks that arrived together, written in one send
        try:
            reply = await self._start(call, "generate")
            call.close_stage()
            async with aclosing(reply):
                async for chunk in reply:
                    if chunk.has_output:
                        timer.on_output(perf_counter())
                        ctx.text_parts.append(chunk.text)
                    frame = client_frame(ctx, chunk, public_model, include_usage, quote)
                    if frame is None:
                        continue
                    held.append(frame)
                    if not chunk.buffered:
                        sent_any = True
                        yield take(held)
            if include_usage and ctx.usage is None:
                held.append(estimated_usage_frame(ctx, public_model, quote))
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
            if call.upstream is not None:  # already closed unless a stage dropped the reply unread
                await call.upstream.aclose()
            self._finish(call)

    def _finish(self, call: Call) -> None:
        """However a request ended: the stages' end hooks (price, settle), its record, then what waits on it."""
        call.close_stage()  # a stage that refused (raised) is timed up to here
        call.end()
        call.recorded(self.recorder.record(call.ctx))


async def _read_whole(reply: Reply) -> Chunk:
    """The one chunk of a non-streamed reply that stages wrapped, read to its end so that they finish (an error
    inside ends the generator; no `aclosing` needed on this path)."""
    try:
        whole = await anext(reply)
    except StopAsyncIteration:
        raise InternalError("The gateway's stage chain returned no answer.") from None
    try:
        await anext(reply)
    except StopAsyncIteration:
        return whole
    await reply.aclose()
    raise InternalError("The gateway's stage chain returned more than one whole answer.")


def _fail(ctx: RequestContext, exc: BaseException, *, status_code: int | None = None) -> None:
    if isinstance(exc, SluiceError):
        ctx.fail(exc, status_code=status_code)
    elif isinstance(exc, asyncio.CancelledError | GeneratorExit):
        ctx.fail(ClientDisconnected("client disconnected"), status_code=status_code)
    else:
        log.exception("internal error in request %s", ctx.request_id, exc_info=exc)
        ctx.fail(InternalError("The gateway failed to handle this request."), status_code=status_code)


__all__ = ["Gateway", "Quote"]
