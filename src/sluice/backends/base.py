"""The `Backend` protocol: what every adapter (HTTP upstream, local runtime, simulator) provides."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, runtime_checkable

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


@dataclass(slots=True, frozen=True)
class ServedAdapter:
    """The LoRA adapter a local runtime applies to its base model, named by its content hash (the registry's)."""

    path: str  # resolved
    sha256: str  # `sluice.lora_files.adapter_sha256`: what `sluice models register --adapter` records
    format: Literal["peft", "gguf"]
    merged: bool  # folded into the base weights at load (PEFT); a GGUF LoRA is applied at each step
    scale: float = 1.0  # a GGUF LoRA's `lora_scale`; a PEFT adapter applies its own lora_alpha / r

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServedAdapter:
        return cls(path=str(data["path"]), sha256=str(data["sha256"]), format=data["format"],
                   merged=bool(data["merged"]), scale=float(data.get("scale", 1.0)))


@runtime_checkable
class ServesAdapter(Protocol):
    """A local runtime that can apply a LoRA adapter; `adapter` is None until loaded, and when none is set."""

    @property
    def adapter(self) -> ServedAdapter | None:
        """The adapter the loaded model serves with."""
