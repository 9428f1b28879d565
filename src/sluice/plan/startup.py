"""Whether `vllm serve MODEL` would start on a GPU: the deployment of catalog ids and its memory plan, or why not."""

from __future__ import annotations

from sluice.catalog import Catalog, builtin_catalog
from sluice.plan.deployment import DEFAULT_BLOCK_SIZE, Deployment, make_deployment
from sluice.plan.errors import PlanError
from sluice.plan.memory import MemoryPlan, plan_memory


def startable_deployment(model: str, gpu: str, *, tensor_parallel_size: int = 1, pipeline_parallel_size: int = 1,
                         quantization: str | None = None, kv_cache_dtype: str = "auto",
                         max_model_len: int | None = None, gpu_memory_utilization: float = 0.9,
                         max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None,
                         block_size: int = DEFAULT_BLOCK_SIZE, catalog: Catalog | None = None,
                         ) -> tuple[Deployment, MemoryPlan]:
    """The deployment (unset flags: vLLM's defaults) and its memory plan.

    Raises the catalog's `UnknownIdError` for an unknown id, and `PlanError` where vLLM would refuse to start —
    among them a KV cache that cannot hold one sequence of `max_model_len` tokens.
    """
    catalog = catalog or builtin_catalog()
    deployment = make_deployment(catalog.model(model), catalog.gpu(gpu), tensor_parallel_size=tensor_parallel_size,
                                 pipeline_parallel_size=pipeline_parallel_size, quantization=quantization,
                                 kv_cache_dtype=kv_cache_dtype, max_model_len=max_model_len,
                                 gpu_memory_utilization=gpu_memory_utilization, max_num_seqs=max_num_seqs,
                                 max_num_batched_tokens=max_num_batched_tokens, block_size=block_size)
    memory = plan_memory(deployment)
    if memory.problems:
        raise PlanError(f"{deployment.describe()} would not start: " + "; ".join(memory.problems))
    return deployment, memory


__all__ = ["startable_deployment"]
