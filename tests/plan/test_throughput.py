"""Latency at a concurrency, batch sweeps and cost per million tokens."""

from __future__ import annotations

import pytest

from sluice.catalog import PriceMode, builtin_catalog
from sluice.plan import (
    MemoryPlan,
    PlanError,
    Workload,
    cost_by_mode,
    estimate_cost,
    estimate_latency,
    make_deployment,
    plan_memory,
    prefill_time_s,
    sweep_batch_sizes,
    usd_per_million_tokens,
)

CATALOG = builtin_catalog()


def plan(model: str = "llama-3.1-8b", gpu: str = "h100-sxm", **flags: object) -> MemoryPlan:
    flags.setdefault("max_model_len", 8192)
    return plan_memory(make_deployment(CATALOG.model(model), CATALOG.gpu(gpu), **flags))  # type: ignore[arg-type]


def test_one_request_alone_has_tpot_of_one_decode_step_and_ttft_of_one_prefill() -> None:
    memory = plan()
    latency = estimate_latency(memory.deployment, Workload(1024, 128, 1), memory.kv_capacity_tokens)
    assert latency.running == 1 and latency.queue_s == 0
    assert latency.tpot_s == pytest.approx(7.16e-3, rel=0.05)
    assert 0.04 < latency.ttft_s < 0.1
    assert latency.output_tokens_per_s == pytest.approx(128 / latency.e2e_s)


def test_a100_concurrency_8_gains_about_what_was_measured() -> None:
    """The same A100 sweep measured a 6.6× throughput gain from concurrency 1 to 8 (prefills interleaved)."""
    memory = plan(gpu="a100-40gb-sxm")
    one = estimate_latency(memory.deployment, Workload(1024, 128, 1), memory.kv_capacity_tokens)
    eight = estimate_latency(memory.deployment, Workload(1024, 128, 8), memory.kv_capacity_tokens)
    assert eight.output_tokens_per_s / one.output_tokens_per_s == pytest.approx(6.6, rel=0.15)


def test_throughput_and_tpot_grow_with_concurrency_then_throughput_saturates() -> None:
    memory = plan()
    estimates = [estimate_latency(memory.deployment, Workload(1024, 128, concurrency), memory.kv_capacity_tokens)
                 for concurrency in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)]
    rates = [estimate.output_tokens_per_s for estimate in estimates]
    tpots = [estimate.tpot_s for estimate in estimates]
    assert rates == sorted(rates) and tpots == sorted(tpots)
    assert rates[-1] / rates[-2] < 1.05  # beyond the KV cache, more clients only queue


def test_requests_beyond_the_kv_cache_queue_and_pay_for_it_in_ttft() -> None:
    memory = plan("llama-3.1-8b", "l4")
    workload = Workload(1024, 128, 64)
    latency = estimate_latency(memory.deployment, workload, memory.kv_capacity_tokens)
    assert latency.kv_limited and latency.running == memory.kv_capacity_tokens // 1152
    assert latency.queue_s > 1 and latency.ttft_s > latency.queue_s


def test_requests_longer_than_max_model_len_are_rejected() -> None:
    memory = plan(max_model_len=1024)
    with pytest.raises(PlanError, match="exceeds max-model-len"):
        estimate_latency(memory.deployment, Workload(1024, 128, 1), memory.kv_capacity_tokens)


def test_sweep_marks_batches_beyond_capacity() -> None:
    memory = plan("llama-3.1-8b", "l4")
    points = sweep_batch_sizes(memory.deployment, memory.kv_capacity_tokens, 1024, 128, [1, 8, 64, 256])
    assert [point.fits_in_kv for point in points] == [True, True, False, False]
    assert all(point.decode_tokens_per_s > 0 and point.prefill_s > 0 for point in points)


def test_prefill_of_a_batch_is_chunked_by_the_token_budget() -> None:
    deployment = plan().deployment
    assert prefill_time_s(deployment, 16, 1024) > 1.9 * prefill_time_s(deployment, 8, 1024)
    assert prefill_time_s(deployment, 1, 1024) < prefill_time_s(deployment, 1, 4096)


def test_cost_per_million_tokens_is_the_hourly_price_over_tokens_per_hour() -> None:
    assert usd_per_million_tokens(3.6, 1000) == pytest.approx(1.0)
    assert usd_per_million_tokens(1.0, 0) == float("inf")


def test_cost_uses_the_cheapest_offer_per_price_mode() -> None:
    deployment = plan().deployment
    on_demand = estimate_cost(deployment, 1000, PriceMode.ON_DEMAND)
    assert on_demand is not None and on_demand.provider == "lambda" and on_demand.usd_per_gpu_hour == 2.99
    by_mode = {cost.mode: cost for cost in cost_by_mode(deployment, 1000)}
    assert set(by_mode) == set(PriceMode)
    assert by_mode[PriceMode.SPOT].usd_per_million_output_tokens < on_demand.usd_per_million_output_tokens
    only_aws = estimate_cost(deployment, 1000, PriceMode.ON_DEMAND, provider="aws")
    assert only_aws is not None and only_aws.usd_per_gpu_hour == 12.29
    assert estimate_cost(deployment, 1000, PriceMode.SPOT, provider="lambda") is None  # Lambda sells no spot


def test_cost_scales_with_gpus_and_accepts_a_custom_price() -> None:
    deployment = plan("llama-3-70b", tensor_parallel_size=4).deployment
    custom = estimate_cost(deployment, 2000, usd_per_gpu_hour=2.0, replicas=2)
    assert custom is not None and custom.num_gpus == 8 and custom.usd_per_hour == 16.0
    assert custom.usd_per_million_output_tokens == pytest.approx(16 / (2000 * 3600) * 1e6)
