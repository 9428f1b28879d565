"""The engine's cost model from the capacity planner: a catalog model on catalog GPUs, sized as vLLM sizes it."""

from __future__ import annotations

from dataclasses import dataclass

from sluice.catalog import Catalog
from sluice.config import SimBackendConfig
from sluice.plan import REQUEST_OVERHEAD_S, Deployment, startable_deployment, step_time_s
from sluice.sim.backend import SimulatorBackend
from sluice.sim.clock import Clock
from sluice.sim.faults import FaultPlan
from sluice.sim.kv_cache import BLOCK_SIZE
from sluice.sim.scheduler import SchedulerConfig
from sluice.sim.simulator import Simulator
from sluice.sim.tools import DEFAULT_TOOL_CALL_RATE


@dataclass(slots=True, frozen=True)
class PlannerStepCost:
    """`StepCost` backed by the planner's roofline (`sluice.plan.step_time_s`) and its KV-cache sizing."""

    deployment: Deployment
    kv_blocks_total: int

    @property
    def max_model_len(self) -> int:
        return self.deployment.max_model_len

    def step_time_s(self, prefill_tokens: int, decode_seqs: int, context_tokens: int,
                    prefill_attention_pairs: float = 0.0) -> float:
        return step_time_s(self.deployment, prefill_tokens, decode_seqs, context_tokens,
                           prefill_attention_pairs=prefill_attention_pairs)

    def describe(self) -> str:
        return (f"{self.deployment.describe()}; KV cache {self.kv_blocks_total * BLOCK_SIZE} tokens; "
                f"max_num_seqs {self.deployment.max_num_seqs}, "
                f"max_num_batched_tokens {self.deployment.max_num_batched_tokens}")


def planner_cost(model: str, gpu: str, *, tensor_parallel_size: int = 1, pipeline_parallel_size: int = 1,
                 quantization: str | None = None, kv_cache_dtype: str = "auto", max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.9, max_num_seqs: int | None = None,
                 max_num_batched_tokens: int | None = None, catalog: Catalog | None = None,
                 ) -> tuple[PlannerStepCost, SchedulerConfig]:
    """The cost model and scheduler limits of `vllm serve` for this model and GPU (unset flags: vLLM's defaults).

    Raises `PlanError` (or the catalog's unknown-id error) where vLLM would refuse to start.
    """
    deployment, memory = startable_deployment(
        model, gpu, tensor_parallel_size=tensor_parallel_size, pipeline_parallel_size=pipeline_parallel_size,
        quantization=quantization, kv_cache_dtype=kv_cache_dtype, max_model_len=max_model_len,
        gpu_memory_utilization=gpu_memory_utilization, max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens, block_size=BLOCK_SIZE, catalog=catalog)
    cost = PlannerStepCost(deployment, memory.kv_capacity_tokens // BLOCK_SIZE)
    config = SchedulerConfig(max_num_seqs=deployment.max_num_seqs,
                             max_num_batched_tokens=deployment.max_num_batched_tokens,
                             max_model_len=deployment.max_model_len)
    return cost, config


def build_simulator(model: str, gpu: str, *, served_model_name: str | None = None, seed: int = 0,
                    faults: FaultPlan | None = None, clock: Clock | None = None, catalog: Catalog | None = None,
                    tensor_parallel_size: int = 1, pipeline_parallel_size: int = 1, quantization: str | None = None,
                    kv_cache_dtype: str = "auto", max_model_len: int | None = None,
                    gpu_memory_utilization: float = 0.9, max_num_seqs: int | None = None,
                    max_num_batched_tokens: int | None = None,
                    tool_call_rate: float = DEFAULT_TOOL_CALL_RATE) -> Simulator:
    """A simulator of `vllm serve MODEL` on GPU (catalog ids, e.g. `llama-3.1-8b`, `h100-sxm`).

    Requests reach the engine after the planner's fixed per-request overhead (HTTP, tokenisation), so
    the simulator's TTFT and the planner's agree. `tool_call_rate` is the share of `tool_choice: auto` answers
    that call a tool (docs/simulator.md#tool-calling).
    """
    cost, config = planner_cost(model, gpu, tensor_parallel_size=tensor_parallel_size,
                                pipeline_parallel_size=pipeline_parallel_size, quantization=quantization,
                                kv_cache_dtype=kv_cache_dtype, max_model_len=max_model_len,
                                gpu_memory_utilization=gpu_memory_utilization, max_num_seqs=max_num_seqs,
                                max_num_batched_tokens=max_num_batched_tokens, catalog=catalog)
    arch = cost.deployment.model
    return Simulator(cost, config, served_model_name=served_model_name or arch.id,
                     tokenizer_model=arch.hf_repo or arch.id, seed=seed, faults=faults, clock=clock,
                     description=cost.describe(), request_overhead_s=REQUEST_OVERHEAD_S,
                     tool_call_rate=tool_call_rate)


def simulator_backend(name: str, config: SimBackendConfig) -> SimulatorBackend:
    """A config's `type: sim` backend, in-process. The composition root builds it (sim/ builds on backends/, so
    backends/ cannot); what vLLM would refuse to start is reported first by `sluice.gateway.startup`."""
    return SimulatorBackend(name, build_simulator(config.model, config.gpu, seed=config.seed,
                                                  tool_call_rate=config.tool_call_rate, **config.engine_flags()))
