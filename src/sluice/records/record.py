"""`RequestRecord`: the one immutable account of a request that telemetry, the log and analyses read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

# What a stage may attach to a request: JSON values, so every store and sink can hold them.
Json: TypeAlias = str | int | float | bool | list["Json"] | dict[str, "Json"] | None


# Immutable by convention, not `frozen`: a frozen dataclass sets each of these 42 fields through
# object.__setattr__, 4.6 µs per record against 1.0 µs, and every request builds one or two (the redacted
# copy). Nothing assigns to a record's fields; a changed copy is `dataclasses.replace(record, ...)`.
@dataclass(slots=True, unsafe_hash=True)
class RequestRecord:
    request_id: str  # the gateway's own id (records/request_ids.py): unique
    created_at: float  # unix seconds when the gateway received the request
    endpoint: str  # chat | completions | embeddings
    model: str  # public model name the client asked for ("" when the body had none)
    target: str | None  # backend name that served it
    backend_type: str | None  # openai | anthropic | gguf | transformers | sentence_transformers
    upstream_model: str | None
    stream: bool
    status_code: int  # HTTP status the client saw (200 for a stream that later broke)
    client_request_id: str | None = None  # the client's own `x-request-id`: a correlation field, not unique
    error_class: str | None = None  # sluice.errors.ErrorClass value
    error_type: str | None = None  # exception type name, e.g. UpstreamTimeout
    error_message: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    tokens_estimated: bool = False  # True when counted with a tokenizer because upstream gave no usage
    finish_reason: str | None = None
    ttft_s: float | None = None  # arrival -> first output chunk (streaming only)
    tpot_s: float | None = None  # (e2e - ttft) / (completion_tokens - 1), vLLM's definition
    itl_s: tuple[float, ...] = field(default_factory=tuple)  # gaps between output chunks
    e2e_s: float | None = None  # arrival -> last byte
    queue_s: float = 0.0  # waiting for a backend concurrency slot
    upstream_s: float = 0.0  # time spent waiting on the upstream
    overhead_s: float = 0.0  # e2e - upstream_s - queue_s: the gateway's own time
    user: str | None = None
    client_ip: str | None = None
    request_body: str | None = None  # JSON text, before redaction
    response_body: str | None = None  # generated text / JSON, before redaction
    key_id: str | None = None  # virtual key id (never the secret)
    team: str | None = None
    cost_usd: float | None = None  # None when the target has no price; 0.0 for cache hits
    cache_hit: str | None = None  # exact | semantic
    route_role: str | None = None  # stable | candidate (rollouts)
    attempts: int = 0  # upstream attempts (1 = no retry; 0 = never reached an upstream)
    # what stages added (`RequestContext.annotate`), keyed `<concern>.<name>`: docs/request-log.md lists them
    annotations: dict[str, Any] = field(default_factory=dict, hash=False)  # records stay hashable
