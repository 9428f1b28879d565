"""The optional stages of the request path, each behind one small interface with a no-op default.

The pipeline calls them in this order (see pipeline.py):
  admission.admit  -> cache.lookup -> [route, call upstream, relay] -> cache.store
  -> pricing.price -> admission.settle -> recorder.record
A disabled stage is its no-op object here: one attribute lookup and a call that returns at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sluice.backends import ChatCompletionRequest, Completion, CompletionRequest
    from sluice.gateway.context import RequestContext

    GenerationRequest = ChatCompletionRequest | CompletionRequest


class Admission(Protocol):
    """Virtual-key permissions, rate limits and budgets (cost/, state/)."""

    async def admit(self, ctx: RequestContext, request: GenerationRequest) -> None:
        """Refuse (raise a SluiceError) or let the request through, reserving what it may spend."""

    def settle(self, ctx: RequestContext) -> None:
        """The request ended (however it ended): reconcile its reservation. Must not block."""


class ResponseCache(Protocol):
    """Exact and semantic response caching (cache/)."""

    async def lookup(self, ctx: RequestContext, request: GenerationRequest) -> Completion | None:
        """A cached answer for this request, or None (sets ctx.cache_hit on a hit)."""

    def store(self, ctx: RequestContext, request: GenerationRequest) -> None:
        """A fresh answer finished successfully: keep it if cacheable. Must not block."""


class Pricing(Protocol):
    """Cost of a finished request (cost/)."""

    def price(self, ctx: RequestContext) -> None:
        """Set ctx.cost_usd from its usage and target. Must be cheap and not block."""


class NoAdmission:
    async def admit(self, ctx: RequestContext, request: GenerationRequest) -> None:
        return None

    def settle(self, ctx: RequestContext) -> None:
        return None


class NoCache:
    async def lookup(self, ctx: RequestContext, request: GenerationRequest) -> Completion | None:
        return None

    def store(self, ctx: RequestContext, request: GenerationRequest) -> None:
        return None


class NoPricing:
    def price(self, ctx: RequestContext) -> None:
        return None


__all__ = ["Admission", "NoAdmission", "NoCache", "NoPricing", "Pricing", "ResponseCache"]
