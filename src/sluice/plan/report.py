"""JSON documents for `sluice plan … --json` (schemas in docs/planner.md): plain dicts, units in key names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sluice.catalog import GPU, ModelArch, PriceMode
from sluice.plan.cost import CostEstimate, usd_per_million_tokens
from sluice.plan.deployment import GIB, Deployment
from sluice.plan.memory import MemoryPlan, weights_min_gpus
from sluice.plan.recommend import SLO, Option, Recommendation
from sluice.plan.throughput import BatchPoint, LatencyEstimate, Workload

JSON = dict[str, Any]


def tidy(value: Any) -> Any:
    """Floats rounded to 6 significant digits, recursively, so JSON shows 8.603 rather than 8.602999999999998."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {key: tidy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [tidy(item) for item in value]
    return value


def model_json(model: ModelArch) -> JSON:
    return {
        "id": model.id, "name": model.name, "family": model.family, "hf_repo": model.hf_repo,
        "params": model.total_params, "active_params": model.active_params, "params_published_b": model.params_b,
        "layers": model.layers, "hidden_size": model.hidden_size, "heads": model.heads, "kv_heads": model.kv_heads,
        "head_dim": model.head_dim, "intermediate_size": model.intermediate_size, "vocab_size": model.vocab_size,
        "experts": model.experts, "experts_per_token": model.experts_per_token, "max_context": model.max_context,
        "kv_bytes_per_token_bf16": model.kv_bytes_per_token(2),
        "source": {"title": model.source.title, "url": model.source.url, "date": model.source.date},
    }


def gpu_json(gpu: GPU) -> JSON:
    return {
        "id": gpu.id, "name": gpu.name, "vendor": gpu.vendor, "memory_gb": gpu.memory_gb,
        "usable_memory_gib": gpu.usable_memory_gib, "memory_bandwidth_gb_s": gpu.memory_bandwidth_gb_s,
        "bf16_tflops": gpu.bf16_tflops, "fp8_tflops": gpu.fp8_tflops, "int8_tops": gpu.int8_tops,
        "interconnect": gpu.interconnect, "interconnect_gb_s": gpu.interconnect_gb_s,
        "max_gpus_per_node": gpu.max_gpus_per_node,
        "prices": [{"provider": price.provider.id, "note": price.note,
                    **{f"{mode.value.replace('-', '_')}_usd_per_hour": price.usd_per_hour(mode) for mode in PriceMode},
                    "source": price.source.cite()} for price in gpu.prices],
        "sources": {name: source.cite() for name, source in gpu.sources},
    }


def deployment_json(deployment: Deployment) -> JSON:
    return {
        "model": deployment.model.id, "gpu": deployment.gpu.id,
        "tensor_parallel_size": deployment.tensor_parallel_size,
        "pipeline_parallel_size": deployment.pipeline_parallel_size, "num_gpus": deployment.num_gpus,
        "num_nodes": deployment.num_nodes, "quantization": deployment.quantization.id,
        "compute_dtype": deployment.compute, "kv_cache_dtype": deployment.kv_cache_dtype,
        "max_model_len": deployment.max_model_len, "gpu_memory_utilization": deployment.gpu_memory_utilization,
        "max_num_seqs": deployment.max_num_seqs, "max_num_batched_tokens": deployment.max_num_batched_tokens,
        "block_size": deployment.block_size,
    }


def fit_json(plan: MemoryPlan, *, auto_parallel: bool) -> JSON:
    deployment, stage = plan.deployment, plan.binding
    model = deployment.model
    return {
        "schema": "sluice.plan.fit/v1",
        "model": model_json(model), "gpu": gpu_json(deployment.gpu), "deployment": deployment_json(deployment),
        "auto_parallel": auto_parallel, "fits": plan.fits, "problems": list(plan.problems),
        "warnings": list(plan.warnings),
        "model_weights_gb": plan.total_weight_bytes / 1e9, "model_weights_gib": plan.total_weight_bytes / GIB,
        "weights_min_gpus": weights_min_gpus(model, deployment.gpu, deployment.quantization),
        "memory_per_gpu_gib": {
            "total": plan.total_gpu_bytes / GIB, "budget": plan.budget_bytes / GIB,
            "weights": stage.weights_bytes / GIB, "activation_peak": stage.activation_bytes / GIB,
            "non_torch": stage.non_torch_bytes / GIB, "kv_cache": stage.kv_cache_bytes / GIB,
        },
        "kv_cache": {
            "bytes_per_token": model.kv_bytes_per_token(deployment.kv_bytes_per_element),
            "bytes_per_token_per_gpu": stage.kv_bytes_per_token,
            "max_model_len_sequence_gib": model.kv_bytes_per_token(deployment.kv_bytes_per_element)
            * deployment.max_model_len / GIB,
            "capacity_tokens": plan.kv_capacity_tokens,
            "max_concurrency": plan.max_concurrency,
        },
        "stages": [{"layers": s.layers, "weights_gib": s.weights_bytes / GIB,
                    "activation_gib": s.activation_bytes / GIB, "kv_cache_gib": s.kv_cache_bytes / GIB,
                    "kv_capacity_tokens": s.kv_capacity_tokens} for s in plan.stages],
    }


def workload_json(workload: Workload) -> JSON:
    return {"input_len": workload.input_len, "output_len": workload.output_len, "concurrency": workload.concurrency}


def latency_json(latency: LatencyEstimate) -> JSON:
    return {
        "concurrency": latency.workload.concurrency, "running": latency.running, "kv_limited": latency.kv_limited,
        "ttft_ms": latency.ttft_s * 1e3, "tpot_ms": latency.tpot_s * 1e3, "e2e_ms": latency.e2e_s * 1e3,
        "queue_ms": latency.queue_s * 1e3, "output_tokens_per_s": latency.output_tokens_per_s, "bound": latency.bound,
    }


def cost_json(cost: CostEstimate) -> JSON:
    return {
        "price": cost.mode.value, "provider": cost.provider, "usd_per_gpu_hour": cost.usd_per_gpu_hour,
        "num_gpus": cost.num_gpus, "usd_per_hour": cost.usd_per_hour,
        "usd_per_million_output_tokens": cost.usd_per_million_output_tokens,
    }


def throughput_json(plan: MemoryPlan, latency: LatencyEstimate, points: Sequence[BatchPoint],
                    costs: Sequence[CostEstimate], price_mode: PriceMode, plot: str | None) -> JSON:
    hourly = next((cost.usd_per_hour for cost in costs if cost.mode == price_mode), None)
    return {
        "schema": "sluice.plan.throughput/v1",
        "deployment": deployment_json(plan.deployment), "fits": plan.fits,
        "kv_capacity_tokens": plan.kv_capacity_tokens, "workload": workload_json(latency.workload),
        "at_concurrency": latency_json(latency), "costs": [cost_json(cost) for cost in costs],
        "price": price_mode.value,
        "batches": [{
            "batch_size": point.batch_size, "decode_step_ms": point.decode_step_s * 1e3,
            "decode_tokens_per_s": point.decode_tokens_per_s, "prefill_ms": point.prefill_s * 1e3,
            "fits_in_kv": point.fits_in_kv, "ttft_ms": point.latency.ttft_s * 1e3,
            "tpot_ms": point.latency.tpot_s * 1e3, "output_tokens_per_s": point.latency.output_tokens_per_s,
            "usd_per_million_output_tokens": None if hourly is None
            else usd_per_million_tokens(hourly, point.latency.output_tokens_per_s),
        } for point in points],
        "plot": plot,
    }


def option_json(rank: int, option: Option) -> JSON:
    deployment = option.deployment
    return {
        "rank": rank, "gpu": deployment.gpu.id, "quantization": deployment.quantization.id,
        "tensor_parallel_size": deployment.tensor_parallel_size,
        "pipeline_parallel_size": deployment.pipeline_parallel_size, "replicas": option.replicas,
        "num_gpus": option.num_gpus, "kv_capacity_tokens": option.memory.kv_capacity_tokens,
        "ttft_ms": option.latency.ttft_s * 1e3, "tpot_ms": option.latency.tpot_s * 1e3,
        "output_tokens_per_s": option.output_tokens_per_s, **cost_json(option.cost),
    }


def recommend_json(model: ModelArch, slo: SLO, workload: Workload, price_mode: PriceMode,
                   result: Recommendation) -> JSON:
    return {
        "schema": "sluice.plan.recommend/v1", "model": model.id,
        "slo": {"ttft_ms": slo.ttft_s * 1e3, "tpot_ms": slo.tpot_s * 1e3}, "workload": workload_json(workload),
        "price": price_mode.value, "considered": result.considered,
        "rejections": dict(result.rejections), "reason": result.reason,
        "options": [option_json(rank, option) for rank, option in enumerate(result.options, start=1)],
    }
