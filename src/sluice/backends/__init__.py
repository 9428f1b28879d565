"""Backends: the `Backend` protocol, normalised types, and adapters for each kind of model server."""

from sluice.backends.base import Backend
from sluice.backends.factory import build_backend
from sluice.backends.types import (
    BackendCall,
    ChatCompletionRequest,
    Chunk,
    Completion,
    CompletionRequest,
    EmbeddingRequest,
    Embeddings,
    Endpoint,
    GenerationRequest,
    Usage,
    Whole,
)

__all__ = [
    "Backend",
    "BackendCall",
    "ChatCompletionRequest",
    "Chunk",
    "Completion",
    "CompletionRequest",
    "EmbeddingRequest",
    "Embeddings",
    "Endpoint",
    "GenerationRequest",
    "Usage",
    "Whole",
    "build_backend",
]
