"""Why requests failed: error classes grouped into kinds, and capacity limits read from the server's message."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from enum import StrEnum


class FailureKind(StrEnum):
    """Why a request, or a sweep step, failed."""

    LATENCY = "latency"  # requests succeeded, but a percentile broke its SLO
    CAPACITY = "capacity"  # the server's limits: context length exceeded, out of memory
    CLIENT_ERROR = "4xx"
    SERVER_ERROR = "5xx"
    TIMEOUT = "timeout"
    CONNECTION = "connection"  # refused, reset, or a stream cut before [DONE]
    INVALID_RESPONSE = "invalid_response"  # 200 but no text, or unparsable JSON


# vLLM's 400s: "This model's maximum context length is 4096 tokens. However, ..." (and the max_tokens variant)
_CONTEXT_LENGTH = re.compile(r"maximum context length is (\d+)", re.IGNORECASE)
_CONTEXT_WORDS = ("context length", "context_length_exceeded", "too many tokens", "input is too long",
                  "prompt is too long")
_OOM_WORDS = ("out of memory", "outofmemory", "cuda oom", "insufficient memory", "kv cache is full",
              "not enough kv cache")
_INVALID = {"empty_response", "invalid_json"}


def capacity_reason(detail: str | None) -> str | None:
    """A plain reason when the server's message says a capacity limit was hit, else None."""
    if not detail:
        return None
    if match := _CONTEXT_LENGTH.search(detail):
        return f"context length exceeded (server max {match.group(1)} tokens)"
    lowered = detail.lower()
    if any(word in lowered for word in _CONTEXT_WORDS):
        return "context length exceeded"
    if any(word in lowered for word in _OOM_WORDS):
        return "server out of memory"
    return None


def classify(error: str, detail: str | None = None) -> FailureKind:
    """The kind of one failed request from its error class (`http_400`, `timeout`, `ClientOSError`, ...)
    and the server's message, which turns a 400 or 500 into `capacity` when it names a limit."""
    if capacity_reason(detail):
        return FailureKind.CAPACITY
    if error == "timeout":
        return FailureKind.TIMEOUT
    if error in _INVALID:
        return FailureKind.INVALID_RESPONSE
    if error == "stream_error":
        return FailureKind.SERVER_ERROR
    if error.startswith("http_") and error[5:].isdigit():
        return FailureKind.CLIENT_ERROR if int(error[5:]) < 500 else FailureKind.SERVER_ERROR
    return FailureKind.CONNECTION  # incomplete_stream and aiohttp's exceptions (ClientOSError, ...)


def errors_by_kind(errors_by_class: Mapping[str, int], examples: Mapping[str, str]) -> dict[str, int]:
    """Failed-request counts by kind, from a result's `errors_by_class` and `error_examples`."""
    counts: Counter[str] = Counter()
    for error, count in errors_by_class.items():
        counts[classify(error, examples.get(error)).value] += count
    return dict(counts)


def describe_error(error: str, detail: str | None) -> str:
    """`http_400: context length exceeded (server max 4096 tokens)` — the class and the clearest reason."""
    reason = capacity_reason(detail) or detail
    return f"{error}: {reason}" if reason else error
