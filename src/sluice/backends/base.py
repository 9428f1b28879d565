"""The `Backend` protocol: what every adapter (HTTP upstream, local runtime, simulator) provides."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from sluice.backends.types import BackendCall, Chunk, Completion, EmbeddingRequest, Embeddings, Endpoint


@runtime_checkable
class Backend(Protocol):
    name: str
    type: str
    endpoints: frozenset[Endpoint]

    async def start(self) -> None:
        """Open pools / load weights. Called once before the gateway serves."""

    async def close(self) -> None:
        """Release everything `start` acquired."""

    async def health(self) -> bool:
        """True when the backend can serve now (weights loaded, upstream reachable)."""

    async def complete(self, call: BackendCall) -> Completion:
        """One whole answer."""

    def stream(self, call: BackendCall) -> AsyncIterator[Chunk]:
        """The answer as normalised chunks; raises `UpstreamError` subclasses on failure."""

    async def embed(self, request: EmbeddingRequest, upstream_model: str) -> Embeddings:
        """Embeddings for `request.input`."""


@runtime_checkable
class Supervised(Protocol):
    """A backend that can stop serving after it started (a local runtime's worker process died and restarts)."""

    @property
    def pid(self) -> int | None:
        """The worker process serving now, if any."""

    def readiness(self) -> tuple[str, str | None]:
        """(`starting` | `ready` | `restarting` | `failed`, why it is not ready)."""
