"""Where the bench sends: the endpoint forms users type, base URLs with or without /v1, headers, extra bodies."""

from __future__ import annotations

import pytest

from sluice.loadtest.datasets import BenchRequest
from sluice.loadtest.target import (
    BenchTarget,
    TargetError,
    backend_endpoint,
    parse_extra_body,
    parse_headers,
    request_body,
    resolve_url,
)

ROOT = "http://127.0.0.1:8000"


@pytest.mark.parametrize("base", [ROOT, ROOT + "/", ROOT + "/v1", ROOT + "/v1/"])
@pytest.mark.parametrize(("endpoint", "path"), [
    ("chat", "/v1/chat/completions"), ("chat/completions", "/v1/chat/completions"),
    ("/chat/completions", "/v1/chat/completions"), ("/v1/chat/completions", "/v1/chat/completions"),
    ("v1/chat/completions", "/v1/chat/completions"), ("completions", "/v1/completions"),
    ("/completions", "/v1/completions"), ("/v1/completions", "/v1/completions")])
def test_every_obvious_endpoint_form_on_either_base_url_reaches_the_same_url(base: str, endpoint: str,
                                                                              path: str) -> None:
    assert resolve_url(base, endpoint) == ROOT + path


def test_short_forms_go_under_an_api_root_that_is_not_v1() -> None:
    base = "https://generativelanguage.googleapis.com/v1beta/openai"
    assert resolve_url(base, "chat") == base + "/chat/completions"
    assert resolve_url("https://openrouter.ai/api/v1", "/v1/chat/completions") == (
        "https://openrouter.ai/api/v1/chat/completions")


def test_an_endpoint_that_is_no_completions_api_fails_at_once_with_the_url() -> None:
    with pytest.raises(TargetError, match=r"http://127\.0\.0\.1:8000/v1/embeddings"):
        BenchTarget(ROOT + "/v1", "m", endpoint="/v1/embeddings")
    with pytest.raises(TargetError, match="http:// or https://"):
        BenchTarget("127.0.0.1:8000", "m")


def test_vllm_backend_names_map_to_an_endpoint_or_say_why_not() -> None:
    assert backend_endpoint("openai") == backend_endpoint("vllm") == "/v1/completions"
    assert backend_endpoint("openai-chat") == "/v1/chat/completions"
    with pytest.raises(TargetError, match="OpenAI streaming API only"):
        backend_endpoint("tgi")


def test_headers_take_colon_or_vllm_equals_form_and_values_keep_their_separators() -> None:
    assert parse_headers(["X-Team: search", "x-b=2", "Authorization: Bearer a=b:c"]) == (
        ("X-Team", "search"), ("x-b", "2"), ("Authorization", "Bearer a=b:c"))
    for bad in ("no-separator", ": value", "bad name: v"):
        with pytest.raises(TargetError, match="NAME:VALUE"):
            parse_headers([bad])


def test_user_headers_override_the_api_key_and_the_request_id_overrides_them() -> None:
    target = BenchTarget(ROOT, "m", api_key="k", headers=(("Authorization", "Bearer other"), ("x-request-id", "u")))
    assert target.request_headers("r-1") == {"Authorization": "Bearer other", "x-request-id": "r-1"}


def test_extra_body_is_a_json_object_merged_last_and_ignore_eos_is_sent() -> None:
    target = BenchTarget(ROOT, "m", endpoint="completions", ignore_eos=True,
                         extra_body=parse_extra_body('{"top_k": 20, "temperature": 0.7}'))
    body = request_body(target, BenchRequest("hi", 1, 4))
    assert body["ignore_eos"] is True and body["top_k"] == 20 and body["temperature"] == 0.7
    assert body["prompt"] == "hi" and body["max_tokens"] == 4 and body["stream"] is True
    assert parse_extra_body(None) == {}
    for bad, reason in (("[1]", "JSON object"), ("{oops", "not JSON"), ('{"stream": false}', "stream")):
        with pytest.raises(TargetError, match=reason):
            parse_extra_body(bad)
