"""The simulator on the planner's cost model: vLLM's sizing and defaults, and step times taken from the planner."""

from __future__ import annotations

import pytest

from sluice.catalog import builtin_catalog
from sluice.plan import PlanError, make_deployment, plan_memory, step_time_s
from sluice.plan.throughput import REQUEST_OVERHEAD_S
from sluice.sim import EngineRequest, VirtualClock, build_simulator, planner_cost, simulate
from tests.sim.support import completion_call


def test_the_kv_cache_and_limits_are_the_planners_vllm_sizing() -> None:
    cost, config = planner_cost("llama-3.1-8b", "h100-sxm", max_model_len=8192)
    catalog = builtin_catalog()
    deployment = make_deployment(catalog.model("llama-3.1-8b"), catalog.gpu("h100-sxm"), max_model_len=8192)
    assert cost.kv_blocks_total == plan_memory(deployment).kv_capacity_tokens // 16
    assert (config.max_num_seqs, config.max_num_batched_tokens, config.max_model_len) == (1024, 8192, 8192)
    assert cost.max_model_len == 8192


def test_each_step_costs_what_the_planner_says() -> None:
    cost, config = planner_cost("llama-3.1-8b", "h100-sxm", max_model_len=8192)
    timing = simulate(cost, [EngineRequest("a", prompt_tokens=1000, output_tokens=3)], config).timing("a")
    deployment = cost.deployment
    assert timing.ttft_s == step_time_s(deployment, 1000, 0, 0, prefill_attention_pairs=1000**2 / 2)
    assert timing.itl_s[0] == pytest.approx(step_time_s(deployment, 0, 1, 1001, prefill_attention_pairs=0), rel=1e-12)
    assert 0.004 < timing.itl_s[0] < 0.02  # an 8B BF16 model decodes one sequence in milliseconds on an H100


def test_fp8_weights_decode_faster_than_bf16() -> None:
    def tpot(quantization: str | None) -> float:
        cost, config = planner_cost("llama-3.1-8b", "h100-sxm", quantization=quantization, max_model_len=4096)
        return simulate(cost, [EngineRequest("a", 100, 20)], config).timing("a").tpot_s

    assert tpot("fp8") < 0.75 * tpot(None)


def test_deployments_vllm_would_refuse_are_refused() -> None:
    with pytest.raises(PlanError):
        planner_cost("llama-3.1-70b", "l4")
    with pytest.raises(ValueError, match="unknown GPU"):
        planner_cost("llama-3.1-8b", "h1000")


def test_build_simulator_names_the_model_and_describes_the_deployment() -> None:
    sim = build_simulator("llama-3.1-8b", "h100-sxm", tensor_parallel_size=2, max_model_len=4096)
    assert sim.model_name == "llama-3.1-8b" and sim.max_model_len == 4096
    assert "2x h100-sxm" in sim.description and "TP=2" in sim.description
    assert sim.text.model  # the family's tokenizer (Llama 3) counts its tokens


async def test_ttft_includes_the_planners_request_overhead() -> None:
    sim = build_simulator("llama-3.1-8b", "h100-sxm", max_model_len=4096, clock=VirtualClock())
    await sim.start()
    try:
        call = completion_call(" ".join(["word"] * 100), max_tokens=2)
        admission = sim.admit(call)
        times = [sim.clock.now() async for chunk in sim.run(admission) if chunk.has_output]
    finally:
        await sim.stop()
    deployment = sim.core.cost.deployment  # type: ignore[attr-defined]
    prefill = step_time_s(deployment, 100, 0, 0, prefill_attention_pairs=100**2 / 2)
    assert times[0] - admission.arrival_s == pytest.approx(REQUEST_OVERHEAD_S + prefill, rel=1e-9)
