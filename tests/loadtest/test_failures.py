"""Failure kinds: error classes and the server's message, read the way `bench sweep` explains a broken step."""

from __future__ import annotations

import pytest

from sluice.loadtest.failures import FailureKind, capacity_reason, classify, describe_error, errors_by_kind

VLLM_INPUT_TOO_LONG = ("This model's maximum context length is 4096 tokens. However, your request has 5000 input "
                       "tokens. Please reduce the length of the input messages. (parameter=input_tokens, value=5000)")
VLLM_MAX_TOKENS_TOO_LARGE = ("'max_tokens' or 'max_completion_tokens' is too large: 2000. This model's maximum context "
                             "length is 2048 tokens and your request has 100 input tokens (2000 > 2048 - 100).")


@pytest.mark.parametrize(("error", "detail", "kind"), [
    ("http_400", VLLM_INPUT_TOO_LONG, FailureKind.CAPACITY),
    ("http_400", VLLM_MAX_TOKENS_TOO_LARGE, FailureKind.CAPACITY),
    ("http_500", "CUDA out of memory. Tried to allocate 2.00 GiB", FailureKind.CAPACITY),
    ("http_400", "Invalid JSON body", FailureKind.CLIENT_ERROR),
    ("http_429", None, FailureKind.CLIENT_ERROR),
    ("http_503", "Injected fault", FailureKind.SERVER_ERROR),
    ("stream_error", "engine died", FailureKind.SERVER_ERROR),
    ("timeout", None, FailureKind.TIMEOUT),
    ("ClientOSError", "Connection reset by peer", FailureKind.CONNECTION),
    ("ServerDisconnectedError", None, FailureKind.CONNECTION),
    ("incomplete_stream", None, FailureKind.CONNECTION),
    ("empty_response", None, FailureKind.INVALID_RESPONSE),
])
def test_each_error_class_has_a_kind(error: str, detail: str | None, kind: FailureKind) -> None:
    assert classify(error, detail) is kind


def test_capacity_reasons_name_the_limit() -> None:
    assert capacity_reason(VLLM_INPUT_TOO_LONG) == "context length exceeded (server max 4096 tokens)"
    assert capacity_reason(VLLM_MAX_TOKENS_TOO_LARGE) == "context length exceeded (server max 2048 tokens)"
    assert capacity_reason("prompt is too long: 9000 tokens > 8192 maximum") == "context length exceeded"
    assert capacity_reason("torch.OutOfMemoryError: CUDA out of memory") == "server out of memory"
    assert capacity_reason("Injected fault: simulated HTTP 500") is None
    assert describe_error("http_400", VLLM_INPUT_TOO_LONG) == (
        "http_400: context length exceeded (server max 4096 tokens)")
    assert describe_error("timeout", None) == "timeout"


def test_errors_by_kind_counts_each_class_once() -> None:
    counts = errors_by_kind({"http_400": 3, "http_500": 2, "http_503": 1, "timeout": 4},
                            {"http_400": VLLM_INPUT_TOO_LONG})
    assert counts == {"capacity": 3, "5xx": 3, "timeout": 4}
