"""The Anthropic adapter: OpenAI chat in, Anthropic Messages upstream, OpenAI shapes back out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest

from sluice.backends import Backend, build_backend
from sluice.backends._anthropic_stream import StreamTranslator
from sluice.backends._anthropic_translate import (
    completion_from_message,
    finish_reason,
    messages_body,
    split_messages,
    tool_choice,
    usage_from,
)
from sluice.backends.anthropic import AnthropicBackend
from sluice.backends.types import (
    BackendCall,
    ChatCompletionRequest,
    ChatMessage,
    Chunk,
    CompletionRequest,
    EmbeddingRequest,
)
from sluice.config import AnthropicBackendConfig
from sluice.errors import (
    InvalidRequest,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamStreamBroken,
    UpstreamUnavailable,
)
from tests.support.anthropic_server import (
    API_KEY,
    CACHE_READ_TOKENS,
    CACHE_WRITE_TOKENS,
    INPUT_TOKENS,
    TOOL_INPUT,
    VERSION,
    AnthropicServer,
)
from tests.support.servers import free_port, serve_app

DEFAULT_MAX_TOKENS = 321
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def chat_call(messages: list[dict[str, Any]], **params: Any) -> BackendCall:
    request = ChatCompletionRequest(model="claude", messages=messages, **params)
    return BackendCall(endpoint="chat", request=request, upstream_model="claude-sonnet-4-5",
                       request_id="req-1")


def body_for(messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
    return messages_body(chat_call(messages, **params), default_max_tokens=DEFAULT_MAX_TOKENS, stream=False)


# --- request translation (pure) ---------------------------------------------------------------------

def test_system_and_developer_messages_join_into_top_level_system() -> None:
    body = body_for([{"role": "system", "content": "Be brief."},
                     {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                     {"role": "user", "content": "hi"}])
    assert body["system"] == "Be brief.\n\nAnswer in French."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


def test_consecutive_same_role_messages_merge_so_roles_alternate() -> None:
    system, turns = split_messages([ChatMessage(role="user", content="one"),
                                    ChatMessage(role="user", content="two"),
                                    ChatMessage(role="assistant", content=""),
                                    ChatMessage(role="user", content="three")])
    assert system == ""
    assert turns == [{"role": "user", "content": [{"type": "text", "text": text}
                                                  for text in ("one", "two", "three")]}]


def test_image_parts_become_base64_or_url_sources() -> None:
    body = body_for([{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}}]}])
    assert body["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]


@pytest.mark.parametrize("url", ["data:image/png,rawbytes", "ftp://example.com/cat.png"])
def test_images_that_anthropic_cannot_fetch_are_rejected(url: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        body_for([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}])
    assert caught.value.param == "messages"


def test_unsupported_content_part_is_rejected() -> None:
    with pytest.raises(InvalidRequest):
        body_for([{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x"}}]}])


def test_assistant_tool_calls_and_tool_results_translate_to_tool_use_and_tool_result() -> None:
    body = body_for([
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
        {"role": "user", "content": "and tomorrow?"}])
    assistant, results = body["messages"][1], body["messages"][2]
    assert assistant == {"role": "assistant", "content": [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}]}
    assert results == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "18C, sunny"}]},
        {"type": "text", "text": "and tomorrow?"}]}


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]"])
def test_tool_call_arguments_must_be_a_json_object(arguments: str) -> None:
    with pytest.raises(InvalidRequest):
        body_for([{"role": "user", "content": "hi"},
                  {"role": "assistant", "tool_calls": [
                      {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}]}])


def test_tools_become_input_schemas() -> None:
    body = body_for([{"role": "user", "content": "hi"}], tools=[
        WEATHER_TOOL, {"type": "function", "function": {"name": "now"}}], tool_choice="auto")
    assert body["tools"] == [
        {"name": "get_weather", "description": "Current weather for a city",
         "input_schema": WEATHER_TOOL["function"]["parameters"]},
        {"name": "now", "input_schema": {"type": "object", "properties": {}}}]
    assert body["tool_choice"] == {"type": "auto"}


@pytest.mark.parametrize(("openai", "anthropic"), [
    ("auto", {"type": "auto"}),
    ("required", {"type": "any"}),
    ("none", {"type": "none"}),
    ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
    (None, None),
])
def test_tool_choice_mapping(openai: Any, anthropic: dict[str, Any] | None) -> None:
    assert tool_choice(openai) == anthropic


def test_parallel_tool_calls_false_disables_parallel_tool_use() -> None:
    assert tool_choice(None, parallel=False) == {"type": "auto", "disable_parallel_tool_use": True}
    assert tool_choice("required", parallel=False) == {"type": "any", "disable_parallel_tool_use": True}
    assert tool_choice("none", parallel=False) == {"type": "none"}


def test_unknown_tool_choice_is_rejected() -> None:
    with pytest.raises(InvalidRequest) as caught:
        tool_choice("sometimes")
    assert caught.value.param == "tool_choice"


def test_sampling_params_map_and_max_tokens_defaults() -> None:
    body = body_for([{"role": "user", "content": "hi"}], temperature=0.2, top_p=0.9, stop="END", user="u-42")
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS
    assert (body["temperature"], body["top_p"]) == (0.2, 0.9)
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "u-42"}
    assert body["model"] == "claude-sonnet-4-5"
    assert "tools" not in body and "system" not in body


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    hello = [{"role": "user", "content": "hi"}]
    assert body_for(hello, max_tokens=50, max_completion_tokens=70)["max_tokens"] == 70
    assert body_for(hello, max_tokens=50)["max_tokens"] == 50


def test_n_above_one_is_rejected_naming_n() -> None:
    with pytest.raises(InvalidRequest) as caught:
        body_for([{"role": "user", "content": "hi"}], n=2)
    assert caught.value.param == "n"


def test_legacy_completions_endpoint_is_rejected() -> None:
    call = BackendCall(endpoint="completions", request=CompletionRequest(model="claude", prompt="hi"),
                       upstream_model="claude-sonnet-4-5", request_id="req-1")
    with pytest.raises(InvalidRequest):
        messages_body(call, default_max_tokens=10, stream=False)


# --- response translation (pure) --------------------------------------------------------------------

@pytest.mark.parametrize(("stop_reason", "expected"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("tool_use", "tool_calls"), ("refusal", "content_filter"), (None, None)])
def test_stop_reasons_map_to_openai_finish_reasons(stop_reason: str | None, expected: str | None) -> None:
    assert finish_reason(stop_reason) == expected


def test_usage_counts_cache_reads_and_writes_as_prompt_tokens() -> None:
    usage = usage_from({"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 7,
                        "output_tokens": 4})
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (117, 4, 100)
    plain = usage_from({"input_tokens": 3, "output_tokens": 2})
    assert plain is not None and plain.cached_tokens is None
    assert usage_from(None) is None


def test_message_with_tool_use_becomes_tool_calls_with_json_arguments() -> None:
    completion = completion_from_message(chat_call([{"role": "user", "content": "hi"}]), {
        "id": "msg_1", "type": "message", "role": "assistant", "stop_reason": "tool_use",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}],
        "usage": {"input_tokens": 5, "output_tokens": 9}})
    choice = completion.payload["choices"][0]
    assert completion.payload["id"] == "msg_1"
    assert completion.payload["model"] == "claude-sonnet-4-5"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [{"id": "toolu_1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city":"Oslo"}'}}]
    assert choice["finish_reason"] == completion.finish_reason == "tool_calls"
    assert completion.payload["usage"] == {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}


# --- stream translation (pure) ----------------------------------------------------------------------

def json_delta(partial_json: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": partial_json}}


DOCUMENTED_STREAM: list[dict[str, Any]] = [
    {"type": "message_start",
     "message": {"id": "msg_9", "type": "message", "role": "assistant", "content": [],
                 "usage": {"input_tokens": 20, "cache_read_input_tokens": 4, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Okay"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1,
     "content_block": {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {}}},
    json_delta(""),
    json_delta('{"ci'),
    json_delta('ty":"Rome"}'),
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}},
    {"type": "message_stop"},
]


def test_stream_translator_follows_the_documented_event_flow() -> None:
    translator = StreamTranslator(chat_call([{"role": "user", "content": "hi"}]))
    chunks = [chunk for event in DOCUMENTED_STREAM for chunk in translator.feed(event)]
    deltas = [chunk.payload["choices"][0]["delta"] for chunk in chunks[:-1]]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "Okay"},
        {"tool_calls": [{"index": 0, "id": "toolu_9", "type": "function",
                         "function": {"name": "get_weather", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Rome"}'}}]},
        {},
    ]
    assert [chunk.has_output for chunk in chunks] == [False, True, True, True, True, False, False]
    assert chunks[-2].finish_reason == "tool_calls"
    assert chunks[-1].payload["choices"] == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (24, 30)
    assert {chunk.payload["id"] for chunk in chunks} == {"msg_9"}
    assert translator.done


def test_stream_error_event_raises_the_mapped_error() -> None:
    translator = StreamTranslator(chat_call([{"role": "user", "content": "hi"}]))
    with pytest.raises(UpstreamRateLimited) as caught:
        translator.feed({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
    assert "slow down" in caught.value.message


# --- against a loopback Anthropic server ------------------------------------------------------------

@pytest.fixture(scope="module")
def server() -> Iterator[tuple[AnthropicServer, str]]:
    upstream = AnthropicServer()
    with serve_app(upstream.app) as base_url:
        yield upstream, base_url


def make_backend(base_url: str, api_key: str = API_KEY) -> AnthropicBackend:
    config = AnthropicBackendConfig(type="anthropic", base_url=base_url, api_key=api_key,
                                    default_max_tokens=DEFAULT_MAX_TOKENS)
    return AnthropicBackend("claude", config)


@pytest.fixture
async def backend(server: tuple[AnthropicServer, str]) -> AsyncIterator[AnthropicBackend]:
    adapter = make_backend(server[1])
    await adapter.start()
    yield adapter
    await adapter.close()


async def collect(backend: AnthropicBackend, call: BackendCall) -> list[Chunk]:
    return [chunk async for chunk in backend.stream(call)]


def test_factory_builds_an_anthropic_backend_that_satisfies_the_protocol() -> None:
    adapter = build_backend("claude", AnthropicBackendConfig(type="anthropic", api_key="k"))
    assert isinstance(adapter, AnthropicBackend) and isinstance(adapter, Backend)
    assert adapter.type == "anthropic" and adapter.endpoints == frozenset({"chat"})


async def test_request_carries_auth_headers_and_translated_body(
        server: tuple[AnthropicServer, str], backend: AnthropicBackend) -> None:
    upstream, _ = server
    await backend.complete(chat_call([{"role": "system", "content": "Be terse."},
                                      {"role": "user", "content": "first"},
                                      {"role": "user", "content": "second"}], stop=["ZZZ"]))
    received = upstream.requests[-1]
    assert received.headers["x-api-key"] == API_KEY
    assert received.headers["anthropic-version"] == VERSION
    assert received.body["system"] == "Be terse."
    assert received.body["max_tokens"] == DEFAULT_MAX_TOKENS
    assert received.body["stop_sequences"] == ["ZZZ"]
    assert received.body["stream"] is False
    assert [turn["role"] for turn in received.body["messages"]] == ["user"]


async def test_complete_translates_text_finish_reason_and_cached_usage(backend: AnthropicBackend) -> None:
    completion = await backend.complete(chat_call([{"role": "user", "content": "hello there"}]))
    assert completion.text == "Echo: hello there"
    assert completion.payload["object"] == "chat.completion"
    assert completion.payload["id"].startswith("msg_")
    assert completion.payload["choices"][0]["message"] == {"role": "assistant",
                                                           "content": "Echo: hello there"}
    assert completion.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == INPUT_TOKENS + CACHE_READ_TOKENS + CACHE_WRITE_TOKENS
    assert completion.usage.cached_tokens == CACHE_READ_TOKENS
    assert completion.usage.completion_tokens == 3
    assert completion.payload["usage"]["prompt_tokens_details"] == {"cached_tokens": CACHE_READ_TOKENS}


async def test_max_tokens_cut_is_length_and_stop_sequence_is_stop(backend: AnthropicBackend) -> None:
    cut = await backend.complete(chat_call([{"role": "user", "content": "one two three"}], max_tokens=2))
    assert (cut.text, cut.finish_reason) == ("Echo: one ", "length")
    stopped = await backend.complete(chat_call([{"role": "user", "content": "one STOP two"}], stop="STOP"))
    assert (stopped.text, stopped.finish_reason) == ("Echo: one ", "stop")


async def test_refusal_is_content_filter(backend: AnthropicBackend) -> None:
    completion = await backend.complete(chat_call([{"role": "user", "content": "REFUSE this"}]))
    assert completion.finish_reason == "content_filter"


async def test_tool_round_trip_through_tool_use_and_tool_result(
        server: tuple[AnthropicServer, str], backend: AnthropicBackend) -> None:
    upstream, _ = server
    question = {"role": "user", "content": "what is the weather in Paris?"}
    first = await backend.complete(chat_call([question], tools=[WEATHER_TOOL], tool_choice="auto"))
    assert upstream.last_body["tools"][0]["input_schema"] == WEATHER_TOOL["function"]["parameters"]
    assert upstream.last_body["tool_choice"] == {"type": "auto"}
    message = first.payload["choices"][0]["message"]
    assert first.finish_reason == "tool_calls"
    assert message["content"] == "Let me check."
    [tool_call] = message["tool_calls"]
    assert tool_call["function"]["name"] == "get_weather"
    assert orjson.loads(tool_call["function"]["arguments"]) == TOOL_INPUT

    # The server rejects tool_result ids it never issued, so this proves the ids survive the round trip.
    second = await backend.complete(chat_call(
        [question, message, {"role": "tool", "tool_call_id": tool_call["id"], "content": "18C and sunny"}],
        tools=[WEATHER_TOOL]))
    assert second.text == "The tool said: 18C and sunny"
    assert second.finish_reason == "stop"


async def test_stream_emits_role_then_text_deltas_then_finish_then_usage(backend: AnthropicBackend) -> None:
    call = chat_call([{"role": "user", "content": "stream this please"}], stream=True)
    chunks = await collect(backend, call)
    assert chunks[0].payload["choices"][0]["delta"]["role"] == "assistant"
    assert not chunks[0].has_output
    assert "".join(chunk.text for chunk in chunks) == "Echo: stream this please"
    assert len([chunk for chunk in chunks if chunk.text]) == 4  # one delta per upstream text_delta
    assert all(chunk.payload["object"] == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.payload["id"] for chunk in chunks}) == 1
    assert chunks[-2].finish_reason == "stop"
    final = chunks[-1]
    assert final.payload["choices"] == []
    assert final.usage is not None
    assert final.usage.prompt_tokens == INPUT_TOKENS + CACHE_READ_TOKENS + CACHE_WRITE_TOKENS
    assert final.usage.cached_tokens == CACHE_READ_TOKENS
    assert final.usage.completion_tokens == 4


async def test_stream_tool_call_arguments_arrive_as_deltas(backend: AnthropicBackend) -> None:
    chunks = await collect(backend, chat_call([{"role": "user", "content": "weather in Paris?"}],
                                              tools=[WEATHER_TOOL], stream=True))
    tool_deltas = [call for chunk in chunks for choice in chunk.payload["choices"]
                   for call in choice["delta"].get("tool_calls", [])]
    opening, *argument_deltas = tool_deltas
    assert opening["index"] == 0 and opening["id"].startswith("toolu_") and opening["type"] == "function"
    assert opening["function"] == {"name": "get_weather", "arguments": ""}
    assert len(argument_deltas) > 1
    assert orjson.loads("".join(delta["function"]["arguments"] for delta in argument_deltas)) == TOOL_INPUT
    assert "".join(chunk.text for chunk in chunks) == "Let me check."
    assert [chunk.finish_reason for chunk in chunks if chunk.finish_reason] == ["tool_calls"]


@pytest.mark.parametrize(("word", "error_type", "status_code", "code"), [
    ("FAULT_400", UpstreamRejected, 400, "invalid_request_error"),
    ("FAULT_403", UpstreamRejected, 403, "permission_error"),
    ("FAULT_404", UpstreamRejected, 404, "not_found_error"),
    ("FAULT_413", UpstreamRejected, 413, "request_too_large"),
    ("FAULT_429", UpstreamRateLimited, 429, "rate_limit_error"),
    ("FAULT_500", UpstreamUnavailable, 502, "api_error"),
    ("FAULT_529", UpstreamUnavailable, 502, "overloaded_error"),
])
@pytest.mark.parametrize("streaming", [False, True])
async def test_upstream_error_statuses_map_to_error_types(
        backend: AnthropicBackend, word: str, error_type: type[UpstreamError], status_code: int, code: str,
        streaming: bool) -> None:
    call = chat_call([{"role": "user", "content": f"please {word}"}], stream=streaming)
    with pytest.raises(UpstreamError) as caught:
        await (collect(backend, call) if streaming else backend.complete(call))
    assert type(caught.value) is error_type
    assert caught.value.status_code == status_code
    assert caught.value.code == code
    assert "simulated" in caught.value.message
    if isinstance(caught.value, UpstreamRateLimited):
        assert caught.value.retry_after_s == 7.0


async def test_wrong_api_key_is_a_401_rejection(server: tuple[AnthropicServer, str]) -> None:
    adapter = make_backend(server[1], api_key="sk-ant-wrong")
    try:
        with pytest.raises(UpstreamRejected) as caught:
            await adapter.complete(chat_call([{"role": "user", "content": "hi"}]))
    finally:
        await adapter.close()
    assert (caught.value.status_code, caught.value.code) == (401, "authentication_error")


async def test_error_event_after_output_is_a_broken_stream(backend: AnthropicBackend) -> None:
    seen: list[Chunk] = []
    with pytest.raises(UpstreamStreamBroken) as caught:
        async for chunk in backend.stream(chat_call([{"role": "user", "content": "a b c STREAM_ERROR"}])):
            seen.append(chunk)
    assert any(chunk.has_output for chunk in seen)
    assert caught.value.code == "overloaded_error"


async def test_error_event_before_output_is_the_mapped_retryable_error(backend: AnthropicBackend) -> None:
    with pytest.raises(UpstreamError) as caught:
        await collect(backend, chat_call([{"role": "user", "content": "STREAM_ERROR_EARLY"}]))
    assert type(caught.value) is UpstreamUnavailable
    assert caught.value.code == "overloaded_error"


async def test_connection_dropped_mid_stream_is_a_broken_stream(backend: AnthropicBackend) -> None:
    with pytest.raises(UpstreamStreamBroken) as caught:
        await collect(backend, chat_call([{"role": "user", "content": "a b c STREAM_DROP"}]))
    assert isinstance(caught.value.__cause__, UpstreamUnavailable)  # the transport failed, not a clean end


async def test_stream_without_message_stop_is_a_broken_stream(backend: AnthropicBackend) -> None:
    with pytest.raises(UpstreamStreamBroken, match="message_stop"):
        await collect(backend, chat_call([{"role": "user", "content": "a b STREAM_TRUNCATE"}]))


async def test_unreachable_upstream_is_unavailable_for_both_modes() -> None:
    adapter = make_backend(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(UpstreamUnavailable):
            await adapter.complete(chat_call([{"role": "user", "content": "hi"}]))
        with pytest.raises(UpstreamUnavailable) as caught:
            await collect(adapter, chat_call([{"role": "user", "content": "hi"}]))
        assert type(caught.value) is UpstreamUnavailable
    finally:
        await adapter.close()


async def test_health_is_true_without_spending_a_request(
        server: tuple[AnthropicServer, str], backend: AnthropicBackend) -> None:
    upstream, _ = server
    before = len(upstream.requests)
    assert await backend.health() is True
    assert len(upstream.requests) == before


async def test_embeddings_and_legacy_completions_are_invalid_requests(backend: AnthropicBackend) -> None:
    with pytest.raises(InvalidRequest):
        await backend.embed(EmbeddingRequest(model="claude", input="hi"), "claude-sonnet-4-5")
    call = BackendCall(endpoint="completions", request=CompletionRequest(model="claude", prompt="hi"),
                       upstream_model="claude-sonnet-4-5", request_id="req-1")
    with pytest.raises(InvalidRequest):
        await backend.complete(call)
    with pytest.raises(InvalidRequest):
        await collect(backend, call)
