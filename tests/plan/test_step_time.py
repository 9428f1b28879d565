"""The step-time cost model the simulator will call: calibration points and the shape of the roofline."""

from __future__ import annotations

import itertools

import pytest

from sluice.catalog import builtin_catalog
from sluice.plan import Deployment, make_deployment, step_breakdown, step_time_s

CATALOG = builtin_catalog()


def deployment(model: str = "llama-3.1-8b", gpu: str = "h100-sxm", **flags: object) -> Deployment:
    flags.setdefault("max_model_len", 8192)
    return make_deployment(CATALOG.model(model), CATALOG.gpu(gpu), **flags)  # type: ignore[arg-type]


def test_an_empty_step_takes_no_time() -> None:
    assert step_time_s(deployment(), 0, 0, 0) == 0.0


def test_calibration_a100_llama_8b_decodes_about_75_tokens_per_second_alone() -> None:
    """johnmusgrave.com, "vLLM throughput-latency sweep on NVIDIA A100" (vLLM 0.23, A100 40GB, Llama-3.1-8B BF16,
    1024-token prompts): ~75 tokens/s at one request, "roughly 77% of the memory-bandwidth ceiling"."""
    tpot = step_time_s(deployment(gpu="a100-40gb-sxm"), 0, 1, 1088)
    assert 1 / tpot == pytest.approx(75, rel=0.03)


def test_calibration_h100_qwen3_0_6b_tpot() -> None:
    """ovg-project/kvcached H100_results.md (vLLM 0.19, Qwen3-0.6B, 512 in / 128 out at 16 req/s): TPOT 2.39 ms,
    about 5.5 sequences running at a mean context of 576 tokens."""
    tpot = step_time_s(deployment("qwen3-0.6b"), 0, 6, int(5.5 * 576))
    assert tpot == pytest.approx(2.39e-3, rel=0.05)


def test_decode_at_small_batch_is_memory_bound_and_a_long_prefill_is_compute_bound() -> None:
    llama = deployment()
    assert step_breakdown(llama, 0, 1, 1000).bound == "memory"
    assert step_breakdown(llama, 8192, 0, 0).bound == "compute"


def test_tpot_rises_with_batch_size() -> None:
    llama = deployment()
    steps = [step_time_s(llama, 0, batch, batch * 1088) for batch in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)]
    assert steps == sorted(steps) and steps[-1] > 2 * steps[0]


def test_decode_throughput_rises_then_saturates() -> None:
    llama = deployment()
    batches = [2**power for power in range(11)]
    rates = [batch / step_time_s(llama, 0, batch, batch * 1088) for batch in batches]
    assert rates == sorted(rates)
    gains = [later / earlier for earlier, later in itertools.pairwise(rates)]
    assert gains[0] > 1.9  # doubling a tiny batch nearly doubles throughput
    assert gains[-1] < 1.3  # doubling a huge one barely helps: KV reads and FLOPs dominate


def test_prefill_time_scales_with_compute() -> None:
    llama = deployment()
    short, long = step_time_s(llama, 2048, 0, 0), step_time_s(llama, 8192, 0, 0)
    assert 3.5 < long / short < 5  # 4× the tokens, a little more for attention's quadratic term
    h100, a100 = step_time_s(llama, 8192, 0, 0), step_time_s(deployment(gpu="a100-80gb-sxm"), 8192, 0, 0)
    assert a100 / h100 == pytest.approx(989.4 / 312, rel=0.1)


def test_quantised_weights_speed_up_memory_bound_decode() -> None:
    bf16 = step_time_s(deployment(), 0, 1, 1000)
    awq = step_time_s(deployment(quantization="awq"), 0, 1, 1000)
    fp8 = step_time_s(deployment(quantization="fp8"), 0, 1, 1000)
    assert awq < fp8 < bf16


def test_fp8_kv_cache_speeds_up_long_context_decode() -> None:
    auto = step_time_s(deployment(), 0, 64, 64 * 8000)
    fp8 = step_time_s(deployment(kv_cache_dtype="fp8"), 0, 64, 64 * 8000)
    assert fp8 < 0.8 * auto


def test_tensor_parallelism_speeds_up_a_70b_decode_but_adds_communication() -> None:
    tp2 = step_breakdown(deployment("llama-3.1-70b", tensor_parallel_size=2), 0, 8, 8 * 2000)
    tp8 = step_breakdown(deployment("llama-3.1-70b", tensor_parallel_size=8), 0, 8, 8 * 2000)
    assert tp8.total_s < tp2.total_s
    assert tp8.communication_s > tp2.communication_s > 0


def test_moe_decode_at_batch_one_reads_only_the_routed_experts() -> None:
    mixtral = deployment("mixtral-8x7b", tensor_parallel_size=2)
    one, many = step_breakdown(mixtral, 0, 1, 1000), step_breakdown(mixtral, 0, 64, 64 * 1000)
    # one token touches 2 of 8 experts per layer; 64 tokens touch nearly all of them
    assert many.memory_s > 2.5 * one.memory_s


def test_prefill_attention_pairs_can_be_passed_for_chunked_prompts() -> None:
    llama = deployment()
    fresh = step_time_s(llama, 2048, 0, 0)
    late_chunk = step_time_s(llama, 2048, 0, 6144, prefill_attention_pairs=2048 * (6144 + 1024))
    assert late_chunk > fresh
