"""`GatewayCache`: the request path's ResponseCache stage — exact lookup, then semantic; store after success."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

import numpy as np

from sluice.backends import Chunk, Completion, StreamCollector, Whole, completion_from_payload, replay_chunks
from sluice.cache.embedder import Embedder
from sluice.cache.exact import ExactStore, MemoryExactStore, decode_entry, encode_entry
from sluice.cache.guard import compatible
from sluice.cache.keys import SemanticQuery, exact_key, request_body, semantic_query
from sluice.cache.metrics import CacheMetrics
from sluice.cache.policy import CACHE_HEADER, Directive, directive_from_headers, namespace_of, qualifies, storable
from sluice.cache.semantic import SemanticStore
from sluice.config import CacheConfig

if TYPE_CHECKING:
    from sluice.backends import GenerationRequest
    from sluice.gateway.chain import Call, Next, Reply
    from sluice.gateway.context import RequestContext

log = logging.getLogger("sluice.cache")

SWEEP_INTERVAL_S = 30.0


@dataclass(slots=True)
class _Pending:
    """What lookup worked out for one request, kept (weakly, by the request object) until store needs it."""

    settings: CacheConfig
    directive: Directive
    exact_key: str | None
    semantic: SemanticQuery | None
    outcome: str  # the x-sluice-cache response header: hit-exact | hit-semantic | miss | bypass
    vector: np.ndarray | None = None

    @property
    def may_store(self) -> bool:
        return (self.directive.store and not self.outcome.startswith("hit")
                and (self.exact_key is not None or self.semantic is not None))


class StreamCapture:
    """Collects a stream as it is relayed; `finish()` after a clean end stores the answer it adds up to."""

    __slots__ = ("_cache", "_collector", "_ctx", "_request")

    def __init__(self, cache: GatewayCache, ctx: RequestContext, request: GenerationRequest,
                 collector: StreamCollector) -> None:
        self._cache, self._ctx, self._request, self._collector = cache, ctx, request, collector

    def add(self, chunk: Chunk) -> None:
        self._collector.add(chunk.payload)

    def finish(self) -> None:
        answer = self._collector.completion()
        if answer is not None:
            self._cache.store(self._ctx, self._request, answer)


class GatewayCache:
    """Exact and semantic response caching for the models whose effective `cache` enables either kind."""

    def __init__(self, settings: dict[str, CacheConfig], metrics: CacheMetrics, *, exact: ExactStore,
                 semantic: SemanticStore | None = None, embedder: Embedder | None = None,
                 clock: Callable[[], float] = time.time, closers: tuple[Any, ...] = ()) -> None:
        self.settings = settings  # public model -> effective config; absent: caching off for that model
        self.metrics = metrics
        self.exact = exact
        self.semantic = semantic
        self.embedder = embedder
        self.clock = clock
        self._closers = closers  # Redis clients to close at shutdown
        self._pending: dict[int, tuple[weakref.ref[Any], _Pending]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = threading.Condition()
        self._background: list[asyncio.Task[None]] = []
        self.starts: dict[str, str] = {}  # embedder / semantic_index -> starting | ready | failed (/health/ready)

    # --- the stage -----------------------------------------------------------------------------------------

    async def lookup(self, ctx: RequestContext, request: GenerationRequest) -> Completion | None:
        settings = self.settings.get(request.model)
        if settings is None:
            return None
        directive = directive_from_headers(ctx.headers)
        pending = self._plan(ctx, request, settings, directive)
        self._remember(request, pending)
        if pending.outcome == "bypass" or not directive.lookup:
            pending.outcome = "bypass"
            self.metrics.bypasses.labels(request.model).inc()
            return None
        now = self.clock()
        if pending.exact_key is not None:
            payload = await self._exact_lookup(pending.exact_key, request.model, now)
            if payload is not None:
                return self._hit(ctx, pending, payload, "exact")
        if pending.semantic is not None:
            payload = await self._semantic_lookup(pending, request.model, now)
            if payload is not None:
                return self._hit(ctx, pending, payload, "semantic")
        pending.outcome = "miss"
        return None

    def store(self, ctx: RequestContext, request: GenerationRequest, answer: Completion) -> None:
        """Keep a fresh, complete answer (never blocks: Redis writes and embeddings run as tasks)."""
        pending = self._pending_for(request)
        if pending is None or not pending.may_store or ctx.error is not None:
            return
        settings = pending.settings
        if not storable(answer.payload, store_truncated=settings.store_truncated):
            return
        now = self.clock()
        if pending.exact_key is not None:
            entry = encode_entry(answer.payload, now + settings.exact.ttl_s)
            if len(entry) <= settings.max_entry_bytes:
                self._store_exact(pending.exact_key, entry, settings.exact.ttl_s, now, request.model)
        if pending.semantic is not None and self.semantic is not None:
            entry = encode_entry(answer.payload, now + settings.semantic.ttl_s)
            if len(entry) <= settings.max_entry_bytes:
                self._spawn(self._store_semantic(pending, entry, now, request.model))

    def capture(self, ctx: RequestContext, request: GenerationRequest) -> StreamCapture | None:
        """A collector for a stream about to be relayed, or None when its answer would not be stored."""
        pending = self._pending_for(request)
        if pending is None or not pending.may_store:
            return None
        return StreamCapture(self, ctx, request, StreamCollector(ctx.endpoint, pending.settings.max_entry_bytes))

    def may_store(self, request: GenerationRequest) -> bool:
        """Whether this request's answer would be kept (lookup decided: a miss that may be stored)."""
        pending = self._pending_for(request)
        return pending is not None and pending.may_store

    def outcome(self, ctx: RequestContext, request: GenerationRequest) -> str | None:
        """The x-sluice-cache response header; None when caching is off for the model."""
        pending = self._pending_for(request)
        return pending.outcome if pending is not None else None

    # --- lookup ---------------------------------------------------------------------------------------------

    def _plan(self, ctx: RequestContext, request: GenerationRequest, settings: CacheConfig,
              directive: Directive) -> _Pending:
        exact_on = settings.exact.enabled and qualifies(settings.exact.when, request.temperature, request.seed)
        semantic_on = (self.semantic is not None and settings.semantic.enabled
                       and qualifies(settings.semantic.when, request.temperature, request.seed))
        if not (exact_on or semantic_on):
            return _Pending(settings, directive, None, None, "bypass")
        namespace = namespace_of(settings.namespace, ctx.key, ctx.team)
        body = request_body(request, ctx.raw_body)
        key = exact_key(ctx.endpoint, namespace, body) if exact_on else None
        query = semantic_query(ctx.endpoint, namespace, body, max_user_turns=settings.semantic.max_user_turns) \
            if semantic_on else None
        outcome = "miss" if key is not None or query is not None else "bypass"
        return _Pending(settings, directive, key, query, outcome)

    async def _exact_lookup(self, key: str, model: str, now: float) -> dict[str, Any] | None:
        started = perf_counter()
        try:
            data = await self.exact.get(key, now)
        except Exception as exc:
            self._failed("exact_lookup", exc)
            return None
        payload = decode_entry(data, now) if data is not None else None
        self.metrics.lookup_time.labels("exact").observe(perf_counter() - started)
        (self.metrics.hits if payload is not None else self.metrics.misses).labels("exact", model).inc()
        return payload

    async def _semantic_lookup(self, pending: _Pending, model: str, now: float) -> dict[str, Any] | None:
        assert pending.semantic is not None and self.semantic is not None
        pending.vector = await self._embed(pending.semantic.text)
        if pending.vector is None:
            return None
        started = perf_counter()
        try:
            found = await self.semantic.find(pending.semantic.scope, pending.vector,
                                             pending.settings.semantic.threshold, now)
        except Exception as exc:
            self._failed("semantic_lookup", exc)
            return None
        if found is not None and pending.settings.semantic.guard and not compatible(pending.semantic.text, found.text):
            self.metrics.refused.labels(model).inc()  # close in meaning, but a number, negation or swap differs
            found = None
        payload = decode_entry(found.entry, now) if found is not None else None
        self.metrics.lookup_time.labels("semantic").observe(perf_counter() - started)
        (self.metrics.hits if payload is not None else self.metrics.misses).labels("semantic", model).inc()
        return payload

    async def _embed(self, text: str) -> np.ndarray | None:
        assert self.embedder is not None
        started = perf_counter()
        try:
            vector = await self.embedder.embed(text)
        except Exception as exc:  # not loaded yet, or a remote embedder failed: this request goes uncached
            self._failed("embed", exc)
            return None
        self.metrics.embed_time.observe(perf_counter() - started)
        return vector

    def _hit(self, ctx: RequestContext, pending: _Pending, payload: dict[str, Any], kind: str) -> Completion:
        ctx.cache_hit = kind
        pending.outcome = f"hit-{kind}"
        if isinstance(payload.get("id"), str):
            prefix = "chatcmpl-" if ctx.endpoint == "chat" else "cmpl-"
            payload["id"] = prefix + ctx.request_id  # a new answer id, the gateway's own: one id per response
        return completion_from_payload(payload, ctx.endpoint)

    # --- store ----------------------------------------------------------------------------------------------

    def _store_exact(self, key: str, entry: bytes, ttl_s: float, now: float, model: str) -> None:
        if isinstance(self.exact, MemoryExactStore):
            self.exact.put(key, entry, ttl_s, now)  # in place: the very next request can hit it
            self.metrics.stores.labels("exact", model).inc()
            self.metrics.entries.labels("exact").set(self.exact.entries)
            return

        async def write() -> None:
            await self.exact.set(key, entry, ttl_s, now)
            self.metrics.stores.labels("exact", model).inc()

        self._spawn(write(), operation="exact_store")

    async def _store_semantic(self, pending: _Pending, entry: bytes, now: float, model: str) -> None:
        assert pending.semantic is not None and self.semantic is not None
        vector = pending.vector if pending.vector is not None else await self._embed(pending.semantic.text)
        if vector is None:
            return
        await self.semantic.add(pending.semantic.scope, vector, entry, pending.settings.semantic.ttl_s, now,
                                text=pending.semantic.text)
        self.metrics.stores.labels("semantic", model).inc()
        self.metrics.entries.labels("semantic").set(self.semantic.entries)

    # --- per-request state ----------------------------------------------------------------------------------

    def _remember(self, request: GenerationRequest, pending: _Pending) -> None:
        ident = id(request)
        # Dropped when the request object is freed: however the request ended, nothing lingers.
        ref = weakref.ref(request, lambda _: self._pending.pop(ident, None))
        self._pending[ident] = (ref, pending)

    def _pending_for(self, request: GenerationRequest) -> _Pending | None:
        held = self._pending.get(id(request))
        return held[1] if held is not None and held[0]() is request else None

    # --- background work, lifecycle -------------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None], operation: str = "semantic_store") -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception as exc:
                self._failed(operation, exc)

        task = asyncio.get_running_loop().create_task(guarded())
        with self._idle:
            self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        with self._idle:
            self._tasks.discard(task)
            self._idle.notify_all()

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Block (any thread but the gateway's loop) until every background write has finished."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._tasks, timeout=timeout_s)

    def _failed(self, operation: str, exc: BaseException) -> None:
        self.metrics.errors.labels(operation).inc()
        log.warning("cache %s failed: %s: %s", operation, type(exc).__name__, exc)

    async def sweep(self) -> int:
        """Remove expired semantic entries from the index now (also runs every SWEEP_INTERVAL_S)."""
        return await self.semantic.sweep(self.clock()) if self.semantic is not None else 0

    async def start(self) -> None:
        if self.embedder is not None:
            # Loads in the background like any backend; lookups before it is ready are misses.
            self._background.append(asyncio.create_task(self._starting("embedder", self.embedder.start())))
        if self.semantic is not None:
            self._background.append(asyncio.create_task(self._starting("semantic_index", self.semantic.start())))
            self._background.append(asyncio.create_task(self._sweep_forever()))

    async def _starting(self, part: str, work: Coroutine[Any, Any, Any]) -> None:
        self.starts[part] = "starting"
        self.starts[part] = "ready" if await self._guard(f"{part}_start", work) else "failed"

    async def _guard(self, operation: str, work: Coroutine[Any, Any, Any]) -> bool:
        try:
            await work
        except Exception as exc:
            self._failed(operation, exc)
            return False
        return True

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            await self._guard("sweep", self.sweep())

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5.0)
        if self.semantic is not None:
            await self.semantic.close()
        if self.embedder is not None:
            await self.embedder.close()
        for client in self._closers:
            with contextlib.suppress(Exception):
                await client.aclose()


class CacheStage:
    """The chain's cache stage (gateway/chain.py), in the chains of models whose cache is on: a hit answers
    without calling `next` (a stream is replayed as one write); a miss passes on and keeps the answer once it
    has ended cleanly. Sets the `x-sluice-cache` response header."""

    name = "cache"

    def __init__(self, cache: GatewayCache) -> None:
        self.cache = cache

    async def __call__(self, call: Call, next: Next) -> Reply:
        ctx, request = call.ctx, call.request
        cache = self.cache
        cached = await cache.lookup(ctx, request)  # type: ignore[arg-type]
        outcome = cache.outcome(ctx, request)  # type: ignore[arg-type]
        if outcome is not None:
            call.set_header(CACHE_HEADER, outcome)
        if cached is not None:
            return _replay(cached, ctx.endpoint) if ctx.stream else Whole(cached)  # type: ignore[return-value]
        reply = await next(call)
        if not ctx.stream:
            if not cache.may_store(request):  # type: ignore[arg-type]
                return reply
            if type(reply) is Whole:  # the whole answer is here already: keep it now
                cache.store(ctx, request, reply.answer)  # type: ignore[arg-type]
                return reply
            return _store_whole(cache, ctx, request, reply)  # type: ignore[arg-type]
        capture = cache.capture(ctx, request)  # type: ignore[arg-type]
        return reply if capture is None else _captured(reply, capture)


async def _replay(answer: Completion, endpoint: str) -> Reply:
    """The cached answer as the chunks an upstream would have streamed, all written to the client at once."""
    chunks = replay_chunks(answer, endpoint)
    for chunk in chunks[:-1]:
        chunk.buffered = True
    for chunk in chunks:
        yield chunk


async def _store_whole(cache: GatewayCache, ctx: RequestContext, request: GenerationRequest, reply: Reply) -> Reply:
    async with contextlib.aclosing(reply):
        async for chunk in reply:
            cache.store(ctx, request, Completion.of_chunk(chunk))
            yield chunk


async def _captured(reply: Reply, capture: StreamCapture) -> Reply:
    async with contextlib.aclosing(reply):
        async for chunk in reply:
            capture.add(chunk)
            yield chunk
    capture.finish()  # a clean end: the stream adds up to an answer worth keeping
