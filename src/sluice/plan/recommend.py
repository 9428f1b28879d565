"""Rank GPU × count × quantisation options that meet a TTFT/TPOT objective by cost per million tokens."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sluice.catalog import GPU, ModelArch, PriceMode
from sluice.plan.cost import CostEstimate, estimate_cost
from sluice.plan.deployment import Deployment, make_deployment
from sluice.plan.errors import PlanError
from sluice.plan.memory import MemoryPlan, parallel_candidates, plan_memory
from sluice.plan.throughput import LatencyEstimate, Workload, estimate_latency

DEFAULT_QUANTIZATIONS = ("bf16", "fp8", "int8", "awq")


@dataclass(slots=True, frozen=True)
class SLO:
    """Latency objectives on the mean, in seconds (vLLM bench definitions: TPOT excludes the first token)."""

    ttft_s: float
    tpot_s: float

    def met_by(self, latency: LatencyEstimate) -> bool:
        return latency.ttft_s <= self.ttft_s and latency.tpot_s <= self.tpot_s


@dataclass(slots=True, frozen=True)
class Option:
    """`replicas` copies of one deployment, each serving its share of the concurrency."""

    deployment: Deployment
    replicas: int
    memory: MemoryPlan
    latency: LatencyEstimate
    cost: CostEstimate

    @property
    def num_gpus(self) -> int:
        return self.deployment.num_gpus * self.replicas

    @property
    def output_tokens_per_s(self) -> float:
        return self.latency.output_tokens_per_s * self.replicas


@dataclass(slots=True, frozen=True)
class Recommendation:
    """Options that meet the SLO, cheapest first; when there are none, why."""

    options: tuple[Option, ...]
    considered: int
    rejections: tuple[tuple[str, int], ...]
    closest: Option | None

    @property
    def reason(self) -> str | None:
        if self.options:
            return None
        counts = "; ".join(f"{count} {why}" for why, count in self.rejections) or "no candidates"
        if self.closest is None:
            return f"no deployment meets the objective ({counts})"
        near, latency = self.closest, self.closest.latency
        return (f"no deployment meets the objective ({counts}); closest: {near.deployment.describe()} × "
                f"{near.replicas} with TTFT {latency.ttft_s * 1e3:.0f} ms, TPOT {latency.tpot_s * 1e3:.1f} ms")


def recommend(model: ModelArch, gpus: Sequence[GPU], slo: SLO, workload: Workload, *,
              price_mode: PriceMode = PriceMode.ON_DEMAND, quantizations: Sequence[str] = DEFAULT_QUANTIZATIONS,
              max_gpus: int = 16, provider: str | None = None, **flags: object) -> Recommendation:
    """Enumerate GPU × (TP, PP) × quantisation × replicas, keep what starts and meets `slo`, sort by cost.

    Replicas split the concurrency (data parallel); for each layout the fewest replicas that meet the SLO
    are kept, since more replicas only lower each one's batch and so raise the cost per token.
    `flags` are vLLM flags for make_deployment; max_model_len defaults to input_len + output_len.
    """
    length = workload.input_len + workload.output_len
    if length > model.max_context:
        raise PlanError(f"input-len + output-len ({length}) exceeds {model.id}'s maximum context ({model.max_context})")
    if not flags.get("max_model_len"):
        flags["max_model_len"] = length
    options: list[Option] = []
    rejected: Counter[str] = Counter()
    closest: Option | None = None
    considered = 0
    for gpu in gpus:
        if gpu.cheapest_price(price_mode, provider) is None:
            rejected[f"with no {price_mode} price ({gpu.id})"] += 1
            continue
        for quant in quantizations:
            if quant == "int8" and gpu.supports_fp8 and "fp8" in quantizations:
                continue  # on FP8 GPUs the two W8A8 formats cost the same in this model: list FP8 only
            for tp, pp in parallel_candidates(model, gpu, max_gpus):
                considered += 1
                plan = _plan(model, gpu, quant, tp, pp, flags)
                if plan is None:
                    rejected["do not fit in memory"] += 1
                    continue
                option, near = _fewest_replicas(plan, slo, workload, price_mode, provider, max_gpus)
                if option is not None:
                    options.append(option)
                    if pp > 1:
                        break  # more pipeline stages only add GPUs
                else:
                    rejected["miss the latency objective"] += 1
                    if near is not None and (closest is None or _miss(near, slo) < _miss(closest, slo)):
                        closest = near
    options.sort(key=lambda option: (option.cost.usd_per_million_output_tokens, option.num_gpus))
    return Recommendation(tuple(options), considered, tuple(sorted(rejected.items())), closest)


def _plan(model: ModelArch, gpu: GPU, quant: str, tp: int, pp: int, flags: dict[str, object]) -> MemoryPlan | None:
    try:
        deployment = make_deployment(model, gpu, tensor_parallel_size=tp, pipeline_parallel_size=pp,
                                     quantization=quant, **flags)  # type: ignore[arg-type]
    except PlanError:
        return None
    plan = plan_memory(deployment)
    return plan if plan.fits else None


def _fewest_replicas(plan: MemoryPlan, slo: SLO, workload: Workload, mode: PriceMode, provider: str | None,
                     max_gpus: int) -> tuple[Option | None, Option | None]:
    """(the option with the fewest replicas meeting `slo`, else None; the best miss, for the reason)."""
    deployment = plan.deployment
    most = min(workload.concurrency, max(1, max_gpus // deployment.num_gpus))
    best_miss = None
    low, high = 1, most
    found = None
    while low <= high:  # SLO attainment is monotone in replicas: bisect for the fewest
        replicas = (low + high) // 2
        option = _option(plan, workload, replicas, mode, provider)
        if option is not None and slo.met_by(option.latency):
            found, high = option, replicas - 1
        else:
            if option is not None and replicas == most:
                best_miss = option
            low = replicas + 1
    if found is None and best_miss is None:
        best_miss = _option(plan, workload, most, mode, provider)
    return found, best_miss


def _option(plan: MemoryPlan, workload: Workload, replicas: int, mode: PriceMode,
            provider: str | None) -> Option | None:
    share = Workload(workload.input_len, workload.output_len, math.ceil(workload.concurrency / replicas))
    try:
        latency = estimate_latency(plan.deployment, share, plan.kv_capacity_tokens)
    except PlanError:
        return None
    cost = estimate_cost(plan.deployment, latency.output_tokens_per_s * replicas, mode, provider=provider,
                         replicas=replicas)
    return None if cost is None else Option(plan.deployment, replicas, plan, latency, cost)


def _miss(option: Option, slo: SLO) -> float:
    """How far an option is from the objective (sum of relative overshoots)."""
    return (max(0.0, option.latency.ttft_s / slo.ttft_s - 1) + max(0.0, option.latency.tpot_s / slo.tpot_s - 1))
