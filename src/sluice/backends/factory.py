"""Build backends from config; local runtimes are imported only when configured (they need the `local` extra).
Not `type: sim`: the simulator builds on backends/, so sim/ builds its adapter (`sluice.sim.simulator_backend`)."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from sluice.backends.worker import WorkerMetrics


def build_backend(name: str, config: BackendConfig, *, worker_metrics: WorkerMetrics | None = None) -> Backend:
    """The adapter for `config`; local runtimes run in a supervised worker process unless `isolation: thread`."""
    if isinstance(config, GGUFBackendConfig | TransformersBackendConfig | EmbeddingBackendConfig):
        if config.isolation == "thread":
            return build_runtime(name, config)
        from sluice.backends.worker import WorkerBackend

        return WorkerBackend(name, config, metrics=worker_metrics)
    if isinstance(config, OpenAIBackendConfig):
        from sluice.backends.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(name, config)
    if isinstance(config, AnthropicBackendConfig):
        from sluice.backends.anthropic import AnthropicBackend

        return AnthropicBackend(name, config)
    if isinstance(config, SimBackendConfig):  # sim/ builds on backends/: the composition root builds this one
        raise TypeError(f"backend {name!r} is simulated: build it with sluice.sim.simulator_backend")
    raise TypeError(f"no adapter for backend type {type(config).__name__}")


def build_runtime(name: str, config: BackendConfig) -> Backend:
    """A local runtime loaded in this process: in the worker process, or the gateway's with `isolation: thread`."""
    if isinstance(config, GGUFBackendConfig):
        from sluice.backends.gguf import GGUFBackend

        return GGUFBackend(name, config)
    if isinstance(config, TransformersBackendConfig):
        from sluice.backends.local_hf import TransformersBackend

        return TransformersBackend(name, config)
    if isinstance(config, EmbeddingBackendConfig):
        from sluice.backends.embedding import SentenceTransformerBackend

        return SentenceTransformerBackend(name, config)
    raise TypeError(f"backend type {type(config).__name__} is not a local runtime")


def local_structured_output(config: Any) -> tuple[str, frozenset[str]]:
    """What a local runtime enforces of a JSON response_format, and the schema keywords it ignores: the GGUF
    runtime guides decoding with llguidance when it is installed (docs/structured-local.md); otherwise the gateway
    puts the schema in the prompt (`none`) and validates the answer."""
    if isinstance(config, GGUFBackendConfig) and config.structured_output == "json_schema" and \
            importlib.util.find_spec("llguidance") is not None:
        from sluice.backends.guided import UNENFORCED_KEYWORDS

        return "json_schema", UNENFORCED_KEYWORDS
    return "none", frozenset()
