"""The stage chain: one ordered list of stages per model, ending in the routing terminal.

A **stage** is one concern. It gets the call and the next link, and may act

- *before* `next` — admit, resolve, answer from the cache (then it never calls `next`), refuse (raise);
- *around* the reply `next` returns — wrap the chunk iterator (capture it, check it, rewrite chunks);
- *after* the request ends, however it ends — `call.on_end(stage, fn)` runs `fn(ctx)` then (settle, price),
  `call.on_record(fn)` runs `fn(ctx, record)` once the record exists (pair a shadow with its primary).

    class Tagger:
        name = "tags"

        async def __call__(self, call: Call, next: Next) -> Reply:
            call.ctx.annotate("tag.team", call.ctx.headers.get("x-team", ""))
            return await next(call)

A reply is an async generator of `Chunk`s. Streaming is the one path: a streamed answer is its chunks; a
non-streamed one is a `Whole` reply (backends/types.py), one chunk holding the whole answer, so a stage treats
both alike and `call.ctx.stream` says which. Errors raised before the reply is returned become HTTP errors; a
stage that wraps the reply closes the inner one (`contextlib.aclosing`) so that a client leaving mid-stream
releases the upstream.

Links are built once per chain, not per request, and cost no coroutine frame of their own. Each stage's own
time — from entering it to entering the next link (or, when it answers itself or raises, to the chain's
return), plus its end hooks — is added to `ctx.stage_s`: the `sluice_stage_seconds` histogram and the
`Server-Timing` debug header report it. A stage's work after `next` returns and per chunk is not split out
(it is in the gateway's overhead). A stage that is not in the chain costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sluice.backends import Chunk, GenerationRequest

if TYPE_CHECKING:
    from sluice.backends import EmbeddingRequest
    from sluice.gateway.context import RequestContext
    from sluice.records import RequestRecord
    from sluice.routing import Pool

log = logging.getLogger("sluice.gateway")

Reply = AsyncGenerator[Chunk, None]
Kind = Literal["generate", "embed"]  # chains are built per model and kind: embeddings skip what only generation has


class Call:
    """One request on its way down the chain: the context, the request, what stages decide for the links after."""

    __slots__ = ("_ended", "_ends", "_open", "_opened_at", "_recorded", "ctx", "pool", "request", "response_headers",
                 "serve", "upstream")

    def __init__(self, ctx: RequestContext, request: GenerationRequest | EmbeddingRequest) -> None:
        self.ctx = ctx
        self.request = request
        self.serve = request.model  # the model whose deployment serves (a router model's stage changes it)
        self.pool: Pool | None = None  # that deployment's replicas for this caller (the `route` stage)
        self.response_headers: dict[str, str] | None = None  # what stages add to the HTTP response
        self.upstream: Reply | None = None  # the terminal's open stream: the runner closes it last
        self._open: str | None = None  # the stage whose time runs now (until the next link is entered)
        self._opened_at = 0.0
        self._ends: list[tuple[str, Callable[[RequestContext], None]]] | None = None
        self._recorded: list[Callable[[RequestContext, RequestRecord], None]] | None = None
        self._ended = False

    def on_end(self, stage: str, hook: Callable[[RequestContext], None]) -> None:
        """Run `hook(ctx)` when the request ends, however it ends; hooks run innermost first (as `finally`
        blocks would), so a stage's hook sees what the stages inside it settled. Must not block or raise."""
        if self._ends is None:
            self._ends = []
        self._ends.append((stage, hook))

    def on_record(self, hook: Callable[[RequestContext, RequestRecord], None]) -> None:
        """Run `hook(ctx, record)` once the request's record exists. Must not block or raise."""
        if self._recorded is None:
            self._recorded = []
        self._recorded.append(hook)

    def set_header(self, name: str, value: str) -> None:
        """A response header (for a stream, only what is set before its first chunk reaches the client)."""
        if self.response_headers is None:
            self.response_headers = {}
        self.response_headers[name] = value

    def close_stage(self) -> None:
        """The chain returned or raised: the stage still open (one that answered itself or refused) ends here."""
        open_stage = self._open
        if open_stage is not None:
            stage_s = self.ctx.stage_s
            stage_s[open_stage] = stage_s.get(open_stage, 0.0) + perf_counter() - self._opened_at
            self._open = None

    def end(self) -> None:
        """The request is over: run the end hooks, innermost first, each timed on its stage's account."""
        if self._ended:
            return
        self._ended = True
        if self._ends is None:
            return
        stage_s = self.ctx.stage_s
        for stage, hook in reversed(self._ends):
            started = perf_counter()
            try:
                hook(self.ctx)
            except Exception:  # a bug in one stage must not cost the others their hook, nor the request its record
                log.exception("stage %s: end hook failed for request %s", stage, self.ctx.request_id)
            stage_s[stage] = stage_s.get(stage, 0.0) + perf_counter() - started

    def recorded(self, record: RequestRecord) -> None:
        if self._recorded is not None:
            for hook in self._recorded:
                try:
                    hook(self.ctx, record)
                except Exception:
                    log.exception("a record hook failed for request %s", self.ctx.request_id)


Next = Callable[[Call], Awaitable[Reply]]


class Stage(Protocol):
    """One concern of the request path (see the module docstring)."""

    name: str  # what its time is reported as: lower-case, one word (`admission`, `cache`)

    async def __call__(self, call: Call, next: Next) -> Reply: ...


class EndStage(Protocol):
    """A stage that only acts when the request ends (pricing): no link of its own. Its `end(ctx)` is registered
    as an end hook when the request passes its place in the chain, as `call.on_end` from a full stage would be."""

    name: str

    def end(self, ctx: RequestContext) -> None: ...


class Chain:
    """A model's stages in order, then the terminal; `await chain(call)` runs them (then `call.close_stage()`)."""

    __slots__ = ("_head", "names")

    def __init__(self, stages: Sequence[Stage | EndStage], terminal: Next) -> None:
        names = [stage.name for stage in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"a chain has each stage once, got {names}")
        self.names = tuple(names)
        head = _Link(None, terminal, None)
        for stage in reversed(stages):
            if callable(stage):
                head = _Link(stage.name, stage, head)
            else:  # end-only: its hook is registered on entering the link after it
                head.ends = ((stage.name, stage.end), *head.ends)
        self._head: Next = head

    def __call__(self, call: Call) -> Awaitable[Reply]:
        return self._head(call)

    def __repr__(self) -> str:
        return f"Chain({' > '.join((*self.names, 'terminal'))})"


class _Link:
    """Calls a stage with the link after it. A plain call, not a coroutine of its own, so that a chain costs one
    frame per stage; entering a link ends the time of the stage before it, starts its own, and registers the end
    hooks of the end-only stages just before it."""

    __slots__ = ("ends", "name", "next", "stage")

    def __init__(self, name: str | None, stage: Callable[..., Awaitable[Reply]], next: Next | None) -> None:
        self.name = name  # None: the terminal, whose time is upstream and queue time, not a stage's
        self.stage = stage
        self.next = next
        self.ends: tuple[tuple[str, Callable[[RequestContext], None]], ...] = ()  # end-only stages just before

    def __call__(self, call: Call) -> Awaitable[Reply]:
        for stage, hook in self.ends:
            call.on_end(stage, hook)
        now = perf_counter()  # what Call.mark does, inlined: this runs once per stage per request
        open_stage = call._open
        if open_stage is not None:
            stage_s = call.ctx.stage_s
            stage_s[open_stage] = stage_s.get(open_stage, 0.0) + now - call._opened_at
        call._open = self.name
        call._opened_at = now
        if self.next is None:
            return self.stage(call)
        return self.stage(call, self.next)


class ChainSet:
    """Every model's chain, built on first use from `build` and again after `invalidate()` (a deployment
    changed). `build` returns None for a model this gateway does not serve; such names are not kept."""

    def __init__(self, build: Callable[[str, Kind], Chain | None]) -> None:
        self._build = build
        self._chains: dict[tuple[str, Kind], Chain] = {}

    def get(self, model: str, kind: Kind) -> Chain | None:
        chain = self._chains.get((model, kind))
        if chain is None:
            chain = self._build(model, kind)
            if chain is not None:
                self._chains[(model, kind)] = chain
        return chain

    def invalidate(self, *_: Any) -> None:
        self._chains.clear()


__all__ = ["Call", "Chain", "ChainSet", "EndStage", "Kind", "Next", "Reply", "Stage"]
