"""The cost model of one engine step: a roofline over weights, KV reads and FLOPs, plus communication.

One vLLM step runs a batch of prefill tokens (chunked prefill) and one token for each decoding sequence
through the whole model. Per GPU it must stream its share of the weights and of the KV cache from HBM and
do its share of the FLOPs; whichever takes longer sets the step (roofline), then tensor-parallel
all-reduces, pipeline hand-offs and a fixed per-step overhead are added. `step_time_s` is the function
the simulator calls; everything else in the planner is built on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sluice.plan.deployment import Deployment
from sluice.plan.memory import ACTIVATION_BYTES, embedding_bytes, layer_weight_bytes

# Fraction of datasheet HBM bandwidth that decode GEMVs and paged attention sustain, and the fixed cost of
# a step (scheduler, sampler, launch gaps), fitted together to two public measurements: Llama-3.1-8B BF16
# on an A100 40GB at one request, ~75 output tokens/s (vLLM 0.23, johnmusgrave.com "vLLM throughput-latency
# sweep on NVIDIA A100", 2026) and Qwen3-0.6B on an H100, TPOT 2.39 ms at 16 req/s (vLLM 0.19,
# ovg-project/kvcached benchmarks/bench_layout/H100_results.md, 2026). See docs/planner.md.
MEMORY_BANDWIDTH_EFFICIENCY = 0.85
STEP_OVERHEAD_S = 0.00184
# Fraction of dense datasheet TFLOPS that prefill GEMMs reach. Not fitted to a measurement here: 0.6 is
# the usual large-GEMM efficiency of cuBLAS on A100/H100; prefill-heavy predictions carry that uncertainty.
COMPUTE_EFFICIENCY = 0.6
# Small-message all-reduce latency per call (vLLM custom all-reduce on NVLink, NCCL elsewhere) and the
# inter-node link per GPU (400 Gb/s InfiniBand/EFA, e.g. AWS p5's 3200 Gbps for 8 GPUs). Estimates.
ALLREDUCE_LATENCY_S = {"nvlink": 8e-6, "infinity-fabric": 10e-6, "pcie": 25e-6}
INTER_NODE_BYTES_S = 50e9
INTER_NODE_LATENCY_S = 15e-6


@dataclass(slots=True, frozen=True)
class StepTime:
    """Where a step's time goes. Memory and compute overlap (roofline); the rest adds on."""

    memory_s: float
    compute_s: float
    communication_s: float
    overhead_s: float

    @property
    def total_s(self) -> float:
        return max(self.memory_s, self.compute_s) + self.communication_s + self.overhead_s

    @property
    def bound(self) -> str:
        return "compute" if self.compute_s > self.memory_s else "memory"


def step_time_s(deployment: Deployment, num_prefill_tokens: int, num_decode_seqs: int, total_context_tokens: int,
                *, prefill_attention_pairs: float | None = None) -> float:
    """Seconds for one engine step of `deployment`.

    num_prefill_tokens: prompt tokens computed this step (all prefill chunks together).
    num_decode_seqs: sequences generating one token this step.
    total_context_tokens: KV-cache tokens read by attention, summed over the batch's sequences (a decoding
        sequence's context length; a prefill chunk's earlier context).
    prefill_attention_pairs: query×key pairs inside the prefill chunks; defaults to one fresh prompt,
        num_prefill_tokens² / 2 (causal).
    """
    return step_breakdown(deployment, num_prefill_tokens, num_decode_seqs, total_context_tokens,
                          prefill_attention_pairs=prefill_attention_pairs).total_s


def step_breakdown(deployment: Deployment, num_prefill_tokens: int, num_decode_seqs: int, total_context_tokens: int,
                   *, prefill_attention_pairs: float | None = None) -> StepTime:
    """`step_time_s` with its parts: HBM time, compute time, communication and fixed overhead."""
    tokens = num_prefill_tokens + num_decode_seqs
    if tokens <= 0:
        return StepTime(0.0, 0.0, 0.0, 0.0)
    model, gpu, tp = deployment.model, deployment.gpu, deployment.tensor_parallel_size
    quant = deployment.quantization
    pairs = total_context_tokens + (num_prefill_tokens**2 / 2 if prefill_attention_pairs is None
                                    else prefill_attention_pairs)
    logit_rows = num_decode_seqs + (1 if num_prefill_tokens else 0)

    expert_bytes = model.experts * model.expert_params * quant.linear_weight_bits / 8
    shared_bytes = layer_weight_bytes(model, quant) - expert_bytes
    weight_bytes = (model.layers * (shared_bytes + expert_bytes * experts_touched(deployment, tokens))
                    + embedding_bytes(model, quant)) / tp
    kv_per_token = 2 * model.layers * deployment.kv_heads_per_gpu * model.head_dim * deployment.kv_bytes_per_element
    memory_s = (weight_bytes + total_context_tokens * kv_per_token) / (
        gpu.memory_bandwidth_bytes_s * MEMORY_BANDWIDTH_EFFICIENCY * quant.kernel_efficiency)

    active_linear = model.attention_params_per_layer + model.experts_per_token * model.expert_params
    flops = (2 * tokens * model.layers * active_linear + 2 * logit_rows * model.vocab_size * model.hidden_size
             + 4 * model.layers * model.q_dim * pairs) / tp
    compute_s = flops / (gpu.peak_flops(deployment.compute) * COMPUTE_EFFICIENCY * quant.kernel_efficiency)
    return StepTime(memory_s, compute_s, communication_s(deployment, tokens), STEP_OVERHEAD_S)


def experts_touched(deployment: Deployment, tokens: int) -> float:
    """Expected fraction of a layer's experts that at least one of `tokens` is routed to (1 for dense)."""
    model = deployment.model
    if not model.is_moe:
        return 1.0
    return 1.0 - (1.0 - model.experts_per_token / model.experts) ** tokens


def communication_s(deployment: Deployment, tokens: int) -> float:
    """Two ring all-reduces of the hidden states per layer under TP, one hand-off per pipeline boundary."""
    model, gpu = deployment.model, deployment.gpu
    tp, pp = deployment.tensor_parallel_size, deployment.pipeline_parallel_size
    activation_bytes = tokens * model.hidden_size * ACTIVATION_BYTES
    link_bytes_s = gpu.interconnect_gb_s * 1e9 / 2  # vendors quote both directions together
    latency = next((value for kind, value in ALLREDUCE_LATENCY_S.items() if gpu.interconnect.startswith(kind)),
                   ALLREDUCE_LATENCY_S["pcie"])
    total = 0.0
    if tp > 1:
        per_call = latency + 2 * (tp - 1) / tp * activation_bytes / link_bytes_s
        total += 2 * model.layers * per_call
    if pp > 1:
        cross_node = deployment.num_gpus > gpu.max_gpus_per_node
        hop_bytes_s, hop_latency = (INTER_NODE_BYTES_S, INTER_NODE_LATENCY_S) if cross_node else (link_bytes_s, latency)
        total += (pp - 1) * (hop_latency + activation_bytes / hop_bytes_s)
    return total
