"""The gateway's `Pricing` stage: the cost of every request, an upper bound before it runs, and metrics."""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry

from sluice.backends import ChatCompletionRequest, Usage
from sluice.config import SluiceConfig
from sluice.cost.metrics import CostMetrics
from sluice.cost.price_book import GPUPriced, PriceBook, TargetPrice, TokenPriced
from sluice.cost.tokens import count_message_tokens, count_prompt_tokens, tokenizer_for
from sluice.cost.usage_cost import token_cost_usd

if TYPE_CHECKING:
    from sluice.backends import CompletionRequest
    from sluice.gateway.context import RequestContext

# Prompts counted with a stand-in tokenizer (Claude, Mistral…) are padded by this much in upper-bound estimates.
INEXACT_TOKENIZER_MARGIN = 1.25


class PricedTarget(Protocol):
    """What `cost_of` needs of a target: routing's `Target` has both."""

    @property
    def name(self) -> str: ...

    @property
    def upstream_model(self) -> str: ...


class GatewayPricing:
    """Sets `ctx.cost_usd` on every routed request: 0.0 for cache hits, None for unpriced targets.

    A stream's usage chunk is priced as it passes (`quote`) so the client sees the cost in it; the final
    `price` call then keeps that figure instead of charging twice.
    """

    def __init__(self, book: PriceBook, metrics: CostMetrics | None = None, *, default_max_output_tokens: int = 4096,
                 clock: Callable[[], float] = perf_counter) -> None:
        self.book = book
        self.metrics = metrics
        self.default_max_output_tokens = default_max_output_tokens
        self._clock = clock  # the clock of ctx.arrival
        self._quoted: dict[int, tuple[float | None, Usage | None]] = {}  # id(ctx) -> quoted, until price()
        if metrics is not None:
            for name, gpu in book.gpu_backends.items():
                metrics.gpu_hourly.labels(name).set(gpu.meter.usd_per_hour)

    def price(self, ctx: RequestContext) -> None:
        quoted = self._quoted.pop(id(ctx), None)
        cost, usage = quoted if quoted is not None else self._charge(ctx)
        ctx.cost_usd = cost
        if self.metrics is not None and ctx.target is not None:
            self.metrics.observe(ctx.model, getattr(ctx.key, "id", None) or "", ctx.team or "",
                                 None if ctx.cache_hit else usage, cost)

    def quote(self, ctx: RequestContext) -> float | None:
        """Price the request now (its usage just arrived); `price(ctx)` at the end keeps this figure."""
        quoted = self._quoted.get(id(ctx))
        if quoted is None:
            quoted = self._quoted[id(ctx)] = self._charge(ctx)
        ctx.cost_usd = quoted[0]
        return quoted[0]

    def estimate(self, ctx: RequestContext, request: ChatCompletionRequest | CompletionRequest) -> float | None:
        """Upper bound before the request runs: counted prompt tokens at the dearest prompt rate plus the
        request's output limit (else `default_max_output_tokens`) x n at the output rate. None when unpriced
        (or GPU-priced with no tokens measured yet)."""
        target = ctx.target
        priced = self.book.price_for(target.name, target.upstream_model) if target is not None else None
        if priced is None or target is None:
            return None
        model = target.upstream_model
        if isinstance(request, ChatCompletionRequest):
            prompt = count_message_tokens(request.messages, model)
        else:
            prompt = count_prompt_tokens(request.prompt, model)
        if not tokenizer_for(model).exact:
            prompt = int(prompt * INEXACT_TOKENIZER_MARGIN) + 1
        output = (request.output_limit or self.default_max_output_tokens) * (request.n or 1)
        if isinstance(priced, TokenPriced):
            price = priced.price
            dearest_prompt = max(price.input_usd_per_1m, price.cached_input, price.cache_write)
            return (prompt * dearest_prompt + output * price.output_usd_per_1m) / 1e6
        rate = priced.meter.usd_per_weighted_token(self._clock())
        return None if rate is None else priced.weights.weigh(Usage(prompt, output)) * rate

    def cost_of(self, target: PricedTarget, usage: Usage) -> float | None:
        """What `usage` costs on `target` at current prices, with no side effects (shadow calls, what-ifs)."""
        priced = self.book.price_for(target.name, target.upstream_model)
        if priced is None:
            return None
        if isinstance(priced, TokenPriced):
            return token_cost_usd(priced.price, usage)
        rate = priced.meter.usd_per_weighted_token(self._clock())
        return None if rate is None else priced.weights.weigh(usage) * rate

    def price_of(self, target: PricedTarget) -> TargetPrice | None:
        """The price that applies to a target, and where it came from."""
        return self.book.price_for(target.name, target.upstream_model)

    def _charge(self, ctx: RequestContext) -> tuple[float | None, Usage | None]:
        target = ctx.target
        if target is None:
            return None, None
        if ctx.cache_hit:
            return 0.0, ctx.usage
        priced = self.book.price_for(target.name, target.upstream_model)
        usage = ctx.usage
        if usage is None and priced is not None and ctx.attempts > 0:  # reached an upstream that reported none
            usage = _estimated_usage(ctx)
        if priced is None:
            return None, usage
        if isinstance(priced, TokenPriced):
            return (token_cost_usd(priced.price, usage) if usage is not None else 0.0), usage
        return self._charge_gpu(ctx, priced, usage), usage

    def _charge_gpu(self, ctx: RequestContext, priced: GPUPriced, usage: Usage | None) -> float:
        if ctx.attempts == 0:  # refused before any upstream call: the GPUs did nothing for it
            return 0.0
        meter = priced.meter
        busy_before = meter.busy_total_s
        cost = meter.record(ctx.arrival + ctx.queue_s, self._clock(),
                            priced.weights.weigh(usage) if usage is not None else 0.0)
        if self.metrics is not None:
            self.metrics.gpu_busy.labels(priced.backend).inc(meter.busy_total_s - busy_before)
            if cost > 0:
                self.metrics.gpu_attributed.labels(priced.backend).inc(cost)
        return cost


def _estimated_usage(ctx: RequestContext) -> Usage | None:
    """Tokenizer counts when the upstream reported no usage (the log row marks them estimated)."""
    record = ctx.finish(keep_bodies=False)
    if record.prompt_tokens is None and record.completion_tokens is None:
        return None
    return Usage(record.prompt_tokens or 0, record.completion_tokens or 0)


def build_pricing(config: SluiceConfig, registry: CollectorRegistry | None = None) -> GatewayPricing | None:
    """The pricing stage for a config (None when `pricing.enabled` is false: the no-op stage is used)."""
    if not config.pricing.enabled:
        return None
    book = PriceBook(config.pricing, config.backends)
    metrics = CostMetrics(registry) if registry is not None else None
    return GatewayPricing(book, metrics, default_max_output_tokens=config.pricing.default_max_output_tokens)


def usd_header(cost_usd: float) -> str:
    """The `x-sluice-cost-usd` header value: fixed-point, 10 decimals (sub-micro-dollar requests stay visible)."""
    return f"{cost_usd:.10f}"


__all__ = ["INEXACT_TOKENIZER_MARGIN", "GatewayPricing", "PricedTarget", "build_pricing", "usd_header"]
