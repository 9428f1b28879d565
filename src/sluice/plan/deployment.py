"""A deployment: one model on N GPUs with vLLM's serving flags, validated the way vLLM validates them."""

from __future__ import annotations

from dataclasses import dataclass

from sluice.catalog import GPU, ModelArch
from sluice.plan.errors import PlanError
from sluice.plan.quantization import Quantization, get_quantization, kv_cache_bytes

GIB = 1024**3
# vLLM's KV-cache block (page) size in tokens (`--block-size`, default 16 on CUDA).
DEFAULT_BLOCK_SIZE = 16


@dataclass(slots=True, frozen=True)
class Deployment:
    """Everything the cost model needs: model, GPU, parallelism, dtypes and vLLM's scheduler limits."""

    model: ModelArch
    gpu: GPU
    tensor_parallel_size: int
    pipeline_parallel_size: int
    quantization: Quantization
    kv_cache_dtype: str
    max_model_len: int
    gpu_memory_utilization: float
    max_num_seqs: int
    max_num_batched_tokens: int
    block_size: int = DEFAULT_BLOCK_SIZE

    @property
    def num_gpus(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size

    @property
    def num_nodes(self) -> int:
        return -(-self.num_gpus // self.gpu.max_gpus_per_node)

    @property
    def kv_bytes_per_element(self) -> int:
        return kv_cache_bytes(self.kv_cache_dtype)

    @property
    def compute(self) -> str:
        """Tensor-core rate the GEMMs run at: FP8 on GPUs without FP8 falls back to weight-only (BF16 math)."""
        wanted = self.quantization.compute
        return "bf16" if wanted == "fp8" and not self.gpu.supports_fp8 else wanted

    @property
    def kv_heads_per_gpu(self) -> int:
        """KV heads held by each tensor-parallel rank; vLLM replicates heads when TP exceeds their count."""
        return max(1, self.model.kv_heads // self.tensor_parallel_size)

    def stage_layers(self) -> tuple[int, ...]:
        """Layers per pipeline stage as vLLM's get_pp_indices splits them: evenly, the remainder going
        to the stages before the last (which also holds the output head)."""
        pp = self.pipeline_parallel_size
        layers = [self.model.layers // pp] * pp
        for index in range(2, self.model.layers % pp + 2):
            layers[-index] += 1
        return tuple(layers)

    def describe(self) -> str:
        parts = [f"{self.model.id} on {self.num_gpus}x {self.gpu.id}", self.quantization.id]
        if self.num_gpus > 1:
            parts.append(f"TP={self.tensor_parallel_size} PP={self.pipeline_parallel_size}")
        return ", ".join(parts)


def vllm_serve_defaults(gpu: GPU) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) that `vllm serve` picks for this GPU.

    vLLM engine/arg_utils.py (V1 engine, v0.8 to v0.11): devices with >= 70 GiB whose name does not contain
    "a100" get 8192 tokens and 1024 sequences; every other GPU gets 2048 tokens and 256 sequences.
    """
    if gpu.usable_memory_gib >= 70 and "a100" not in gpu.id:
        return 8192, 1024
    return 2048, 256


def make_deployment(model: ModelArch, gpu: GPU, *, tensor_parallel_size: int = 1, pipeline_parallel_size: int = 1,
                    quantization: str | Quantization | None = None, kv_cache_dtype: str = "auto",
                    max_model_len: int | None = None, gpu_memory_utilization: float = 0.9,
                    max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None,
                    block_size: int = DEFAULT_BLOCK_SIZE) -> Deployment:
    """A validated Deployment; unset flags take vLLM's defaults (max_model_len: the model's context)."""
    quant = quantization if isinstance(quantization, Quantization) else get_quantization(quantization)
    kv_cache_bytes(kv_cache_dtype)
    default_tokens, default_seqs = vllm_serve_defaults(gpu)
    deployment = Deployment(
        model=model, gpu=gpu, tensor_parallel_size=tensor_parallel_size,
        pipeline_parallel_size=pipeline_parallel_size, quantization=quant, kv_cache_dtype=kv_cache_dtype.lower(),
        max_model_len=max_model_len or model.max_context, gpu_memory_utilization=gpu_memory_utilization,
        max_num_seqs=max_num_seqs or default_seqs, max_num_batched_tokens=max_num_batched_tokens or default_tokens,
        block_size=block_size,
    )
    validate(deployment)
    return deployment


def validate(deployment: Deployment) -> None:
    """The checks vLLM makes at start-up, with its wording where it has one."""
    model, tp, pp = deployment.model, deployment.tensor_parallel_size, deployment.pipeline_parallel_size
    if tp < 1 or pp < 1:
        raise PlanError("tensor-parallel-size and pipeline-parallel-size must be at least 1")
    if model.heads % tp:
        raise PlanError(f"total number of attention heads ({model.heads}) must be divisible by "
                        f"tensor parallel size ({tp})")
    if model.kv_heads % tp and tp % model.kv_heads:
        raise PlanError(f"tensor parallel size ({tp}) must divide or be a multiple of the KV heads ({model.kv_heads})")
    if pp > model.layers:
        raise PlanError(f"pipeline parallel size ({pp}) exceeds the number of layers ({model.layers})")
    if not 0 < deployment.gpu_memory_utilization <= 1:
        raise PlanError("gpu-memory-utilization must be in (0, 1]")
    if deployment.max_model_len < 1 or deployment.max_num_seqs < 1 or deployment.max_num_batched_tokens < 1:
        raise PlanError("max-model-len, max-num-seqs and max-num-batched-tokens must be positive")
    if deployment.max_model_len > model.max_context:
        raise PlanError(f"max-model-len ({deployment.max_model_len}) is greater than the model's maximum context "
                        f"({model.max_context}, max_position_embeddings)")
