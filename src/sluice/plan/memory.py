"""VRAM per GPU the way vLLM budgets it: weights, profiled activation peak, non-torch memory, then KV cache.

vLLM V1 (gpu_worker.determine_available_memory) gives the KV cache
    total_gpu_memory × gpu_memory_utilization − weights − peak_activation − non_torch_memory
and refuses to start unless one `max_model_len` sequence fits in it. This module reproduces each term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from sluice.catalog import GPU, ModelArch
from sluice.plan.deployment import GIB, Deployment, make_deployment
from sluice.plan.errors import PlanError
from sluice.plan.quantization import Quantization, get_quantization

# vLLM profiles memory with a dummy forward over max_num_batched_tokens tokens followed by a dummy sampler
# run over max_num_seqs rows of fp32 logits. Fitted to the peaks logged on an H100 with vLLM V1 defaults
# (8192 tokens, 1024 seqs) by llm-d/llm-d-benchmark empirical-vllm-memory-results.md (2025): Qwen3-0.6B
# 5.56 GiB and Qwen3-32B 5.64 GiB; checked against Llama-3.1-8B 4.76 GiB, Llama-3.3-70B-FP8 TP=2 4.84 GiB
# and vLLM PR #10511's V0 Llama-3-8B (256 seqs) 1.26 GiB — all within 0.05 GiB (docs/planner.md).
SAMPLER_LOGIT_COPIES = 9.56  # fp32 [max_num_seqs, vocab] buffers alive at the sampler's peak
HIDDEN_STATE_COPIES = 1.28  # [max_num_batched_tokens, hidden] activations alive at the same time
ACTIVATION_BYTES = 2  # BF16/FP16 activations
# Memory outside PyTorch's allocator (CUDA context, cuBLAS workspaces): 0.13-0.14 GiB at TP=1 and
# 0.54-0.55 GiB at TP=2 (NCCL and custom all-reduce buffers) in the same llm-d logs.
NON_TORCH_BYTES = 0.13 * GIB
COLLECTIVE_BUFFER_BYTES = 0.42 * GIB
# vLLM captures CUDA graphs after sizing the KV cache, outside the budget: -0.45 to +1.03 GiB in the llm-d
# logs. Less free headroom than this draws a warning.
CUDA_GRAPH_HEADROOM_BYTES = 1.0 * GIB
MAX_GPUS_SEARCHED = 64


@dataclass(slots=True, frozen=True)
class StageMemory:
    """One pipeline stage, per GPU (every tensor-parallel rank of a stage holds the same amounts)."""

    layers: int
    weights_bytes: float
    activation_bytes: float
    non_torch_bytes: float
    kv_cache_bytes: float
    kv_bytes_per_token: float
    kv_capacity_tokens: int


@dataclass(slots=True, frozen=True)
class MemoryPlan:
    """Whether a deployment starts, and how many KV tokens and concurrent sequences it then holds."""

    deployment: Deployment
    total_gpu_bytes: float
    budget_bytes: float
    total_weight_bytes: float
    stages: tuple[StageMemory, ...]
    problems: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def binding(self) -> StageMemory:
        """The stage with the least KV room: it sets the deployment's capacity."""
        return min(self.stages, key=lambda stage: stage.kv_capacity_tokens)

    @property
    def kv_capacity_tokens(self) -> int:
        return self.binding.kv_capacity_tokens

    @property
    def max_concurrency(self) -> float:
        """vLLM's "Maximum concurrency for max_model_len tokens per request"."""
        return self.kv_capacity_tokens / self.deployment.max_model_len

    @property
    def fits(self) -> bool:
        return not self.problems


def layer_output_channels(model: ModelArch) -> int:
    """Output rows of one layer's projections (one fp32 scale each for per-channel FP8/INT8)."""
    per_expert = 2 * model.intermediate_size + model.hidden_size
    return model.q_dim + 2 * model.kv_dim + model.hidden_size + model.experts * per_expert


def layer_weight_bytes(model: ModelArch, quant: Quantization) -> float:
    linear = model.layer_linear_params * quant.linear_weight_bits / 8
    scales = quant.per_channel_scale_bytes * layer_output_channels(model)
    return linear + scales + (model.router_params_per_layer + model.norm_params_per_layer) * 2


def embedding_bytes(model: ModelArch, quant: Quantization) -> float:
    """Token embedding (and, separately, an untied output head of the same size)."""
    bits = quant.linear_weight_bits if quant.quantizes_embeddings else 16
    return model.embedding_params * bits / 8


def rotary_cache_bytes(model: ModelArch) -> float:
    """vLLM's cos/sin cache: max_position_embeddings × head_dim in BF16, on every GPU (32 MiB for Llama-3.1)."""
    return model.max_context * model.head_dim * ACTIVATION_BYTES


def total_weight_bytes(model: ModelArch, quantization: str | Quantization | None = None) -> float:
    """Weights of the whole model in bytes (all GPUs together), as loaded by vLLM."""
    quant = quantization if isinstance(quantization, Quantization) else get_quantization(quantization)
    heads = 1 if model.tie_word_embeddings else 2
    return (model.layers * layer_weight_bytes(model, quant) + heads * embedding_bytes(model, quant)
            + model.hidden_size * 2 + rotary_cache_bytes(model))


def kv_bytes_per_token(model: ModelArch, kv_bytes_per_element: int = 2) -> float:
    """Whole-model KV bytes per token: 2 × layers × kv_heads × head_dim × bytes."""
    return model.kv_bytes_per_token(kv_bytes_per_element)


def activation_peak_bytes(deployment: Deployment, *, runs_sampler: bool = True) -> float:
    """The profiler's peak: kept hidden states plus the larger of the sampler run and the MLP temporaries."""
    model, tp = deployment.model, deployment.tensor_parallel_size
    tokens = deployment.max_num_batched_tokens
    hidden = HIDDEN_STATE_COPIES * tokens * model.hidden_size * ACTIVATION_BYTES
    sampler = SAMPLER_LOGIT_COPIES * deployment.max_num_seqs * model.vocab_size * 4 if runs_sampler else 0.0
    # gate_up output (2 × intermediate) and the activated product (1 ×) for each routed expert slot
    mlp = tokens * model.experts_per_token * 3 * model.intermediate_size / tp * ACTIVATION_BYTES
    return hidden + max(sampler, mlp)


def non_torch_bytes(deployment: Deployment) -> float:
    return NON_TORCH_BYTES + (COLLECTIVE_BUFFER_BYTES if deployment.num_gpus > 1 else 0.0)


def plan_memory(deployment: Deployment) -> MemoryPlan:
    """Per-GPU memory for every pipeline stage, the KV capacity, and why it does not start if it does not."""
    model, quant, tp = deployment.model, deployment.quantization, deployment.tensor_parallel_size
    total = float(deployment.gpu.usable_memory_bytes)
    budget = total * deployment.gpu_memory_utilization
    layer_bytes = layer_weight_bytes(model, quant)
    embed = embedding_bytes(model, quant)
    layer_counts = deployment.stage_layers()
    stages = []
    for index, layers in enumerate(layer_counts):
        first, last = index == 0, index == len(layer_counts) - 1
        holds_head = last and (not model.tie_word_embeddings or not first)  # a tied head needs a copy off stage 0
        weights = (layers * layer_bytes + (embed if first else 0) + (embed if holds_head else 0)) / tp
        weights += rotary_cache_bytes(model) + (model.hidden_size * 2 if last else 0)
        activation = activation_peak_bytes(deployment, runs_sampler=last)
        other = non_torch_bytes(deployment)
        kv_room = budget - weights - activation - other
        per_token = 2 * layers * deployment.kv_heads_per_gpu * model.head_dim * deployment.kv_bytes_per_element
        blocks = max(0, math.floor(kv_room / (per_token * deployment.block_size)))
        stages.append(StageMemory(layers, weights, activation, other, kv_room, per_token,
                                  blocks * deployment.block_size))
    plan = MemoryPlan(deployment, total, budget, total_weight_bytes(model, quant), tuple(stages), (), ())
    return replace(plan, problems=_problems(plan), warnings=_warnings(plan))


def _problems(plan: MemoryPlan) -> tuple[str, ...]:
    stage, deployment = plan.binding, plan.deployment
    if stage.kv_cache_bytes <= 0:
        used = stage.weights_bytes + stage.activation_bytes + stage.non_torch_bytes
        return (f"no memory left for the KV cache: weights {stage.weights_bytes / GIB:.2f} GiB + activations "
                f"{stage.activation_bytes / GIB:.2f} GiB + non-torch {stage.non_torch_bytes / GIB:.2f} GiB = "
                f"{used / GIB:.2f} GiB per GPU, budget {plan.budget_bytes / GIB:.2f} GiB "
                f"({deployment.gpu_memory_utilization:g} × {plan.total_gpu_bytes / GIB:.2f} GiB)",)
    if stage.kv_capacity_tokens < deployment.max_model_len:
        needed = deployment.max_model_len * stage.kv_bytes_per_token
        return (f"one max-model-len sequence ({deployment.max_model_len} tokens) needs {needed / GIB:.2f} GiB of KV "
                f"cache per GPU, more than the {stage.kv_cache_bytes / GIB:.2f} GiB available "
                f"(at most {stage.kv_capacity_tokens} tokens)",)
    return ()


def _warnings(plan: MemoryPlan) -> tuple[str, ...]:
    notes = []
    if plan.total_gpu_bytes - plan.budget_bytes < CUDA_GRAPH_HEADROOM_BYTES:
        notes.append("less than 1 GiB outside gpu-memory-utilization: vLLM's CUDA graphs (captured after the KV "
                     "cache is allocated) may run out of memory; lower it or pass --enforce-eager")
    if plan.deployment.num_gpus > plan.deployment.gpu.max_gpus_per_node:
        notes.append(f"{plan.deployment.num_nodes} nodes: pipeline stages talk over the inter-node network")
    return tuple(notes)


def weights_min_gpus(model: ModelArch, gpu: GPU, quantization: str | Quantization | None = None) -> int:
    """GPUs needed just to hold the weights (ignores activations and KV cache: a lower bound)."""
    return math.ceil(total_weight_bytes(model, quantization) / gpu.usable_memory_bytes)


def parallel_candidates(model: ModelArch, gpu: GPU, max_gpus: int = MAX_GPUS_SEARCHED) -> list[tuple[int, int]]:
    """(TP, PP) pairs to try, fewest GPUs first: TP inside one node, then whole-node TP × PP across nodes.

    This is the usual vLLM layout (tensor parallel over NVLink/PCIe inside a node, pipeline parallel over
    the network); TP must divide the attention heads and divide or be a multiple of the KV heads.
    """
    tps = [tp for tp in (1, 2, 4, 8, 16) if tp <= min(gpu.max_gpus_per_node, max_gpus) and not model.heads % tp
           and (not model.kv_heads % tp or not tp % model.kv_heads)]
    node_tp = max(tps)
    stages = range(2, min(model.layers, max_gpus // node_tp) + 1)
    return [(tp, 1) for tp in tps] + [(node_tp, pp) for pp in stages]


def min_parallelism(model: ModelArch, gpu: GPU, *, max_gpus: int = MAX_GPUS_SEARCHED,
                    **flags: object) -> MemoryPlan | None:
    """The smallest deployment (fewest GPUs, then least pipeline parallelism) that starts; None if none does."""
    for tp, pp in parallel_candidates(model, gpu, max_gpus):
        try:
            deployment = make_deployment(model, gpu, tensor_parallel_size=tp, pipeline_parallel_size=pp,
                                         **flags)  # type: ignore[arg-type]
        except PlanError:
            continue
        plan = plan_memory(deployment)
        if plan.fits:
            return plan
    return None
