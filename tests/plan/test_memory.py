"""VRAM: the seed's examples, vLLM's own memory accounting reproduced, and properties that must always hold."""

from __future__ import annotations

import pytest

from sluice.catalog import builtin_catalog
from sluice.plan import (
    QUANTIZATIONS,
    PlanError,
    make_deployment,
    min_parallelism,
    plan_memory,
    total_weight_bytes,
    vllm_serve_defaults,
    weights_min_gpus,
)
from sluice.plan.deployment import GIB

CATALOG = builtin_catalog()
H100 = CATALOG.gpu("h100-sxm")


def test_seed_llama_3_8b_bf16_weights_are_about_16_gb() -> None:
    weights = total_weight_bytes(CATALOG.model("llama-3-8b"), "bf16")
    assert weights / 1e9 == pytest.approx(16.06, abs=0.02)  # decimal GB, as the seed says "≈ 16 GB"
    assert weights / GIB == pytest.approx(14.96, abs=0.01)  # what vLLM logs: "model weights take 14.96GiB"


def test_seed_llama_3_70b_bf16_is_about_140_gb_and_needs_two_80_gb_gpus() -> None:
    model = CATALOG.model("llama-3-70b")
    assert total_weight_bytes(model) / 1e9 == pytest.approx(141.1, abs=0.5)
    assert weights_min_gpus(model, H100) == 2
    assert not plan_memory(make_deployment(model, H100, max_model_len=8192)).fits
    # it starts on two GPUs once the sampler's profiling reserve is the classic 256 sequences ...
    assert plan_memory(make_deployment(model, H100, tensor_parallel_size=2, max_model_len=8192,
                                       max_num_seqs=256)).fits
    # ... while vLLM's H100 default of 1024 sequences leaves too little KV cache for one 8K sequence
    assert not plan_memory(make_deployment(model, H100, tensor_parallel_size=2, max_model_len=8192)).fits


def test_seed_llama_3_1_405b_bf16_is_about_810_gb_and_needs_more_than_one_h100_node() -> None:
    model = CATALOG.model("llama-3.1-405b")
    assert total_weight_bytes(model) / 1e9 == pytest.approx(811.7, abs=1)
    one_node = make_deployment(model, H100, tensor_parallel_size=8, max_model_len=8192)
    assert not plan_memory(one_node).fits
    smallest = min_parallelism(model, H100, max_model_len=8192)
    assert smallest is not None and smallest.deployment.num_nodes == 2
    assert (smallest.deployment.tensor_parallel_size, smallest.deployment.pipeline_parallel_size) == (8, 2)
    # in FP8 it fits on one node
    assert plan_memory(make_deployment(model, H100, tensor_parallel_size=8, quantization="fp8",
                                       max_model_len=8192)).fits


def test_seed_llama_3_8b_kv_at_8k_is_one_gib_per_sequence_so_8_gb_is_about_eight_sequences() -> None:
    per_token = CATALOG.model("llama-3-8b").kv_bytes_per_token(2)
    assert per_token == 2 * 32 * 8 * 128 * 2 == 131072
    sequence = per_token * 8192
    assert sequence == GIB
    assert 8e9 / sequence == pytest.approx(7.45, abs=0.01)  # "8 GB" holds about eight 8K sequences


def test_vllm_h100_llama_3_1_8b_memory_profile_is_reproduced() -> None:
    """vLLM V1, one H100 (79.18 GiB), util 0.9, Llama-3.1-8B: weights 14.99 GiB, peak activation 4.76 GiB,
    non-torch 0.13 GiB, KV cache 51.38 GiB (llm-d empirical-vllm-memory-results.md; the issue's number)."""
    plan = plan_memory(make_deployment(CATALOG.model("llama-3.1-8b"), H100, max_model_len=16000))
    stage = plan.binding
    assert plan.budget_bytes / GIB == pytest.approx(71.26, abs=0.01)
    assert stage.weights_bytes / GIB == pytest.approx(14.99, abs=0.01)
    assert stage.activation_bytes / GIB == pytest.approx(4.76, abs=0.05)
    assert stage.non_torch_bytes / GIB == pytest.approx(0.13, abs=0.01)
    assert stage.kv_cache_bytes / GIB == pytest.approx(51.38, abs=0.05)


@pytest.mark.parametrize(("model", "quantization", "tp", "weights_gib", "kv_gib"), [
    ("qwen3-0.6b", "bf16", 1, 1.12, 64.45),
    ("qwen3-32b", "bf16", 1, 61.03, 4.45),
    ("qwen3-32b", "bf16", 2, 30.59, 34.49),
    ("llama-3.3-70b", "fp8", 2, 33.88, 32.00),
])
def test_other_vllm_h100_memory_profiles_are_reproduced(model: str, quantization: str, tp: int, weights_gib: float,
                                                        kv_gib: float) -> None:
    plan = plan_memory(make_deployment(CATALOG.model(model), H100, tensor_parallel_size=tp,
                                       quantization=quantization, max_model_len=16000))
    assert plan.binding.weights_bytes / GIB == pytest.approx(weights_gib, abs=0.1)
    assert plan.binding.kv_cache_bytes / GIB == pytest.approx(kv_gib, abs=0.1)


def test_llama_3_3_70b_fp8_on_one_h100_fails_like_vllm_did() -> None:
    plan = plan_memory(make_deployment(CATALOG.model("llama-3.3-70b"), H100, quantization="fp8",
                                       max_model_len=16000))
    assert not plan.fits
    assert plan.binding.kv_cache_bytes / GIB == pytest.approx(-1.44, abs=0.05)
    assert "no memory left for the KV cache" in plan.problems[0]


def test_v0_style_profile_with_256_sequences_matches_vllm_pr_10511() -> None:
    """vLLM PR #10511 (V0, H100): Llama-3-8B, 8192 batched tokens, 256 seqs: activation peak 1.26 GiB."""
    plan = plan_memory(make_deployment(CATALOG.model("llama-3-8b"), H100, max_num_seqs=256,
                                       max_num_batched_tokens=8192))
    assert plan.binding.activation_bytes / GIB == pytest.approx(1.26, abs=0.05)


def test_vllm_serve_defaults_depend_on_the_gpu() -> None:
    assert vllm_serve_defaults(H100) == (8192, 1024)
    assert vllm_serve_defaults(CATALOG.gpu("a100-80gb-sxm")) == (2048, 256)  # vLLM excludes A100 by name
    assert vllm_serve_defaults(CATALOG.gpu("l4")) == (2048, 256)


@pytest.mark.parametrize("model", ["llama-3.1-8b", "llama-3-70b", "qwen2.5-7b", "mixtral-8x7b", "gemma-2-27b"])
def test_more_gpus_never_lower_kv_capacity(model: str) -> None:
    arch = CATALOG.model(model)
    capacities = []
    for tp in (1, 2, 4, 8):
        try:
            deployment = make_deployment(arch, H100, tensor_parallel_size=tp, max_model_len=4096)
        except PlanError:
            continue  # TP must divide the heads
        capacities.append(plan_memory(deployment).kv_capacity_tokens)
    assert len(capacities) >= 3
    assert capacities == sorted(capacities)


@pytest.mark.parametrize("model", ["llama-3.1-8b", "mixtral-8x7b", "gemma-2-9b", "qwen2.5-72b"])
def test_fewer_bits_never_mean_more_weight_bytes(model: str) -> None:
    arch = CATALOG.model(model)
    schemes = list(QUANTIZATIONS.values())
    for low in schemes:
        for high in schemes:
            same_embeddings = low.quantizes_embeddings == high.quantizes_embeddings
            if low.linear_weight_bits <= high.linear_weight_bits and same_embeddings:
                assert total_weight_bytes(arch, low) <= total_weight_bytes(arch, high), (low.id, high.id)
    assert total_weight_bytes(arch, "awq") < total_weight_bytes(arch, "fp8") < total_weight_bytes(arch, "bf16")
    assert total_weight_bytes(arch, "gguf-q4_k_m") < total_weight_bytes(arch, "gguf-q8_0")


def test_int4_group_scales_cost_about_a_sixth_of_a_bit() -> None:
    llama = CATALOG.model("llama-3.1-8b")
    linear = llama.layers * llama.layer_linear_params  # only these are quantised; embeddings stay 16-bit
    saved_bits = (total_weight_bytes(llama, "bf16") - total_weight_bytes(llama, "awq")) * 8 / linear
    assert 16 - saved_bits == pytest.approx(4 + (16 + 4) / 128)  # fp16 scale + 4-bit zero per 128 weights


def test_fp8_kv_cache_doubles_kv_capacity() -> None:
    llama = CATALOG.model("llama-3.1-8b")
    auto = plan_memory(make_deployment(llama, H100, max_model_len=8192)).kv_capacity_tokens
    fp8 = plan_memory(make_deployment(llama, H100, max_model_len=8192, kv_cache_dtype="fp8")).kv_capacity_tokens
    assert fp8 == pytest.approx(2 * auto, rel=0.001)


def test_higher_memory_utilization_gives_more_kv_cache() -> None:
    llama = CATALOG.model("llama-3.1-8b")
    low = plan_memory(make_deployment(llama, H100, gpu_memory_utilization=0.8)).kv_capacity_tokens
    high = plan_memory(make_deployment(llama, H100, gpu_memory_utilization=0.95)).kv_capacity_tokens
    assert high > low
    assert any("CUDA graphs" in note for note in
               plan_memory(make_deployment(llama, H100, gpu_memory_utilization=0.995)).warnings)


def test_kv_capacity_is_counted_in_whole_blocks_and_concurrency_like_vllm_logs_it() -> None:
    plan = plan_memory(make_deployment(CATALOG.model("llama-3.1-8b"), H100, max_model_len=32768))
    assert plan.kv_capacity_tokens % 16 == 0
    assert plan.max_concurrency == pytest.approx(plan.kv_capacity_tokens / 32768)


def test_pipeline_stages_split_layers_like_vllm() -> None:
    deployment = make_deployment(CATALOG.model("llama-3.1-405b"), H100, tensor_parallel_size=8,
                                 pipeline_parallel_size=4, max_model_len=8192)
    assert deployment.stage_layers() == (31, 32, 32, 31)
    plan = plan_memory(deployment)
    assert len(plan.stages) == 4 and plan.fits


def test_kv_heads_are_replicated_when_tp_exceeds_them() -> None:
    qwen = CATALOG.model("qwen2.5-0.5b")  # 2 KV heads
    deployment = make_deployment(qwen, H100, tensor_parallel_size=2)
    assert deployment.kv_heads_per_gpu == 1
    with pytest.raises(PlanError, match="divisible by tensor parallel size"):
        make_deployment(qwen, H100, tensor_parallel_size=4)  # 14 heads


def test_invalid_flags_are_plan_errors_with_vllm_wording() -> None:
    llama = CATALOG.model("llama-3.1-8b")
    with pytest.raises(PlanError, match=r"attention heads \(32\) must be divisible by tensor parallel size \(3\)"):
        make_deployment(llama, H100, tensor_parallel_size=3)
    with pytest.raises(PlanError, match="greater than the model's maximum context"):
        make_deployment(CATALOG.model("llama-3-8b"), H100, max_model_len=16384)
    with pytest.raises(PlanError, match="unknown quantization 'fp4'"):
        make_deployment(llama, H100, quantization="fp4")
    with pytest.raises(PlanError, match="unknown kv-cache-dtype"):
        make_deployment(llama, H100, kv_cache_dtype="int4")
