"""Chunk and answer builders for generating adapters, and `collect()`: a stream folded into one answer."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sluice.backends.chunks import (
    collect,
    completion_payload,
    new_id,
    role_chunk,
    text_chunk,
    usage_chunk,
)
from sluice.backends.types import BackendCall, ChatCompletionRequest, Chunk, CompletionRequest, Usage

CREATED = 1_700_000_000


def chat_call() -> BackendCall:
    request = ChatCompletionRequest(model="smol", messages=[{"role": "user", "content": "hi"}])
    return BackendCall(endpoint="chat", request=request, upstream_model="smollm2-135m", request_id="req-1")


def completions_call() -> BackendCall:
    request = CompletionRequest(model="smol", prompt="Once upon")
    return BackendCall(endpoint="completions", request=request, upstream_model="smollm2-135m", request_id="req-1")


async def stream_of(*chunks: Chunk) -> AsyncIterator[Chunk]:
    for chunk in chunks:
        yield chunk


# --- builders ----------------------------------------------------------------------------------------

def test_ids_carry_the_openai_prefix_of_their_endpoint_and_are_unique() -> None:
    assert new_id("chat").startswith("chatcmpl-")
    assert new_id("completions").startswith("cmpl-")
    assert len({new_id("chat") for _ in range(100)}) == 100


def test_a_chat_text_chunk_is_an_openai_delta_that_counts_as_output() -> None:
    chunk = text_chunk(chat_call(), "chatcmpl-1", CREATED, "Hel")

    assert chunk.payload == {
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": CREATED, "model": "smollm2-135m",
        "choices": [{"index": 0, "delta": {"content": "Hel"}, "logprobs": None, "finish_reason": None}],
    }
    assert (chunk.text, chunk.has_output, chunk.finish_reason, chunk.usage) == ("Hel", True, None, None)


def test_an_empty_final_chat_chunk_has_an_empty_delta_and_is_not_output() -> None:
    chunk = text_chunk(chat_call(), "chatcmpl-1", CREATED, "", finish_reason="stop")

    assert chunk.payload["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]
    assert (chunk.text, chunk.has_output, chunk.finish_reason) == ("", False, "stop")


def test_a_completions_text_chunk_is_a_text_completion_object() -> None:
    chunk = text_chunk(completions_call(), "cmpl-1", CREATED, " a time", finish_reason="length")

    assert chunk.payload["object"] == "text_completion"
    assert chunk.payload["choices"] == [{"index": 0, "text": " a time", "logprobs": None, "finish_reason": "length"}]
    assert chunk.has_output


def test_the_role_chunk_announces_the_assistant_without_output() -> None:
    chunk = role_chunk(chat_call(), "chatcmpl-1", CREATED)

    assert chunk.payload["object"] == "chat.completion.chunk"
    assert chunk.payload["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert (chunk.text, chunk.has_output) == ("", False)


def test_the_usage_chunk_has_no_choices_and_carries_the_usage_both_ways() -> None:
    usage = Usage(prompt_tokens=7, completion_tokens=3)
    chunk = usage_chunk(chat_call(), "chatcmpl-1", CREATED, usage)

    assert chunk.payload["choices"] == []
    assert chunk.payload["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert chunk.usage == usage
    assert not chunk.has_output


def test_a_chat_answer_is_an_assistant_message() -> None:
    payload = completion_payload(chat_call(), "chatcmpl-1", CREATED, "Hello!", "stop", Usage(5, 2))

    assert payload == {
        "id": "chatcmpl-1", "object": "chat.completion", "created": CREATED, "model": "smollm2-135m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "logprobs": None,
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


def test_an_answer_without_usage_has_no_usage_key() -> None:
    payload = completion_payload(completions_call(), "cmpl-1", CREATED, " a time", "length", None)

    assert payload["object"] == "text_completion"
    assert payload["choices"] == [{"index": 0, "text": " a time", "logprobs": None, "finish_reason": "length"}]
    assert "usage" not in payload


# --- collect() ----------------------------------------------------------------------------------------

async def test_collect_joins_the_text_and_keeps_the_stream_id_finish_reason_and_usage() -> None:
    call = chat_call()
    usage = Usage(prompt_tokens=9, completion_tokens=2)
    stream = stream_of(
        role_chunk(call, "chatcmpl-abc", CREATED),
        text_chunk(call, "chatcmpl-abc", CREATED, "Hel"),
        text_chunk(call, "chatcmpl-abc", CREATED, "lo"),
        text_chunk(call, "chatcmpl-abc", CREATED, "", finish_reason="stop"),
        usage_chunk(call, "chatcmpl-abc", CREATED, usage),
    )

    answer = await collect(call, stream)

    assert (answer.text, answer.finish_reason, answer.usage) == ("Hello", "stop", usage)
    assert answer.payload == completion_payload(call, "chatcmpl-abc", CREATED, "Hello", "stop", usage)


async def test_collect_keeps_a_finish_reason_and_usage_that_arrive_before_later_chunks() -> None:
    call = completions_call()
    usage = Usage(prompt_tokens=3, completion_tokens=4)
    stream = stream_of(
        text_chunk(call, "cmpl-1", CREATED, "a", finish_reason="length"),
        usage_chunk(call, "cmpl-1", CREATED, usage),
        text_chunk(call, "cmpl-1", CREATED, ""),
    )

    answer = await collect(call, stream)

    assert (answer.text, answer.finish_reason, answer.usage) == ("a", "length", usage)
    assert answer.payload["object"] == "text_completion"
    assert answer.payload["choices"][0]["text"] == "a"
    assert answer.payload["usage"]["total_tokens"] == 7


async def test_collecting_an_empty_stream_gives_an_empty_answer_with_a_fresh_id() -> None:
    answer = await collect(chat_call(), stream_of())

    assert (answer.text, answer.finish_reason, answer.usage) == ("", None, None)
    assert answer.payload["id"].startswith("chatcmpl-")
    assert answer.payload["choices"][0]["message"] == {"role": "assistant", "content": ""}
    assert isinstance(answer.payload["created"], int)
    assert "usage" not in answer.payload
