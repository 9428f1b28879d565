"""`Embedder`: prompt text to a unit vector, through any embedding backend (its own worker process or HTTP)."""

from __future__ import annotations

import base64

import numpy as np

from sluice.backends import Backend, EmbeddingRequest, build_backend
from sluice.config import EmbeddingBackendConfig


class Embedder:
    """Embeds through a backend's `embed` — the sentence-transformers backend encodes in its worker process, never
    on the event loop. `owned` backends (the built-in default) are started and closed with the cache."""

    def __init__(self, backend: Backend, model: str, *, owned: bool) -> None:
        self.backend = backend
        self.model = model
        self.owned = owned

    @classmethod
    def builtin(cls, path: str, device: str = "cpu") -> Embedder:
        """A private sentence-transformers model (default all-MiniLM-L6-v2), loaded like an embedding backend."""
        config = EmbeddingBackendConfig(type="sentence_transformers", path=path, device=device)
        return cls(build_backend("cache-embedder", config), path, owned=True)

    async def start(self) -> None:
        if self.owned:
            await self.backend.start()

    async def close(self) -> None:
        if self.owned:
            await self.backend.close()

    async def embed(self, text: str) -> np.ndarray:
        request = EmbeddingRequest(model=self.model, input=[text], encoding_format="base64")
        result = await self.backend.embed(request, self.model)
        encoded = result.payload["data"][0]["embedding"]
        if isinstance(encoded, str):
            vector = np.frombuffer(base64.b64decode(encoded), dtype="<f4").astype(np.float32)
        else:  # a server that ignores encoding_format
            vector = np.asarray(encoded, dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector
