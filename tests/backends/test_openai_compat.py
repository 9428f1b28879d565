"""The OpenAI-compatible adapter against a real loopback upstream: bodies, streams, usage and every error path."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice.backends.openai_compat import OpenAICompatBackend
from sluice.backends.types import (
    BackendCall,
    ChatCompletionRequest,
    Chunk,
    CompletionRequest,
    EmbeddingRequest,
    Endpoint,
)
from sluice.config import OpenAIBackendConfig
from sluice.errors import (
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamStreamBroken,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tests.support.openai_server import OpenAIUpstream, make_openai_upstream
from tests.support.servers import free_port, serve_app

CHAT_PATH = "/v1/chat/completions"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[OpenAIUpstream, str]]:
    upstream = make_openai_upstream(models=["llama-up"])
    with serve_app(upstream) as url:
        yield upstream, url


@pytest.fixture
def upstream(served: tuple[OpenAIUpstream, str]) -> OpenAIUpstream:
    upstream = served[0]
    upstream.reset()
    upstream.api_key = None
    return upstream


@pytest.fixture
def base_url(served: tuple[OpenAIUpstream, str]) -> str:
    return served[1] + "/v1"


@pytest.fixture
async def backend(upstream: OpenAIUpstream, base_url: str) -> AsyncIterator[OpenAICompatBackend]:
    async with open_backend(base_url) as opened:
        yield opened


@asynccontextmanager
async def open_backend(base_url: str, **settings: Any) -> AsyncIterator[OpenAICompatBackend]:
    config = OpenAIBackendConfig.model_validate({"type": "openai", "base_url": base_url, **settings})
    backend = OpenAICompatBackend("fake", config)
    await backend.start()
    try:
        yield backend
    finally:
        await backend.close()


def chat_call(content: str = "hello big world", *, fault: str | None = None, **fields: Any) -> BackendCall:
    request = ChatCompletionRequest.model_validate(
        {"model": "public-name", "messages": [{"role": "user", "content": content}], **fields})
    return _call("chat", request, fault)


def completion_call(prompt: str = "once upon a time", *, fault: str | None = None, **fields: Any) -> BackendCall:
    request = CompletionRequest.model_validate({"model": "public-name", "prompt": prompt, **fields})
    return _call("completions", request, fault)


def _call(endpoint: Endpoint, request: ChatCompletionRequest | CompletionRequest,
          fault: str | None) -> BackendCall:
    headers = {"x-fault": fault} if fault else {}
    return BackendCall(endpoint=endpoint, request=request, upstream_model="llama-up", request_id="req-1",
                       extra_headers=headers)


async def collect(backend: OpenAICompatBackend, call: BackendCall) -> list[Chunk]:
    return [chunk async for chunk in backend.stream(call)]


async def collect_until_error(backend: OpenAICompatBackend, call: BackendCall,
                              error: type[Exception]) -> tuple[list[Chunk], Exception]:
    chunks: list[Chunk] = []
    with pytest.raises(error) as raised:
        async for chunk in backend.stream(call):
            chunks.append(chunk)
    return chunks, raised.value


# --- whole answers ---------------------------------------------------------------------------------------

async def test_chat_completion_returns_text_finish_reason_and_usage(backend: OpenAICompatBackend) -> None:
    completion = await backend.complete(chat_call("hello big world"))

    assert completion.text == "hello big world"
    assert completion.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 3)
    assert completion.payload["object"] == "chat.completion"


async def test_chat_body_reaches_upstream_with_upstream_model_and_unknown_fields_untouched(
        backend: OpenAICompatBackend, upstream: OpenAIUpstream) -> None:
    call = chat_call(max_tokens=2, top_k=40, guided_json={"type": "object"},
                     stream_options={"include_usage": True})

    completion = await backend.complete(call)

    assert completion.text == "hello big"
    assert completion.finish_reason == "length"
    [body] = upstream.bodies(CHAT_PATH)
    assert body["model"] == "llama-up"
    assert body["stream"] is False
    assert "stream_options" not in body  # OpenAI rejects stream_options without stream
    assert body["top_k"] == 40
    assert body["guided_json"] == {"type": "object"}
    assert body["messages"] == [{"role": "user", "content": "hello big world"}]
    assert body["max_tokens"] == 2
    assert "temperature" not in body  # fields the client did not send are not invented


async def test_api_key_is_sent_as_bearer_token_with_configured_and_per_call_headers(
        upstream: OpenAIUpstream, base_url: str) -> None:
    upstream.api_key = "sk-upstream"
    async with open_backend(base_url, api_key="sk-upstream", headers={"x-team": "search"}) as backend:
        call = chat_call()
        call.extra_headers["x-request-id"] = "req-1"
        await backend.complete(call)

    headers = upstream.requests[-1].headers
    assert headers["authorization"] == "Bearer sk-upstream"
    assert headers["x-team"] == "search"
    assert headers["x-request-id"] == "req-1"
    assert headers["content-type"] == "application/json"


async def test_wrong_api_key_is_rejected_with_the_upstream_status(
        upstream: OpenAIUpstream, base_url: str) -> None:
    upstream.api_key = "sk-upstream"
    async with open_backend(base_url, api_key="sk-wrong") as backend:
        with pytest.raises(UpstreamRejected) as raised:
            await backend.complete(chat_call())

    assert raised.value.status_code == 401
    assert raised.value.code == "invalid_api_key"


async def test_text_completion_returns_text_and_usage(backend: OpenAICompatBackend,
                                                      upstream: OpenAIUpstream) -> None:
    completion = await backend.complete(completion_call("once upon a time", max_tokens=3))

    assert completion.text == "once upon a"
    assert completion.finish_reason == "length"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 3)
    assert upstream.bodies("/v1/completions")[-1]["model"] == "llama-up"


async def test_forced_tool_call_comes_back_in_the_payload(backend: OpenAICompatBackend) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    completion = await backend.complete(chat_call("find it", tools=tools, tool_choice="required"))

    assert completion.finish_reason == "tool_calls"
    assert completion.text == ""
    [tool_call] = completion.payload["choices"][0]["message"]["tool_calls"]
    assert tool_call["function"] == {"name": "lookup", "arguments": '{"echo":"find it"}'}


LOOKUP = [{"type": "function", "function": {"name": "lookup", "description": "Find a record",
                                            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}},
          {"type": "function", "function": {"name": "now"}}]


async def test_tools_tool_choice_and_parallel_tool_calls_reach_the_upstream_as_sent(
        backend: OpenAICompatBackend, upstream: OpenAIUpstream) -> None:
    choice = {"type": "function", "function": {"name": "now"}}
    await backend.complete(chat_call("what time", tools=LOOKUP, tool_choice=choice, parallel_tool_calls=False))
    body = upstream.bodies(CHAT_PATH)[-1]
    assert (body["tools"], body["tool_choice"], body["parallel_tool_calls"]) == (LOOKUP, choice, False)


async def test_streamed_tool_call_deltas_are_relayed_unchanged(backend: OpenAICompatBackend) -> None:
    chunks = await collect(backend, chat_call("find it", tools=LOOKUP, tool_choice="required", stream=True))
    arguments = '{"echo":"find it"}'
    fragments = [arguments[i:i + 8] for i in range(0, len(arguments), 8)]  # what the upstream sends
    deltas = [chunk.payload["choices"][0]["delta"] for chunk in chunks if chunk.has_output]
    assert deltas == [{"tool_calls": [{"index": 0, "id": "call_0", "type": "function",
                                       "function": {"name": "lookup", "arguments": fragments[0]}}]}] + [
        {"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]} for fragment in fragments[1:]]
    assert all(chunk.text == "" for chunk in chunks)  # arguments are output, not text
    assert [chunk.finish_reason for chunk in chunks if chunk.finish_reason] == ["tool_calls"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(fragments)


async def test_embeddings_return_vectors_and_prompt_usage(backend: OpenAICompatBackend,
                                                          upstream: OpenAIUpstream) -> None:
    request = EmbeddingRequest(model="public-embed", input=["one two", "three"], dimensions=4)

    embeddings = await backend.embed(request, "embed-up")

    assert [item["index"] for item in embeddings.payload["data"]] == [0, 1]
    assert all(len(item["embedding"]) == 4 for item in embeddings.payload["data"])
    assert embeddings.usage is not None
    assert (embeddings.usage.prompt_tokens, embeddings.usage.completion_tokens) == (3, 0)
    body = upstream.bodies("/v1/embeddings")[-1]
    assert body == {"model": "embed-up", "input": ["one two", "three"], "dimensions": 4}


async def test_health_is_true_while_the_upstream_answers_and_false_when_it_is_gone(
        backend: OpenAICompatBackend) -> None:
    assert await backend.health() is True
    async with open_backend(f"http://127.0.0.1:{free_port()}/v1") as unreachable:
        assert await unreachable.health() is False


# --- streams ---------------------------------------------------------------------------------------------

async def test_stream_yields_chunks_in_order_and_their_text_concatenates(
        backend: OpenAICompatBackend) -> None:
    chunks = await collect(backend, chat_call("the quick brown fox"))

    assert chunks[0].payload["choices"][0]["delta"]["role"] == "assistant"
    assert not chunks[0].has_output
    assert [chunk.text for chunk in chunks if chunk.has_output] == ["the", " quick", " brown", " fox"]
    assert "".join(chunk.text for chunk in chunks) == "the quick brown fox"
    assert [chunk.finish_reason for chunk in chunks if chunk.finish_reason] == ["stop"]
    assert all(chunk.payload["object"] == "chat.completion.chunk" for chunk in chunks)


async def test_stream_asks_upstream_for_usage_even_when_the_client_did_not(
        backend: OpenAICompatBackend, upstream: OpenAIUpstream) -> None:
    chunks = await collect(backend, chat_call("a b c"))

    [body] = upstream.bodies(CHAT_PATH)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["model"] == "llama-up"
    usage_chunk = chunks[-1]
    assert usage_chunk.payload["choices"] == []
    assert usage_chunk.usage is not None
    assert (usage_chunk.usage.prompt_tokens, usage_chunk.usage.completion_tokens) == (3, 3)


async def test_stream_keeps_the_clients_other_stream_options(backend: OpenAICompatBackend,
                                                             upstream: OpenAIUpstream) -> None:
    call = chat_call(stream=True, stream_options={"include_usage": False, "continuous_usage_stats": True},
                     logit_bias={"50256": -100})

    await collect(backend, call)

    [body] = upstream.bodies(CHAT_PATH)
    assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    assert body["logit_bias"] == {"50256": -100}


async def test_stream_of_text_completion_concatenates_and_reports_usage(
        backend: OpenAICompatBackend) -> None:
    chunks = await collect(backend, completion_call("one two three four", max_tokens=3))

    assert "".join(chunk.text for chunk in chunks) == "one two three"
    assert [chunk.finish_reason for chunk in chunks if chunk.finish_reason] == ["length"]
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (4, 3)


async def test_streamed_tool_call_arguments_count_as_output(backend: OpenAICompatBackend) -> None:
    tools = [{"type": "function", "function": {"name": "lookup"}}]
    call = chat_call("find it", tools=tools, tool_choice={"type": "function", "function": {"name": "lookup"}})

    chunks = await collect(backend, call)

    with_tool_calls = [c for c in chunks if c.payload["choices"] and
                       c.payload["choices"][0]["delta"].get("tool_calls")]
    assert with_tool_calls and all(chunk.has_output for chunk in with_tool_calls)
    arguments = "".join(c.payload["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                        for c in with_tool_calls)
    assert arguments == '{"echo":"find it"}'
    assert [chunk.finish_reason for chunk in chunks if chunk.finish_reason] == ["tool_calls"]


async def test_stream_survives_comments_crlf_and_events_split_across_writes(
        backend: OpenAICompatBackend) -> None:
    chunks = await collect(backend, chat_call("split me up please", fault="sse_quirks"))

    assert "".join(chunk.text for chunk in chunks) == "split me up please"
    assert chunks[-1].usage is not None


async def test_stream_relays_an_event_larger_than_aiohttps_line_limit(backend: OpenAICompatBackend) -> None:
    huge_word = "x" * (1024 * 1024)

    chunks = await collect(backend, chat_call(huge_word))

    assert "".join(chunk.text for chunk in chunks) == huge_word


async def test_streams_reuse_one_pooled_connection(backend: OpenAICompatBackend,
                                                   upstream: OpenAIUpstream) -> None:
    for _ in range(20):
        await collect(backend, chat_call("a b"))

    assert len({recorded.client_port for recorded in upstream.requests}) == 1


async def test_closing_a_stream_early_leaves_the_backend_usable(backend: OpenAICompatBackend) -> None:
    stream = backend.stream(chat_call("w " * 50, fault="slow_tokens:0.01"))
    first = await anext(stream)
    await stream.aclose()

    assert not first.has_output
    assert (await backend.complete(chat_call("still here"))).text == "still here"


# --- errors ----------------------------------------------------------------------------------------------

async def test_connection_refused_is_upstream_unavailable() -> None:
    async with open_backend(f"http://127.0.0.1:{free_port()}/v1", connect_timeout_s=2) as backend:
        with pytest.raises(UpstreamUnavailable):
            await backend.complete(chat_call())
        with pytest.raises(UpstreamUnavailable) as raised:
            await collect(backend, chat_call())

    assert raised.value.status_code == 502


@pytest.mark.parametrize("fault", ["http_500", "http_503"])
async def test_upstream_5xx_is_unavailable_and_answers_502(backend: OpenAICompatBackend, fault: str) -> None:
    with pytest.raises(UpstreamUnavailable) as raised:
        await backend.complete(chat_call(fault=fault))
    with pytest.raises(UpstreamUnavailable) as raised_in_stream:
        await collect(backend, chat_call(fault=fault))

    assert type(raised.value) is UpstreamUnavailable
    assert raised.value.status_code == 502
    assert fault.removeprefix("http_") in raised.value.message
    assert type(raised_in_stream.value) is UpstreamUnavailable


async def test_429_is_rate_limited_with_retry_after_from_the_header(backend: OpenAICompatBackend) -> None:
    with pytest.raises(UpstreamRateLimited) as raised:
        await backend.complete(chat_call(fault="http_429"))
    with pytest.raises(UpstreamRateLimited) as raised_in_stream:
        await collect(backend, chat_call(fault="http_429:2.5"))

    assert raised.value.retry_after_s == 7
    assert raised.value.status_code == 429
    assert raised.value.code == "rate_limit_exceeded"
    assert raised_in_stream.value.retry_after_s == 2.5


async def test_400_is_rejected_with_the_upstreams_status_message_param_and_code(
        backend: OpenAICompatBackend) -> None:
    with pytest.raises(UpstreamRejected) as raised:
        await backend.complete(chat_call(fault="http_400"))

    error = raised.value
    assert type(error) is UpstreamRejected
    assert error.status_code == 400
    assert error.message.startswith("This model's maximum context length is 4096 tokens.")
    assert error.param == "messages"
    assert error.code == "context_length_exceeded"
    assert error.to_body()["error"]["type"] == "invalid_request_error"


async def test_tgi_style_error_string_becomes_the_message(backend: OpenAICompatBackend) -> None:
    with pytest.raises(UpstreamRejected) as raised:
        await backend.complete(chat_call(fault="tgi_error"))

    assert raised.value.status_code == 422
    assert raised.value.message.startswith("Input validation error")


async def test_magic_model_name_selects_a_fault_too(backend: OpenAICompatBackend) -> None:
    call = BackendCall(endpoint="chat", request=chat_call().request, upstream_model="fault/http_503",
                       request_id="req-1")

    with pytest.raises(UpstreamUnavailable):
        await backend.complete(call)


async def test_headers_slower_than_read_timeout_are_upstream_timeout(base_url: str,
                                                                    upstream: OpenAIUpstream) -> None:
    async with open_backend(base_url, read_timeout_s=0.3) as backend:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout) as raised:
            await backend.complete(chat_call(fault="slow_headers:5"))
        with pytest.raises(UpstreamTimeout):
            await collect(backend, chat_call(fault="slow_headers:5"))
        elapsed_s = time.monotonic() - started

    assert raised.value.status_code == 504
    assert elapsed_s < 2


async def test_silence_before_the_first_token_beyond_read_timeout_is_upstream_timeout(
        base_url: str, upstream: OpenAIUpstream) -> None:
    async with open_backend(base_url, read_timeout_s=0.3) as backend:
        chunks, _ = await collect_until_error(backend, chat_call(fault="slow_tokens:5"), UpstreamTimeout)

    assert not any(chunk.has_output for chunk in chunks)


async def test_connection_dropped_after_output_is_stream_broken(backend: OpenAICompatBackend) -> None:
    chunks, _ = await collect_until_error(backend, chat_call("a b c d e", fault="drop_mid_stream:2"),
                                          UpstreamStreamBroken)

    assert [chunk.text for chunk in chunks if chunk.has_output] == ["a", " b"]


async def test_connection_dropped_before_output_is_unavailable_so_it_can_be_retried(
        backend: OpenAICompatBackend) -> None:
    chunks, error = await collect_until_error(backend, chat_call(fault="drop_mid_stream:0"),
                                              UpstreamUnavailable)

    assert not isinstance(error, UpstreamStreamBroken)
    assert not any(chunk.has_output for chunk in chunks)


async def test_whole_answer_cut_short_is_unavailable(backend: OpenAICompatBackend) -> None:
    with pytest.raises(UpstreamUnavailable):
        await backend.complete(chat_call(fault="drop_mid_stream"))


async def test_error_object_mid_stream_is_stream_broken(backend: OpenAICompatBackend) -> None:
    chunks, error = await collect_until_error(backend, chat_call("a b c d", fault="error_mid_stream:1"),
                                              UpstreamStreamBroken)

    assert "The server had an error" in str(error)
    assert [chunk.text for chunk in chunks if chunk.has_output] == ["a"]


async def test_clean_close_without_done_is_stream_broken(backend: OpenAICompatBackend) -> None:
    chunks, error = await collect_until_error(backend, chat_call("a b", fault="no_done"),
                                              UpstreamStreamBroken)

    assert "[DONE]" in str(error)
    assert "".join(chunk.text for chunk in chunks) == "a b"


async def test_app_wide_fault_heals_after_its_count(backend: OpenAICompatBackend,
                                                    upstream: OpenAIUpstream) -> None:
    upstream.fault, upstream.fault_times = "http_500", 1

    with pytest.raises(UpstreamUnavailable):
        await backend.complete(chat_call())
    assert (await backend.complete(chat_call("ok now"))).text == "ok now"


async def _garbage_event(request: Request) -> Response:
    return Response(b"data: {not json\n\ndata: [DONE]\n\n", media_type="text/event-stream")


async def test_an_event_that_is_not_json_is_an_upstream_failure_not_a_crash() -> None:
    with serve_app(Starlette(routes=[Route(CHAT_PATH, _garbage_event, methods=["POST"])])) as url:
        async with open_backend(url + "/v1") as backend:
            with pytest.raises(UpstreamUnavailable) as raised:
                await collect(backend, chat_call())

    assert "invalid JSON" in raised.value.message


# --- credentials in base_url -----------------------------------------------------------------------------

SECRETS = ("admin", "S3cretPW", "QTOKEN123")


def with_credentials(url: str) -> str:
    """`url` (http://host:port) with user:password@ and a query token, as the hardening probe configured it."""
    return url.replace("http://", "http://admin:S3cretPW@") + "/v1?token=QTOKEN123"


def assert_names_backend_only(error: Exception) -> None:
    message = str(error)
    assert "`fake`" in message
    assert not any(secret in message for secret in SECRETS), message
    assert "127.0.0.1" not in message and "http" not in message, message


async def test_unreachable_upstream_is_named_by_backend_never_by_its_url() -> None:
    async with open_backend(with_credentials(f"http://127.0.0.1:{free_port()}"), connect_timeout_s=2) as backend:
        with pytest.raises(UpstreamUnavailable) as refused:
            await backend.complete(chat_call())
        with pytest.raises(UpstreamUnavailable) as refused_in_stream:
            await collect(backend, chat_call())

    assert refused.value.message == "cannot connect to upstream `fake`: connection refused"
    assert_names_backend_only(refused_in_stream.value)


@pytest.mark.parametrize(("fault", "error_type"), [("slow_headers:5", UpstreamTimeout),
                                                   ("drop_mid_stream:2", UpstreamStreamBroken),
                                                   ("drop_mid_stream:0", UpstreamUnavailable)])
async def test_upstream_failures_name_the_backend_never_its_url(served: tuple[OpenAIUpstream, str],
                                                                upstream: OpenAIUpstream, fault: str,
                                                                error_type: type[Exception]) -> None:
    async with open_backend(with_credentials(served[1]), read_timeout_s=0.3) as backend:
        _, error = await collect_until_error(backend, chat_call("a b c d", fault=fault), error_type)

    assert_names_backend_only(error)


async def test_url_credentials_go_as_basic_auth_and_its_query_after_every_path() -> None:
    seen: list[tuple[str, str, str | None]] = []

    async def answer(request: Request) -> Response:
        seen.append((request.url.path, request.url.query, request.headers.get("authorization")))
        return Response(b'{"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]}',
                        media_type="application/json")

    app = Starlette(routes=[Route(CHAT_PATH, answer, methods=["POST"]), Route("/v1/models", answer)])
    with serve_app(app) as url:
        async with open_backend(url.replace("http://", "http://ad%40min:S3cret%20PW@") + "/v1/?token=Q") as backend:
            completion = await backend.complete(chat_call())
            healthy = await backend.health()

    assert completion.text == "ok" and healthy
    basic = "Basic " + base64.b64encode(b"ad@min:S3cret PW").decode()
    assert seen == [(CHAT_PATH, "token=Q", basic), ("/v1/models", "token=Q", basic)]
