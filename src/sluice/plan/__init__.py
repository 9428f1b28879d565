"""Capacity planner: VRAM (weights, activations, KV cache), the step-time cost model, latency, cost, advice.

The simulator builds on `step_time_s(deployment, num_prefill_tokens, num_decode_seqs, total_context_tokens)`.
`sluice.plan.plot` (matplotlib) is imported on demand and is not re-exported here.
"""

from sluice.plan.cost import CostEstimate, cost_by_mode, estimate_cost, usd_per_million_tokens
from sluice.plan.deployment import Deployment, make_deployment, vllm_serve_defaults
from sluice.plan.errors import PlanError
from sluice.plan.memory import (
    MemoryPlan,
    StageMemory,
    activation_peak_bytes,
    kv_bytes_per_token,
    min_parallelism,
    plan_memory,
    total_weight_bytes,
    weights_min_gpus,
)
from sluice.plan.quantization import KV_CACHE_DTYPES, QUANTIZATIONS, Quantization, get_quantization
from sluice.plan.recommend import SLO, Option, Recommendation, recommend
from sluice.plan.startup import startable_deployment
from sluice.plan.step_time import StepTime, step_breakdown, step_time_s
from sluice.plan.throughput import (
    REQUEST_OVERHEAD_S,
    BatchPoint,
    LatencyEstimate,
    Workload,
    estimate_latency,
    prefill_time_s,
    sweep_batch_sizes,
)

__all__ = [
    "KV_CACHE_DTYPES",
    "QUANTIZATIONS",
    "REQUEST_OVERHEAD_S",
    "SLO",
    "BatchPoint",
    "CostEstimate",
    "Deployment",
    "LatencyEstimate",
    "MemoryPlan",
    "Option",
    "PlanError",
    "Quantization",
    "Recommendation",
    "StageMemory",
    "StepTime",
    "Workload",
    "activation_peak_bytes",
    "cost_by_mode",
    "estimate_cost",
    "estimate_latency",
    "get_quantization",
    "kv_bytes_per_token",
    "make_deployment",
    "min_parallelism",
    "plan_memory",
    "prefill_time_s",
    "recommend",
    "startable_deployment",
    "step_breakdown",
    "step_time_s",
    "sweep_batch_sizes",
    "total_weight_bytes",
    "usd_per_million_tokens",
    "vllm_serve_defaults",
    "weights_min_gpus",
]
