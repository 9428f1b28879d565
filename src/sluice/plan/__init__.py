"""Capacity planner: VRAM (weights, activations, KV cache), the step-time cost model, latency, cost, advice.

The simulator builds on `step_time_s(deployment, num_prefill_tokens, num_decode_seqs, total_context_tokens)`.
`plot_batch_sweep` (matplotlib) loads on first use. `report` is the module of the planner's JSON documents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluice.lazy import on_first_use
from sluice.plan import report
from sluice.plan.cost import CostEstimate, cost_by_mode, estimate_cost, usd_per_million_tokens
from sluice.plan.deployment import GIB, Deployment, make_deployment, vllm_serve_defaults
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
from sluice.plan.recommend import DEFAULT_QUANTIZATIONS, SLO, Option, Recommendation, recommend
from sluice.plan.startup import startable_deployment
from sluice.plan.step_time import StepTime, step_breakdown, step_time_s
from sluice.plan.throughput import (
    REQUEST_OVERHEAD_S,
    BatchPoint,
    LatencyEstimate,
    Workload,
    default_batch_sizes,
    estimate_latency,
    max_running,
    prefill_time_s,
    sweep_batch_sizes,
)

if TYPE_CHECKING:
    from sluice.plan.plot import plot_batch_sweep

_ON_FIRST_USE = {  # name -> module: matplotlib
    "plot_batch_sweep": "sluice.plan.plot",
}


__getattr__ = on_first_use(__name__, _ON_FIRST_USE)


__all__ = [
    "DEFAULT_QUANTIZATIONS",
    "GIB",
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
    "default_batch_sizes",
    "estimate_cost",
    "estimate_latency",
    "get_quantization",
    "kv_bytes_per_token",
    "make_deployment",
    "max_running",
    "min_parallelism",
    "plan_memory",
    "plot_batch_sweep",
    "prefill_time_s",
    "recommend",
    "report",
    "startable_deployment",
    "step_breakdown",
    "step_time_s",
    "sweep_batch_sizes",
    "total_weight_bytes",
    "usd_per_million_tokens",
    "vllm_serve_defaults",
    "weights_min_gpus",
]
