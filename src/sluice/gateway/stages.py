"""The optional stages of the request path, each behind one small interface with a no-op default.

The pipeline calls them in this order (see pipeline.py):
  admission.admit  -> cache.lookup -> [route, call upstream, relay] -> cache.store
  -> pricing.price -> admission.settle -> recorder.record
A disabled stage is its no-op object here: one attribute lookup and a call that returns at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sluice.backends import Chunk, Completion, GenerationRequest
    from sluice.gateway.context import RequestContext


class Admission(Protocol):
    """Virtual-key permissions, rate limits and budgets (cost/, state/)."""

    async def admit(self, ctx: RequestContext, request: GenerationRequest) -> None:
        """Refuse (raise a SluiceError) or let the request through, reserving what it may spend."""

    def settle(self, ctx: RequestContext) -> None:
        """The request ended (however it ended): reconcile its reservation. Must not block."""


class StreamCapture(Protocol):
    """Collects a relayed stream's chunks; `finish()` after a clean end stores the answer they add up to."""

    def add(self, chunk: Chunk) -> None: ...

    def finish(self) -> None: ...


class ResponseCache(Protocol):
    """Exact and semantic response caching (cache/)."""

    async def lookup(self, ctx: RequestContext, request: GenerationRequest) -> Completion | None:
        """A cached answer for this request, or None (sets ctx.cache_hit on a hit)."""

    def store(self, ctx: RequestContext, request: GenerationRequest, answer: Completion) -> None:
        """A fresh answer finished successfully: keep it if cacheable. Must not block."""

    def capture(self, ctx: RequestContext, request: GenerationRequest) -> StreamCapture | None:
        """For a stream about to be relayed after a miss: its collector, or None when it won't be stored."""

    def outcome(self, ctx: RequestContext, request: GenerationRequest) -> str | None:
        """The `x-sluice-cache` response header (hit-exact | hit-semantic | miss | bypass); None: cache off."""


class Pricing(Protocol):
    """Cost of a finished request (cost/)."""

    def price(self, ctx: RequestContext) -> None:
        """Set ctx.cost_usd from its usage and target. Must be cheap and not block."""

    def estimate(self, ctx: RequestContext, request: GenerationRequest) -> float | None:
        """Upper bound in USD before the request runs (counted prompt tokens x input price + max output
        tokens x output price), for budget reservations; None when ctx.target is unpriced."""

    def quote(self, ctx: RequestContext) -> float | None:
        """Price now, before the request ends (a stream's usage chunk carries the cost); the final
        `price(ctx)` keeps this figure rather than charging again."""


class NoAdmission:
    async def admit(self, ctx: RequestContext, request: GenerationRequest) -> None:
        return None

    def settle(self, ctx: RequestContext) -> None:
        return None


class NoCache:
    async def lookup(self, ctx: RequestContext, request: GenerationRequest) -> Completion | None:
        return None

    def store(self, ctx: RequestContext, request: GenerationRequest, answer: Completion) -> None:
        return None

    def capture(self, ctx: RequestContext, request: GenerationRequest) -> StreamCapture | None:
        return None

    def outcome(self, ctx: RequestContext, request: GenerationRequest) -> str | None:
        return None


class NoPricing:
    def price(self, ctx: RequestContext) -> None:
        return None

    def estimate(self, ctx: RequestContext, request: GenerationRequest) -> float | None:
        return None

    def quote(self, ctx: RequestContext) -> float | None:
        return None


__all__ = ["Admission", "NoAdmission", "NoCache", "NoPricing", "Pricing", "ResponseCache", "StreamCapture"]
