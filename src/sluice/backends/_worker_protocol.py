"""The wire format between a `WorkerBackend` and its worker process: one orjson object per line.

gateway -> worker: the hello `{"name", "config"}`, then `{"op": "stream"|"embed"|"cancel"|"stats", "id", ...}`.
worker -> gateway: `{"ready": {"pid", "load_s", "adapter"}}` or `{"failed": error}` once, then
`{"id", "chunk"|"end"|"error"|...}`.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluice.backends.types import (
    BackendCall,
    ChatCompletionRequest,
    Chunk,
    CompletionRequest,
    EmbeddingRequest,
    Embeddings,
    Usage,
)
from sluice.errors import (
    BackendNotReady,
    InvalidRequest,
    PayloadTooLarge,
    SluiceError,
    UpstreamError,
    UpstreamStreamBroken,
    UpstreamTimeout,
    UpstreamUnavailable,
)

LINE_LIMIT_BYTES = 256 * 1024 * 1024  # one line holds a whole embeddings answer
_ERRORS: dict[str, type[SluiceError]] = {cls.__name__: cls for cls in (
    BackendNotReady, InvalidRequest, PayloadTooLarge, UpstreamError, UpstreamStreamBroken, UpstreamTimeout,
    UpstreamUnavailable)}


def encode(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message) + b"\n"  # orjson never writes a raw newline inside a document


def decode(line: bytes) -> dict[str, Any]:
    message = orjson.loads(line)
    if not isinstance(message, dict):
        raise ValueError(f"worker protocol: expected an object, got {type(message).__name__}")
    return message


def usage_to_wire(usage: Usage | None) -> list[int | None] | None:
    if usage is None:
        return None
    return [usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.reasoning_tokens,
            usage.cache_write_tokens]


def usage_from_wire(wire: list[int | None] | None) -> Usage | None:
    if wire is None:
        return None
    prompt, completion, cached, reasoning, cache_write = wire
    return Usage(int(prompt or 0), int(completion or 0), cached, reasoning, cache_write)


def chunk_to_wire(chunk: Chunk) -> list[Any]:
    return [chunk.payload, chunk.text, chunk.has_output, usage_to_wire(chunk.usage), chunk.finish_reason]


def chunk_from_wire(wire: list[Any]) -> Chunk:
    payload, text, has_output, usage, finish_reason = wire
    return Chunk(payload=payload, text=text, has_output=has_output, usage=usage_from_wire(usage),
                 finish_reason=finish_reason)


def call_to_wire(call: BackendCall) -> dict[str, Any]:
    return {"endpoint": call.endpoint, "request": call.request.model_dump(mode="json", exclude_none=True),
            "upstream_model": call.upstream_model, "request_id": call.request_id}


def call_from_wire(wire: dict[str, Any]) -> BackendCall:
    endpoint = wire["endpoint"]
    model = ChatCompletionRequest if endpoint == "chat" else CompletionRequest
    return BackendCall(endpoint, model.model_validate(wire["request"]), wire["upstream_model"], wire["request_id"])


def embed_to_wire(request: EmbeddingRequest, upstream_model: str) -> dict[str, Any]:
    return {"request": request.model_dump(mode="json", exclude_none=True), "upstream_model": upstream_model}


def embeddings_to_wire(result: Embeddings) -> dict[str, Any]:
    return {"payload": result.payload, "usage": usage_to_wire(result.usage)}


def embeddings_from_wire(wire: dict[str, Any]) -> Embeddings:
    return Embeddings(payload=wire["payload"], usage=usage_from_wire(wire["usage"]))


def error_to_wire(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, SluiceError):
        kind = type(exc).__name__ if type(exc).__name__ in _ERRORS else "UpstreamError"
        return {"kind": kind, "message": exc.message, "param": exc.param, "code": exc.code}
    return {"kind": "UpstreamError", "message": f"{type(exc).__name__}: {exc}", "param": None, "code": None}


def error_from_wire(wire: dict[str, Any]) -> SluiceError:
    cls = _ERRORS.get(str(wire.get("kind")), UpstreamError)
    return cls(str(wire.get("message")), param=wire.get("param"), code=wire.get("code"))
