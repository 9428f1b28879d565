"""Backends: the `Backend` protocol, normalised types, and adapters for each kind of model server.

The SSE codec, the chunk builders and the local-runtime worker (a supervised process, its Prometheus metrics)
load on first use: the types are all that config checks and `sluice --help` need, and the factory loads the
worker only when a local runtime is configured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluice.backends.base import Backend, ServedAdapter, ServesAdapter, Supervised
from sluice.backends.factory import build_backend
from sluice.backends.tool_calls import (
    PARALLEL_CALLS_MAX,
    ToolChoice,
    ToolDelta,
    ToolSpec,
    new_call_id,
    tool_choice_of,
    tools_of,
)
from sluice.backends.types import (
    BackendCall,
    ChatCompletionRequest,
    ChatMessage,
    Chunk,
    Completion,
    CompletionRequest,
    EmbeddingRequest,
    Embeddings,
    Endpoint,
    GenerationRequest,
    Usage,
    Whole,
    response_format_of,
)
from sluice.lazy import on_first_use

if TYPE_CHECKING:
    from sluice.backends.chunks import collect, new_id, role_chunk, text_chunk, tool_call_chunk, usage_chunk
    from sluice.backends.replay import StreamCollector, completion_from_payload, replay_chunks
    from sluice.backends.sse import DONE, encode_data, iter_sse
    from sluice.backends.worker import WorkerMetrics

_ON_FIRST_USE = {  # name -> module
    "DONE": "sluice.backends.sse",
    "encode_data": "sluice.backends.sse",
    "iter_sse": "sluice.backends.sse",
    "collect": "sluice.backends.chunks",
    "new_id": "sluice.backends.chunks",
    "role_chunk": "sluice.backends.chunks",
    "text_chunk": "sluice.backends.chunks",
    "tool_call_chunk": "sluice.backends.chunks",
    "usage_chunk": "sluice.backends.chunks",
    "StreamCollector": "sluice.backends.replay",
    "completion_from_payload": "sluice.backends.replay",
    "replay_chunks": "sluice.backends.replay",
    "WorkerMetrics": "sluice.backends.worker",  # the worker process machinery (subprocess, prometheus_client)
}


__getattr__ = on_first_use(__name__, _ON_FIRST_USE)


__all__ = [
    "DONE",
    "PARALLEL_CALLS_MAX",
    "Backend",
    "BackendCall",
    "ChatCompletionRequest",
    "ChatMessage",
    "Chunk",
    "Completion",
    "CompletionRequest",
    "EmbeddingRequest",
    "Embeddings",
    "Endpoint",
    "GenerationRequest",
    "ServedAdapter",
    "ServesAdapter",
    "StreamCollector",
    "Supervised",
    "ToolChoice",
    "ToolDelta",
    "ToolSpec",
    "Usage",
    "Whole",
    "WorkerMetrics",
    "build_backend",
    "collect",
    "completion_from_payload",
    "encode_data",
    "iter_sse",
    "new_call_id",
    "new_id",
    "replay_chunks",
    "response_format_of",
    "role_chunk",
    "text_chunk",
    "tool_call_chunk",
    "tool_choice_of",
    "tools_of",
    "usage_chunk",
]
