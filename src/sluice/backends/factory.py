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
    if isinstance(config, SimBackendConfig):  # its validator already refused what would not start
        from sluice.sim import SimulatorBackend, build_simulator

        return SimulatorBackend(name, build_simulator(config.model, config.gpu, seed=config.seed,
                                                      **config.engine_flags()))
    raise TypeError(f"no adapter for backend type {type(config).__name__}")
