"""Tool calls pass through the gateway to backends that make them: an OpenAI-compatible upstream gets the tool
fields as sent and its calls come back unchanged, Anthropic's are translated both ways — driven by the openai SDK,
streamed and not. Malformed tools are a 400 before any backend is asked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from tests.support.anthropic_server import API_KEY, TOOL_INPUT, AnthropicServer
from tests.support.gateway import RunningGateway, run_gateway, upstream_config
from tests.support.openai_server import OpenAIUpstream, make_openai_upstream
from tests.support.servers import serve_app

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}},
         {"type": "function", "function": {"name": "now"}}]
MESSAGES = [{"role": "user", "content": "what is the weather in Rome"}]


@pytest.fixture
def openai_gateway(tmp_path: Path) -> Iterator[tuple[RunningGateway, OpenAIUpstream]]:
    upstream = make_openai_upstream()
    with serve_app(upstream) as url, run_gateway(upstream_config(url, tmp_path / "log.db",
                                                                 cache={"exact": {"enabled": False}})) as gw:
        yield gw, upstream


@pytest.fixture
def claude_gateway(tmp_path: Path) -> Iterator[tuple[RunningGateway, AnthropicServer]]:
    upstream = AnthropicServer()
    with serve_app(upstream.app) as base_url:
        config = {"store": {"url": f"sqlite:///{tmp_path / 'log.db'}"},
                  "backends": {"claude": {"type": "anthropic", "base_url": base_url, "api_key": API_KEY}},
                  "models": {"m": {"targets": [{"backend": "claude", "model": "claude-3-5-haiku-latest"}]}}}
        with run_gateway(config) as gw:
            yield gw, upstream


def calls(completion: Any) -> list[tuple[str, str, str]]:
    return [(call.id, call.function.name, call.function.arguments)
            for call in completion.choices[0].message.tool_calls or []]


def test_an_openai_compatible_upstream_gets_the_tool_fields_and_its_calls_come_back_unchanged(
        openai_gateway: tuple[RunningGateway, OpenAIUpstream]) -> None:
    gw, upstream = openai_gateway
    client = gw.client()
    choice = {"type": "function", "function": {"name": "now"}}
    whole = client.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS, tool_choice=choice,  # type: ignore[arg-type]
                                           parallel_tool_calls=False)
    body = upstream.bodies("/v1/chat/completions")[-1]
    assert (body["tools"], body["tool_choice"], body["parallel_tool_calls"]) == (TOOLS, choice, False)
    assert calls(whole) == [("call_0", "now", orjson.dumps({"echo": MESSAGES[0]["content"]}).decode())]
    assert whole.choices[0].finish_reason == "tool_calls" and whole.choices[0].message.content is None

    with client.chat.completions.stream(model="m", messages=MESSAGES, tools=TOOLS, tool_choice=choice) as stream:  # type: ignore[arg-type]
        streamed = stream.get_final_completion()
    assert calls(streamed) == calls(whole)
    assert streamed.choices[0].finish_reason == "tool_calls"


def test_anthropic_tool_use_comes_back_as_openai_tool_calls(
        claude_gateway: tuple[RunningGateway, AnthropicServer]) -> None:
    gw, upstream = claude_gateway
    client = gw.client()
    whole = client.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS, tool_choice="required",  # type: ignore[arg-type]
                                           parallel_tool_calls=False)
    sent = upstream.requests[-1].body
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert sent["tools"][0] == {"name": "get_weather", "description": "Weather in a city",
                                "input_schema": TOOLS[0]["function"]["parameters"]}
    [(call_id, name, arguments)] = calls(whole)
    assert call_id.startswith("toolu_") and name == "get_weather" and orjson.loads(arguments) == TOOL_INPUT
    assert whole.choices[0].finish_reason == "tool_calls"

    with client.chat.completions.stream(model="m", messages=MESSAGES, tools=TOOLS, tool_choice="required") as stream:  # type: ignore[arg-type]
        streamed = stream.get_final_completion()
    [(_, streamed_name, streamed_arguments)] = calls(streamed)
    assert (streamed_name, orjson.loads(streamed_arguments)) == ("get_weather", TOOL_INPUT)
    assert streamed.choices[0].finish_reason == "tool_calls"


def test_malformed_tools_are_refused_before_any_backend_is_asked(
        openai_gateway: tuple[RunningGateway, OpenAIUpstream]) -> None:
    gw, upstream = openai_gateway
    sent_before = len(upstream.bodies("/v1/chat/completions"))
    bad = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(model="m", messages=MESSAGES, tools=[*TOOLS, bad])  # type: ignore[arg-type, list-item]
    assert caught.value.body["param"] == "tools[2].function.name"  # type: ignore[index]
    assert "offered twice" in caught.value.body["message"]  # type: ignore[index]
    assert len(upstream.bodies("/v1/chat/completions")) == sent_before
