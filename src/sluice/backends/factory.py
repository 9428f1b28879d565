"""Build backends from config; local runtimes are imported only when configured (they need the `local` extra)."""

from __future__ import annotations

from sluice.backends.base import Backend
from sluice.config import (
    AnthropicBackendConfig,
    BackendConfig,
    EmbeddingBackendConfig,
    GGUFBackendConfig,
    OpenAIBackendConfig,
    SimBackendConfig,
    TransformersBackendConfig,
)
from sluice.errors import ConfigError


def build_backend(name: str, config: BackendConfig) -> Backend:
    if isinstance(config, OpenAIBackendConfig):
        from sluice.backends.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(name, config)
    if isinstance(config, AnthropicBackendConfig):
        from sluice.backends.anthropic import AnthropicBackend

        return AnthropicBackend(name, config)
    if isinstance(config, GGUFBackendConfig):
        from sluice.backends.gguf import GGUFBackend

        return GGUFBackend(name, config)
    if isinstance(config, TransformersBackendConfig):
        from sluice.backends.local_hf import TransformersBackend

        return TransformersBackend(name, config)
    if isinstance(config, EmbeddingBackendConfig):
        from sluice.backends.embedding import SentenceTransformerBackend

        return SentenceTransformerBackend(name, config)
    if isinstance(config, SimBackendConfig):
        from sluice.catalog import CatalogError
        from sluice.plan import PlanError
        from sluice.sim import SimulatorBackend, build_simulator

        try:
            simulator = build_simulator(config.model, config.gpu, seed=config.seed,
                                        tensor_parallel_size=config.tensor_parallel_size,
                                        quantization=config.quantization, max_model_len=config.max_model_len,
                                        gpu_memory_utilization=config.gpu_memory_utilization,
                                        max_num_seqs=config.max_num_seqs,
                                        max_num_batched_tokens=config.max_num_batched_tokens)
        except (CatalogError, PlanError) as exc:  # unknown id, or a deployment vLLM would refuse to start
            raise ConfigError(f"backends.{name}: {exc}") from None
        return SimulatorBackend(name, simulator)
    raise TypeError(f"no adapter for backend type {type(config).__name__}")
