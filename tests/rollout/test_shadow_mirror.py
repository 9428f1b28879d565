"""The shadow mirror against a real loopback upstream: what it sends, what it pairs, and its bounds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from sluice.backends import Backend, ChatCompletionRequest, Usage, build_backend
from sluice.config import parse_config
from sluice.gateway.context import RequestContext
from sluice.rollout import DeploymentRegistry
from sluice.rollout.shadow import SHADOW_HEADER, ShadowMirror, ShadowTarget
from sluice.rollout.shadow_metrics import ShadowMetrics
from sluice.rollout.shadow_pair import ShadowPair
from tests.support.openai_server import OpenAIUpstream, make_openai_upstream
from tests.support.servers import serve_app

BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "one two three"}], "stream": True}


class PairList:
    """A sink that keeps what it is given (the writer's interface)."""

    def __init__(self) -> None:
        self.pairs: list[ShadowPair] = []

    def submit(self, pair: ShadowPair) -> None:
        self.pairs.append(pair)


@pytest.fixture
def shadow_upstream() -> Iterator[tuple[OpenAIUpstream, str]]:
    app = make_openai_upstream(models=["big-model"])
    with serve_app(app) as url:
        yield app, url


def deployments(url: str, shadow_model: str = "big-model", **rollout: Any) -> DeploymentRegistry:
    config = parse_config({
        "backends": {"up": {"type": "openai", "base_url": url + "/v1"},
                     "shadow-up": {"type": "openai", "base_url": url + "/v1"}},
        "models": {"m": {"targets": [{"backend": "up", "model": "up-model"}],
                         "rollout": {"shadow": [{"backend": "shadow-up", "model": shadow_model}], **rollout}},
                   "plain": {"targets": [{"backend": "up"}]}},
    })
    return DeploymentRegistry.from_config(config)


@pytest.fixture
async def shadow_backend(shadow_upstream: tuple[OpenAIUpstream, str]) -> AsyncIterator[Backend]:
    config = parse_config({"backends": {"shadow-up": {"type": "openai", "base_url": shadow_upstream[1] + "/v1"}}})
    backend = build_backend("shadow-up", config.backends["shadow-up"])
    await backend.start()
    try:
        yield backend
    finally:
        await backend.close()


def mirror_for(registry: DeploymentRegistry, backend: Backend, **kwargs: Any) -> tuple[ShadowMirror, PairList]:
    sink = PairList()
    mirror = ShadowMirror(registry, {"shadow-up": backend}, ShadowMetrics(CollectorRegistry()), sink=sink, **kwargs)
    return mirror, sink


def primary(request_id: str, backend: Backend, model: str = "m") -> tuple[RequestContext, ChatCompletionRequest]:
    ctx = RequestContext(request_id, "chat", "127.0.0.1")
    body = {**BODY, "model": model}
    request = ChatCompletionRequest.model_validate(body)
    ctx.model, ctx.request, ctx.raw_body, ctx.stream = model, request, body, True
    ctx.target = ShadowTarget(backend, "up-model", 100.0)  # type: ignore[assignment]
    return ctx, request


def finish_primary(mirror: ShadowMirror, ctx: RequestContext, text: str = "one two three") -> None:
    ctx.timer.on_output(ctx.arrival + 0.001)
    ctx.text_parts.append(text)
    ctx.usage = Usage(3, 3)
    mirror.primary_done(ctx, ctx.finish(keep_bodies=True))


def outcome(mirror: ShadowMirror, model: str, name: str) -> float:
    value = mirror.metrics.requests.labels(model, name)._value.get()  # type: ignore[attr-defined]
    return float(value)


async def test_a_streamed_request_is_mirrored_once_without_streaming_and_paired(
        shadow_upstream: tuple[OpenAIUpstream, str], shadow_backend: Backend) -> None:
    upstream, url = shadow_upstream
    mirror, sink = mirror_for(deployments(url), shadow_backend)
    ctx, request = primary("req-1", shadow_backend)
    mirror.start(ctx, request)
    finish_primary(mirror, ctx)
    await mirror.close(grace_s=10)
    (sent,) = upstream.requests
    assert sent.body["stream"] is False and "stream_options" not in sent.body
    assert sent.body["model"] == "big-model"
    assert sent.headers[SHADOW_HEADER] == "1" and sent.headers["x-request-id"] == "req-1-shadow"
    (pair,) = sink.pairs
    assert pair.request_id == "req-1" and pair.model == "m"
    assert (pair.primary_target, pair.shadow_target, pair.shadow_model) == ("shadow-up", "shadow-up", "big-model")
    assert pair.both_ok and pair.exact_match is True and pair.similarity == 1.0
    assert (pair.shadow_prompt_tokens, pair.shadow_completion_tokens) == (3, 3)
    assert pair.primary_stream and pair.primary_ttft_s == pytest.approx(0.001)
    assert pair.shadow_e2e_s is not None and pair.shadow_e2e_s > 0
    assert outcome(mirror, "m", "sent") == 1 and mirror.in_flight("m") == 0


async def test_models_without_a_shadow_target_are_not_mirrored(
        shadow_upstream: tuple[OpenAIUpstream, str], shadow_backend: Backend) -> None:
    upstream, url = shadow_upstream
    mirror, sink = mirror_for(deployments(url), shadow_backend)
    ctx, request = primary("req-plain", shadow_backend, model="plain")
    mirror.start(ctx, request)
    finish_primary(mirror, ctx)
    await mirror.close(grace_s=10)
    assert upstream.requests == [] and sink.pairs == []


async def test_requests_outside_the_sample_are_skipped_and_counted(
        shadow_upstream: tuple[OpenAIUpstream, str], shadow_backend: Backend) -> None:
    upstream, url = shadow_upstream
    mirror, sink = mirror_for(deployments(url, shadow_sample_rate=0.0), shadow_backend)
    for index in range(3):
        ctx, request = primary(f"req-{index}", shadow_backend)
        mirror.start(ctx, request)
        finish_primary(mirror, ctx)
    await mirror.close(grace_s=10)
    assert upstream.requests == [] and sink.pairs == []
    assert outcome(mirror, "m", "skipped_sampled") == 3


async def test_a_hanging_shadow_holds_at_most_max_concurrency_calls_and_skips_the_rest(
        shadow_upstream: tuple[OpenAIUpstream, str], shadow_backend: Backend) -> None:
    upstream, url = shadow_upstream
    registry = deployments(url, shadow_model="fault/slow_headers:60", shadow_max_concurrency=2)
    mirror, sink = mirror_for(registry, shadow_backend, timeout_s=120)
    contexts = [primary(f"req-{index}", shadow_backend) for index in range(7)]
    for ctx, request in contexts:
        mirror.start(ctx, request)
    assert mirror.in_flight("m") == 2
    assert outcome(mirror, "m", "sent") == 2 and outcome(mirror, "m", "skipped_full") == 5
    assert mirror.metrics.in_flight.labels("m")._value.get() == 2  # type: ignore[attr-defined]
    for ctx, _ in contexts:
        finish_primary(mirror, ctx)
    await mirror.close(grace_s=0)  # shutdown cancels the hung calls: recorded as shadow errors
    assert len(upstream.requests) <= 2
    assert sorted(pair.request_id for pair in sink.pairs) == ["req-0", "req-1"]
    assert all(pair.shadow_error_type == "UpstreamError" and "cancelled" in (pair.shadow_error or "")
               for pair in sink.pairs)
    assert all(pair.primary_error_type is None and pair.similarity is None for pair in sink.pairs)
    assert mirror.in_flight("m") == 0 and outcome(mirror, "m", "error") == 2


async def test_a_slot_freed_by_a_finished_shadow_call_is_used_again(
        shadow_upstream: tuple[OpenAIUpstream, str], shadow_backend: Backend) -> None:
    upstream, url = shadow_upstream
    mirror, sink = mirror_for(deployments(url, shadow_max_concurrency=1), shadow_backend)
    for index in range(3):
        ctx, request = primary(f"req-{index}", shadow_backend)
        mirror.start(ctx, request)
        finish_primary(mirror, ctx)
        await mirror.close(grace_s=10)  # waits for the call in flight
    assert outcome(mirror, "m", "sent") == 3 and outcome(mirror, "m", "skipped_full") == 0
    assert len(sink.pairs) == 3 and len(upstream.requests) == 3


@pytest.mark.parametrize(("shadow_model", "error_type", "status"), [
    ("fault/http_500", "UpstreamUnavailable", 502),
    ("fault/slow_headers:5", "UpstreamTimeout", 504),
])
async def test_shadow_failures_become_pairs_with_the_shadow_error(
        shadow_upstream: tuple[OpenAIUpstream, str], shadow_backend: Backend, shadow_model: str, error_type: str,
        status: int) -> None:
    _, url = shadow_upstream
    mirror, sink = mirror_for(deployments(url, shadow_model=shadow_model), shadow_backend, timeout_s=0.2)
    ctx, request = primary("req-bad", shadow_backend)
    mirror.start(ctx, request)
    finish_primary(mirror, ctx)
    await mirror.close(grace_s=10)
    (pair,) = sink.pairs
    assert (pair.shadow_error_type, pair.shadow_status) == (error_type, status)
    assert pair.primary_error_type is None and pair.primary_body == "one two three"
    assert pair.exact_match is None and pair.shadow_prompt_tokens is None
    assert outcome(mirror, "m", "error") == 1


async def test_an_unreachable_shadow_is_recorded_as_unavailable(shadow_backend: Backend) -> None:
    from tests.support.servers import free_port

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    config = parse_config({"backends": {"shadow-up": {"type": "openai", "base_url": dead + "/v1"}}})
    refused = build_backend("shadow-up", config.backends["shadow-up"])
    await refused.start()
    try:
        mirror, sink = mirror_for(deployments(dead), refused)
        ctx, request = primary("req-down", shadow_backend)
        mirror.start(ctx, request)
        finish_primary(mirror, ctx)
        await mirror.close(grace_s=10)
    finally:
        await refused.close()
    (pair,) = sink.pairs
    assert pair.shadow_error_type == "UpstreamUnavailable" and pair.primary_error_type is None


async def test_a_failed_primary_is_paired_with_its_error(
        shadow_upstream: tuple[OpenAIUpstream, str], shadow_backend: Backend) -> None:
    from sluice.errors import UpstreamUnavailable

    _, url = shadow_upstream
    mirror, sink = mirror_for(deployments(url), shadow_backend)
    ctx, request = primary("req-primary-down", shadow_backend)
    mirror.start(ctx, request)
    ctx.fail(UpstreamUnavailable("upstream returned 500: boom"))
    mirror.primary_done(ctx, ctx.finish(keep_bodies=True))
    await mirror.close(grace_s=10)
    (pair,) = sink.pairs
    assert pair.primary_error_type == "UpstreamUnavailable" and pair.primary_status == 502
    assert pair.shadow_error_type is None and pair.shadow_body == "one two three"
    assert pair.similarity is None


async def test_shadow_cost_is_quoted_by_the_pricing_stage_at_the_shadow_targets_price(
        shadow_upstream: tuple[OpenAIUpstream, str], shadow_backend: Backend) -> None:
    from sluice.cost import build_pricing

    _, url = shadow_upstream
    priced = parse_config({
        "backends": {"shadow-up": {"type": "openai", "base_url": url + "/v1"}},
        "pricing": {"targets": {"shadow-up:big-model": {"input_usd_per_1m": 1.0, "output_usd_per_1m": 2.0}}},
    })
    pricing = build_pricing(priced, CollectorRegistry())
    mirror, sink = mirror_for(deployments(url), shadow_backend, pricing=pricing)
    ctx, request = primary("req-cost", shadow_backend)
    mirror.start(ctx, request)
    finish_primary(mirror, ctx)
    await mirror.close(grace_s=10)
    (pair,) = sink.pairs
    assert (pair.shadow_prompt_tokens, pair.shadow_completion_tokens) == (3, 3)
    assert pair.shadow_cost_usd == pytest.approx((3 * 1.0 + 3 * 2.0) / 1e6)


async def test_a_failing_pair_sink_is_contained_and_counted(
        shadow_upstream: tuple[OpenAIUpstream, str], shadow_backend: Backend) -> None:
    class BrokenSink:
        def submit(self, pair: ShadowPair) -> None:
            raise RuntimeError("the writer is broken")

    _, url = shadow_upstream
    mirror = ShadowMirror(deployments(url), {"shadow-up": shadow_backend}, ShadowMetrics(CollectorRegistry()),
                          sink=BrokenSink())
    ctx, request = primary("req-sink", shadow_backend)
    mirror.start(ctx, request)  # neither call raises into the request path
    finish_primary(mirror, ctx)
    await mirror.close(grace_s=10)
    assert outcome(mirror, "m", "sent") == 1 and outcome(mirror, "m", "error") == 1
    assert mirror.in_flight("m") == 0


async def test_a_shadow_backend_missing_from_the_gateway_is_an_error_not_a_failure(
        shadow_upstream: tuple[OpenAIUpstream, str], shadow_backend: Backend) -> None:
    _, url = shadow_upstream
    mirror = ShadowMirror(deployments(url), {}, ShadowMetrics(CollectorRegistry()), sink=PairList())
    for index in range(2):
        ctx, request = primary(f"req-{index}", shadow_backend)
        mirror.start(ctx, request)
        finish_primary(mirror, ctx)
    await mirror.close(grace_s=10)
    assert outcome(mirror, "m", "error") == 2 and outcome(mirror, "m", "sent") == 0
