"""Building blocks for routing tests: real adapters (never started), a router over config, a settable clock."""

from __future__ import annotations

import random
from typing import Any

from sluice.backends import Backend
from sluice.backends.anthropic import AnthropicBackend
from sluice.backends.embedding import SentenceTransformerBackend
from sluice.backends.openai_compat import OpenAICompatBackend
from sluice.config import AnthropicBackendConfig, EmbeddingBackendConfig, OpenAIBackendConfig, SluiceConfig
from sluice.rollout import DeploymentRegistry
from sluice.routing import Router


def openai(name: str) -> OpenAICompatBackend:
    return OpenAICompatBackend(name, OpenAIBackendConfig(type="openai", base_url=f"http://{name}:8000/v1"))


def anthropic(name: str) -> AnthropicBackend:
    return AnthropicBackend(name, AnthropicBackendConfig(type="anthropic"))


def embedder(name: str) -> SentenceTransformerBackend:
    return SentenceTransformerBackend(name, EmbeddingBackendConfig(type="sentence_transformers",
                                                                   path="builtin:all-minilm-l6-v2"))


class Clock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def router_for(models: dict[str, Any], *backends: Backend, routing: dict[str, Any] | None = None,
               seed: int = 0, clock: Clock | None = None) -> Router:
    """A router over `models` (config dicts) on `backends`, with a seeded rng and an optional fake clock."""
    config = SluiceConfig.model_validate({
        "backends": {b.name: _config_of(b) for b in backends},
        "models": models, "routing": routing or {}})
    by_name = {backend.name: backend for backend in backends}
    return Router(DeploymentRegistry.from_config(config), by_name, config.routing, config.models,
                  rng=random.Random(seed), clock=clock or Clock())


def _config_of(backend: Backend) -> dict[str, Any]:
    if backend.type == "anthropic":
        return {"type": "anthropic"}
    if backend.type == "sentence_transformers":
        return {"type": "sentence_transformers", "path": "builtin:all-minilm-l6-v2"}
    return {"type": "openai", "base_url": f"http://{backend.name}:8000/v1"}
