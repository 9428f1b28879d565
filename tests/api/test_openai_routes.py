"""The gateway end to end, with the official openai SDK as the client and a real loopback upstream."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import orjson
import pytest

from tests.support.gateway import RunningGateway, run_gateway, upstream_config
from tests.support.openai_server import OpenAIUpstream

USER = [{"role": "user", "content": "alpha beta gamma delta"}]


def test_chat_completion_relays_answer_with_public_model_and_headers(gateway: RunningGateway,
                                                                     upstream: tuple[OpenAIUpstream, str]) -> None:
    fake, _ = upstream
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="m", messages=USER, extra_headers={"x-request-id": "req-123"})
    answer = raw.parse()
    assert answer.choices[0].message.content == "alpha beta gamma delta"
    assert answer.model == "m"
    assert answer.usage is not None and answer.usage.completion_tokens == 4
    gateway_id = raw.headers["x-request-id"]
    assert gateway_id != "req-123" and len(gateway_id) == 32  # the gateway's own id, not the client's
    assert raw.headers["x-client-request-id"] == "req-123"  # the client's, echoed
    assert float(raw.headers["x-sluice-overhead-ms"]) >= 0
    assert raw.headers["x-sluice-target"] == "up"
    assert fake.requests[-1].body["model"] == "up-model"
    assert fake.requests[-1].headers["x-request-id"] == gateway_id  # one id end to end


def test_generated_request_id_is_returned(gateway: RunningGateway) -> None:
    client = gateway.client()
    ids = {client.chat.completions.with_raw_response.create(model="m", messages=USER).headers["x-request-id"]
           for _ in range(3)}
    assert len(ids) == 3 and all(len(i) == 32 for i in ids)


def test_an_unusable_client_request_id_is_ignored_not_echoed(gateway: RunningGateway) -> None:
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="m", messages=USER, extra_headers={"x-request-id": "x" * 129})
    assert len(raw.headers["x-request-id"]) == 32 and "x-client-request-id" not in raw.headers


def test_stream_with_usage_gives_text_then_usage(gateway: RunningGateway) -> None:
    chunks = list(gateway.client().chat.completions.create(
        model="m", messages=USER, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "alpha beta gamma delta"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert all(c.model == "m" for c in chunks)


def test_stream_without_usage_hides_usage_but_asks_upstream_for_it(
        gateway: RunningGateway, upstream: tuple[OpenAIUpstream, str]) -> None:
    fake, _ = upstream
    chunks = list(gateway.client().chat.completions.create(model="m", messages=USER, stream=True))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    assert fake.requests[-1].body["stream_options"] == {"include_usage": True}


def test_openai_parameters_pass_through(gateway: RunningGateway, upstream: tuple[OpenAIUpstream, str]) -> None:
    fake, _ = upstream
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    answer = gateway.client().chat.completions.create(
        model="m", messages=USER, tools=tools, tool_choice="required", response_format={"type": "json_object"},
        n=2, stop=["\n\n"], seed=7, user="u-1", max_tokens=3, max_completion_tokens=3, temperature=0.2,
        extra_body={"top_k": 5, "repetition_penalty": 1.1})
    sent = fake.requests[-1].body
    for key, value in {"tools": tools, "tool_choice": "required", "response_format": {"type": "json_object"},
                       "n": 2, "stop": ["\n\n"], "seed": 7, "user": "u-1", "max_tokens": 3,
                       "max_completion_tokens": 3, "temperature": 0.2, "top_k": 5,
                       "repetition_penalty": 1.1}.items():
        assert sent[key] == value, key
    assert len(answer.choices) == 2
    call = answer.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "lookup"
    assert answer.choices[0].finish_reason == "tool_calls"


def test_completions_streaming_and_not(gateway: RunningGateway) -> None:
    client = gateway.client()
    whole = client.completions.create(model="m", prompt="one two three")
    assert whole.choices[0].text == "one two three"
    pieces = list(client.completions.create(model="m", prompt="one two three", stream=True))
    assert "".join(p.choices[0].text for p in pieces if p.choices) == "one two three"


def test_embeddings(gateway: RunningGateway) -> None:
    result = gateway.client().embeddings.create(model="m", input=["a b", "c"])
    assert [item.index for item in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 8
    assert result.model == "m"


def test_models_lists_public_names(gateway: RunningGateway) -> None:
    models = gateway.client().models.list()
    assert [model.id for model in models] == ["m"]


@pytest.mark.parametrize(("body", "status", "param"), [
    (b"{not json", 400, None),
    (b"[1, 2]", 400, None),
    (b'{"model": "m"}', 400, "messages"),
    (b'{"model": "m", "messages": [{"content": "x"}]}', 400, "messages.0.role"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 9}', 400, "temperature"),
    (b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}', 404, "model"),
])
def test_bad_requests_get_openai_errors_naming_the_field(gateway: RunningGateway, body: bytes, status: int,
                                                         param: str | None) -> None:
    response = httpx.post(gateway.url + "/v1/chat/completions", content=body,
                          headers={"content-type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert error["param"] == param
    assert error["message"]
    assert error["type"] == "invalid_request_error"


def test_oversized_body_is_413(upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    config = upstream_config(upstream[1], tmp_path / "db.sqlite", server={"max_body_bytes": 1000})
    with run_gateway(config) as gw:
        big = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 5000}]})
        response = httpx.post(gw.url + "/v1/chat/completions", content=big)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "body_too_large"
        chunked = httpx.post(gw.url + "/v1/chat/completions", content=iter([big[:600], big[600:]]))
        assert chunked.status_code == 413


@pytest.mark.parametrize(("fault", "status", "error_type"), [
    ("http_429", 429, openai.RateLimitError),
    ("http_500", 502, openai.APIStatusError),
    ("http_503", 502, openai.APIStatusError),
    ("http_400", 400, openai.BadRequestError),
    ("slow_headers:5", 504, openai.APIStatusError),
])
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_errors_are_mapped(gateway: RunningGateway, upstream: tuple[OpenAIUpstream, str], fault: str,
                                    status: int, error_type: type[Exception], stream: bool) -> None:
    upstream[0].fault = fault
    with pytest.raises(error_type) as caught:
        result = gateway.client().chat.completions.create(model="m", messages=USER, stream=stream)
        list(result) if stream else None  # type: ignore[call-overload]
    error = caught.value
    assert isinstance(error, openai.APIStatusError)
    assert error.status_code == status
    if status == 429:
        assert error.response.headers["retry-after"] == "7"
    assert error.response.json()["error"]["message"]


def test_upstream_refusing_connections_is_502(tmp_path: Path) -> None:
    from tests.support.servers import free_port

    config = upstream_config(f"http://127.0.0.1:{free_port()}", tmp_path / "db.sqlite")
    with run_gateway(config) as gw:
        with pytest.raises(openai.APIStatusError) as caught:
            gw.client().chat.completions.create(model="m", messages=USER)
        assert caught.value.status_code == 502


@pytest.mark.parametrize("fault", ["drop_mid_stream:2", "error_mid_stream:2", "no_done:2"])
def test_stream_dying_midway_ends_with_error_event_and_clean_close(
        gateway: RunningGateway, upstream: tuple[OpenAIUpstream, str], fault: str) -> None:
    upstream[0].fault = fault
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", timeout=10,
                      json={"model": "m", "messages": USER, "stream": True}) as response:
        assert response.status_code == 200
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] != "data: [DONE]"
    last = orjson.loads(events[-1][len("data: "):])
    assert last["error"]["message"]
    texts = [orjson.loads(e[6:])["choices"][0]["delta"].get("content") for e in events[:-1]]
    assert "".join(t or "" for t in texts) == "alpha beta"
    # the SDK surfaces it as an error, not a hang
    with pytest.raises(openai.APIError):
        list(gateway.client().chat.completions.create(model="m", messages=USER, stream=True))


def test_master_key_protects_v1_and_admin(upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    config = upstream_config(upstream[1], tmp_path / "db.sqlite", server={"master_key": "sk-master"})
    with run_gateway(config) as gw:
        with pytest.raises(openai.AuthenticationError):
            gw.client(api_key="wrong").chat.completions.create(model="m", messages=USER)
        assert gw.client(api_key="sk-master").chat.completions.create(model="m", messages=USER).choices
        assert httpx.get(gw.url + "/admin/status").status_code == 401
        status = httpx.get(gw.url + "/admin/status", headers={"authorization": "Bearer sk-master"})
        assert status.status_code == 200
        assert status.json()["backends"]["up"]["healthy"] is True
        assert httpx.get(gw.url + "/health/live").status_code == 200
        assert httpx.get(gw.url + "/metrics").status_code == 401  # it names keys, teams and their spend
        assert httpx.get(gw.url + "/metrics", headers={"authorization": "Bearer sk-master"}).status_code == 200


def test_unknown_route_and_method_are_openai_shaped(gateway: RunningGateway) -> None:
    missing = httpx.get(gateway.url + "/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = httpx.get(gateway.url + "/v1/chat/completions")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


def test_ready_once_backends_and_store_are_up(gateway: RunningGateway) -> None:
    ready = httpx.get(gateway.url + "/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "store": "ready", "backends": {"up": "ready"}, "cache": {}}


def test_chunks_that_arrive_together_still_reach_the_client_whole_and_in_order(
        gateway: RunningGateway, upstream: tuple[OpenAIUpstream, str]) -> None:
    upstream[0].fault = "sse_quirks"  # comments, CRLF, events split across reads
    words = " ".join(f"w{i}" for i in range(40))
    chunks = list(gateway.client().chat.completions.create(
        model="m", messages=[{"role": "user", "content": words}], stream=True,
        stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == words
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 40
