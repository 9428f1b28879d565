"""The normalised types: OpenAI usage in and out, and request bodies that keep what they do not know."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sluice.backends.types import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, Usage

MESSAGES = [{"role": "user", "content": "hi"}]


# --- Usage ---------------------------------------------------------------------------------------------

def test_usage_without_details_is_the_three_openai_counts() -> None:
    usage = Usage(prompt_tokens=12, completion_tokens=5)

    assert usage.total_tokens == 17
    assert usage.to_dict() == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}


def test_cached_and_reasoning_tokens_go_into_the_openai_details() -> None:
    usage = Usage(prompt_tokens=100, completion_tokens=40, cached_tokens=64, reasoning_tokens=30)

    assert usage.to_dict() == {
        "prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140,
        "prompt_tokens_details": {"cached_tokens": 64},
        "completion_tokens_details": {"reasoning_tokens": 30},
    }


@pytest.mark.parametrize("usage", [
    Usage(3, 4), Usage(100, 40, cached_tokens=64), Usage(100, 40, reasoning_tokens=30),
    Usage(100, 40, cached_tokens=0, reasoning_tokens=0), Usage(0, 0),
])
def test_usage_round_trips_through_the_openai_shape(usage: Usage) -> None:
    assert Usage.from_openai(usage.to_dict()) == usage


def test_usage_from_openai_reads_the_details() -> None:
    usage = Usage.from_openai({
        "prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 256, "accepted_prediction_tokens": 0},
    })

    assert usage == Usage(prompt_tokens=2006, completion_tokens=300, cached_tokens=1920, reasoning_tokens=256)


def test_usage_from_openai_tolerates_null_details_and_counts() -> None:
    usage = Usage.from_openai({"prompt_tokens": 5, "completion_tokens": None, "prompt_tokens_details": None,
                               "completion_tokens_details": None})

    assert usage == Usage(prompt_tokens=5, completion_tokens=0)


@pytest.mark.parametrize("missing", [None, {}])
def test_no_usage_is_none(missing: dict[str, object] | None) -> None:
    assert Usage.from_openai(missing) is None


# --- request bodies -----------------------------------------------------------------------------------

def test_a_chat_request_keeps_unknown_fields_for_the_upstream() -> None:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi", "cache_control": {"type": "ephemeral"}}],
            "logit_bias": {"50256": -100}, "top_k": 20, "chat_template_kwargs": {"enable_thinking": False}}

    request = ChatCompletionRequest.model_validate(body)

    assert request.model_dump(exclude_unset=True) == body


def test_a_chat_request_dumps_only_what_the_client_set() -> None:
    request = ChatCompletionRequest.model_validate({"model": "chat", "messages": MESSAGES, "temperature": 0.2})

    assert request.model_dump(exclude_unset=True) == {"model": "chat", "messages": MESSAGES, "temperature": 0.2}


@pytest.mark.parametrize(("field", "bad"), [
    ("temperature", 3), ("temperature", -0.1), ("top_p", 1.5), ("max_tokens", 0), ("max_completion_tokens", 0),
    ("n", 0), ("presence_penalty", 2.5), ("frequency_penalty", -3),
])
def test_a_chat_request_rejects_out_of_range_sampling_values(field: str, bad: float) -> None:
    with pytest.raises(ValidationError) as caught:
        ChatCompletionRequest.model_validate({"model": "chat", "messages": MESSAGES, field: bad})

    assert [error["loc"] for error in caught.value.errors()] == [(field,)]


def test_a_chat_request_needs_a_model_and_at_least_one_message() -> None:
    with pytest.raises(ValidationError) as caught:
        ChatCompletionRequest.model_validate({"model": "", "messages": []})

    assert {error["loc"] for error in caught.value.errors()} == {("model",), ("messages",)}


def test_the_output_limit_prefers_max_completion_tokens() -> None:
    both = ChatCompletionRequest(model="chat", messages=MESSAGES, max_tokens=100, max_completion_tokens=50)
    legacy = ChatCompletionRequest(model="chat", messages=MESSAGES, max_tokens=100)
    neither = ChatCompletionRequest(model="chat", messages=MESSAGES)

    assert (both.output_limit, legacy.output_limit, neither.output_limit) == (50, 100, None)


def test_a_completions_output_limit_is_max_tokens() -> None:
    assert CompletionRequest(model="m", prompt="p", max_tokens=16).output_limit == 16
    assert CompletionRequest(model="m", prompt="p").output_limit is None


def test_stop_is_always_a_list() -> None:
    assert ChatCompletionRequest(model="m", messages=MESSAGES).stop_list == []
    assert ChatCompletionRequest(model="m", messages=MESSAGES, stop="\n").stop_list == ["\n"]
    assert ChatCompletionRequest(model="m", messages=MESSAGES, stop=["a", "b"]).stop_list == ["a", "b"]


def test_usage_is_included_in_a_stream_only_when_asked() -> None:
    asked = ChatCompletionRequest.model_validate({"model": "m", "messages": MESSAGES, "stream": True,
                                                  "stream_options": {"include_usage": True}})
    not_asked = ChatCompletionRequest.model_validate({"model": "m", "messages": MESSAGES, "stream": True})

    assert (asked.include_usage, not_asked.include_usage) == (True, False)


def test_embedding_texts_accept_one_string_or_a_list_of_strings() -> None:
    assert EmbeddingRequest(model="e", input="one").texts == ["one"]
    assert EmbeddingRequest(model="e", input=["a", "b"]).texts == ["a", "b"]


def test_embedding_token_ids_are_not_texts() -> None:
    with pytest.raises(ValueError, match="token-id input"):
        _ = EmbeddingRequest(model="e", input=[[1, 2, 3]]).texts
