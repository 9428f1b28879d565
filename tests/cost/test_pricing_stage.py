"""The pricing stage on real request contexts: cache hits, unrouted requests, estimates, quotes, GPU charges."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from sluice.backends import ChatCompletionRequest, CompletionRequest, Usage
from sluice.config import parse_config
from sluice.cost import CostMetrics, GatewayPricing, PriceBook, count_message_tokens, count_prompt_tokens
from sluice.cost.pricing import INEXACT_TOKENIZER_MARGIN
from sluice.gateway.context import RequestContext

MINI_IN, MINI_OUT = 0.15, 0.60


@dataclass(frozen=True)
class PlainTarget:
    """The two things pricing reads of a routing target."""

    name: str
    upstream_model: str


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_pricing(pricing: dict[str, Any] | None = None, clock: Clock | None = None,
                 ) -> tuple[GatewayPricing, CollectorRegistry]:
    config = parse_config({
        "backends": {"api": {"type": "openai", "base_url": "https://api.example/v1"},
                     "claude": {"type": "anthropic"},
                     "gpu": {"type": "openai", "base_url": "http://vllm:8000/v1", "gpu_hour_usd": 3.6}},
        "pricing": pricing or {}})
    registry = CollectorRegistry()
    stage = GatewayPricing(PriceBook(config.pricing, config.backends), CostMetrics(registry),
                           default_max_output_tokens=config.pricing.default_max_output_tokens,
                           **({"clock": clock} if clock else {}))
    return stage, registry


def context(target: PlainTarget | None, usage: Usage | None = None, *, model: str = "chat") -> RequestContext:
    ctx = RequestContext("req-1", "chat", "127.0.0.1")
    ctx.model = model
    ctx.target = target  # type: ignore[assignment]
    ctx.usage = usage
    ctx.attempts = 1 if target is not None else 0
    return ctx


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_a_cache_hit_costs_nothing_and_bills_no_tokens() -> None:
    stage, registry = make_pricing()
    ctx = context(PlainTarget("api", "gpt-4o-mini"), Usage(1000, 500))
    ctx.cache_hit = "exact"
    ctx.attempts = 0
    stage.price(ctx)
    assert ctx.cost_usd == 0.0
    assert sample(registry, "sluice_cost_tokens_total", model="chat", key="", team="", type="prompt") == 0
    assert sample(registry, "sluice_cost_unpriced_requests_total", model="chat", key="", team="") == 0


def test_a_request_that_never_reached_a_target_is_not_priced_or_counted() -> None:
    stage, registry = make_pricing()
    ctx = context(None)
    stage.price(ctx)
    assert ctx.cost_usd is None
    assert sample(registry, "sluice_cost_unpriced_requests_total", model="chat", key="", team="") == 0


def test_costs_are_labelled_with_the_key_and_team_admission_set() -> None:
    @dataclass(frozen=True)
    class Key:
        id: str

    stage, registry = make_pricing()
    ctx = context(PlainTarget("api", "gpt-4o-mini"), Usage(1000, 100, cached_tokens=200, reasoning_tokens=40))
    ctx.key, ctx.team = Key("key-7"), "search"
    stage.price(ctx)
    expected = (800 * MINI_IN + 200 * 0.075 + 100 * MINI_OUT) / 1e6
    assert ctx.cost_usd == pytest.approx(expected)
    labels = {"model": "chat", "key": "key-7", "team": "search"}
    assert sample(registry, "sluice_cost_usd_total", **labels) == pytest.approx(expected)
    assert sample(registry, "sluice_cost_tokens_total", **labels, type="prompt") == 800
    assert sample(registry, "sluice_cost_tokens_total", **labels, type="cached_prompt") == 200
    assert sample(registry, "sluice_cost_tokens_total", **labels, type="reasoning") == 40


def test_a_quoted_request_is_charged_and_counted_once() -> None:
    stage, registry = make_pricing()
    ctx = context(PlainTarget("api", "gpt-4o-mini"), Usage(10, 10))
    assert stage.quote(ctx) == pytest.approx((10 * MINI_IN + 10 * MINI_OUT) / 1e6)
    stage.price(ctx)
    stage.price(context(PlainTarget("api", "gpt-4o-mini"), Usage(10, 10)))
    assert sample(registry, "sluice_cost_tokens_total", model="chat", key="", team="", type="completion") == 20


def test_a_priced_request_with_no_tokens_costs_zero() -> None:
    stage, _ = make_pricing()
    ctx = context(PlainTarget("api", "gpt-4o-mini"))
    ctx.attempts = 0  # e.g. refused by a budget before any upstream call
    stage.price(ctx)
    assert ctx.cost_usd == 0.0


def test_the_estimate_bounds_prompt_and_the_requested_output() -> None:
    stage, _ = make_pricing()
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is a sluice gate?"}]
    request = ChatCompletionRequest(model="chat", messages=messages, max_completion_tokens=100, n=2)
    prompt = count_message_tokens(request.messages, "gpt-4o-mini")
    estimate = stage.estimate(context(PlainTarget("api", "gpt-4o-mini")), request)
    assert estimate == pytest.approx((prompt * MINI_IN + 200 * MINI_OUT) / 1e6)
    completion = CompletionRequest(model="chat", prompt="one two three")
    default = stage.estimate(context(PlainTarget("api", "gpt-4o-mini")), completion)
    assert default == pytest.approx((count_prompt_tokens("one two three", "gpt-4o-mini") * MINI_IN
                                     + 4096 * MINI_OUT) / 1e6)


def test_the_estimate_pads_approximate_token_counts_and_takes_the_dearest_prompt_rate() -> None:
    stage, _ = make_pricing({"default_max_output_tokens": 50})
    request = ChatCompletionRequest(model="chat", messages=[{"role": "user", "content": "hello there"}])
    counted = count_message_tokens(request.messages, "claude-3-5-haiku-latest")
    padded = int(counted * INEXACT_TOKENIZER_MARGIN) + 1
    estimate = stage.estimate(context(PlainTarget("claude", "claude-3-5-haiku-latest")), request)
    assert estimate == pytest.approx((padded * 1.00 + 50 * 4.00) / 1e6)  # cache writes (1.00) > input (0.80)


def test_unpriced_targets_have_no_estimate_and_no_cost() -> None:
    stage, _ = make_pricing()
    request = ChatCompletionRequest(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert stage.estimate(context(PlainTarget("api", "our-finetune")), request) is None
    assert stage.cost_of(PlainTarget("api", "our-finetune"), Usage(1, 1)) is None


def test_gpu_targets_are_charged_their_share_of_busy_time() -> None:
    clock = Clock(1000.0)
    stage, registry = make_pricing({"gpu": {"prompt_token_weight": 0.5}}, clock)
    target = PlainTarget("gpu", "llama-3.1-8b")
    request = ChatCompletionRequest(model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=10)
    assert stage.estimate(context(target), request) is None  # no tokens measured yet: no rate
    ctx = context(target, Usage(prompt_tokens=200, completion_tokens=100))
    clock.now = ctx.arrival + 10.0  # ten seconds on the GPUs (3.6 USD/h = 0.001 USD/s)
    stage.price(ctx)
    assert ctx.cost_usd == pytest.approx(0.010)  # 200 x 0.5 + 100 = 200 weighted tokens pay the 10 s
    assert sample(registry, "sluice_gpu_busy_seconds_total", backend="gpu") == pytest.approx(10.0)
    assert sample(registry, "sluice_gpu_attributed_cost_usd_total", backend="gpu") == pytest.approx(0.010)
    assert sample(registry, "sluice_gpu_cost_usd_per_hour", backend="gpu") == 3.6
    assert stage.cost_of(target, Usage(200, 100)) == pytest.approx(0.010)  # at the current rate, no side effects
    assert stage.cost_of(target, Usage(200, 100)) == pytest.approx(0.010)
    prompt = count_message_tokens(request.messages, "llama-3.1-8b")
    assert stage.estimate(context(target), request) == pytest.approx((prompt * 0.5 + 10) * 0.010 / 200)


def test_gpu_targets_charge_nothing_for_requests_that_never_reached_them() -> None:
    clock = Clock(1000.0)
    stage, registry = make_pricing(clock=clock)
    ctx = context(PlainTarget("gpu", "llama"), None)
    ctx.attempts = 0
    clock.now = ctx.arrival + 10.0
    stage.price(ctx)
    assert ctx.cost_usd == 0.0
    assert sample(registry, "sluice_gpu_busy_seconds_total", backend="gpu") == 0.0
