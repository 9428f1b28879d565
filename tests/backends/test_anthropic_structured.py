"""response_format on Anthropic: a forced tool whose input is the answer, whole and streamed, against the
loopback Anthropic server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest

from sluice.backends._anthropic_format import output_tool
from sluice.backends._anthropic_translate import messages_body
from sluice.backends.anthropic import AnthropicBackend
from sluice.backends.types import BackendCall, ChatCompletionRequest
from sluice.config import AnthropicBackendConfig
from tests.support.anthropic_server import API_KEY, TOOL_INPUT, AnthropicServer
from tests.support.servers import serve_app

WEATHER = {"type": "object", "additionalProperties": False, "required": ["city", "unit"],
           "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}}}
LIST = {"type": "array", "items": {"$ref": "#/$defs/city"}, "$defs": {"city": {"type": "string"}}}


def schema_format(schema: dict[str, Any], name: str = "weather") -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}


def call_for(response_format: dict[str, Any] | None, **params: Any) -> BackendCall:
    request = ChatCompletionRequest(model="claude", messages=[{"role": "user", "content": "Paris weather"}],
                                    response_format=response_format, **params)
    return BackendCall(endpoint="chat", request=request, upstream_model="claude-x", request_id="r")


def test_a_schema_becomes_a_forced_tool() -> None:
    body = messages_body(call_for(schema_format(WEATHER)), default_max_tokens=100, stream=False)
    (tool,) = body["tools"]
    assert tool["name"] == "weather" and tool["input_schema"] == WEATHER and "answer" in tool["description"]
    assert body["tool_choice"] == {"type": "tool", "name": "weather"}


def test_json_mode_forces_an_object_and_text_forces_nothing() -> None:
    body = messages_body(call_for({"type": "json_object"}), default_max_tokens=100, stream=False)
    assert body["tools"][0]["input_schema"] == {"type": "object"} and body["tool_choice"]["name"] == "json_output"
    assert "tools" not in messages_body(call_for({"type": "text"}), default_max_tokens=100, stream=False)


def test_a_root_that_is_not_an_object_is_wrapped_with_its_defs_at_the_root() -> None:
    tool = output_tool(call_for(schema_format(LIST, "cities")).request)
    assert tool is not None and tool.wrapped
    assert tool.input_schema["properties"]["value"] == {"type": "array", "items": {"$ref": "#/$defs/city"}}
    assert tool.input_schema["$defs"] == LIST["$defs"]
    assert tool.answer({"value": ["Paris", "Oslo"]}) == '["Paris","Oslo"]'


def test_client_tools_are_not_overridden() -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    body = messages_body(call_for(schema_format(WEATHER), tools=[tool]), default_max_tokens=100, stream=False)
    assert [t["name"] for t in body["tools"]] == ["lookup"] and "tool_choice" not in body


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve_app(AnthropicServer().app) as base_url:
        yield base_url


@pytest.fixture
async def backend(server: str) -> AsyncIterator[AnthropicBackend]:
    adapter = AnthropicBackend("claude", AnthropicBackendConfig(type="anthropic", base_url=server, api_key=API_KEY))
    await adapter.start()
    yield adapter
    await adapter.close()


async def test_the_tool_input_is_the_answer(backend: AnthropicBackend) -> None:
    answer = await backend.complete(call_for(schema_format(WEATHER)))
    message = answer.payload["choices"][0]["message"]
    assert orjson.loads(message["content"]) == TOOL_INPUT and "tool_calls" not in message
    assert answer.text == message["content"] and answer.finish_reason == "stop"  # the fake also said "Let me check."


async def test_streamed_the_tool_input_arrives_as_content(backend: AnthropicBackend) -> None:
    chunks = [chunk async for chunk in backend.stream(call_for(schema_format(WEATHER), stream=True))]
    assert orjson.loads("".join(chunk.text for chunk in chunks)) == TOOL_INPUT
    assert sum(1 for chunk in chunks if chunk.text) > 1  # in pieces, as generated
    assert not any(choice["delta"].get("tool_calls") for chunk in chunks for choice in chunk.payload["choices"])
    assert [chunk.finish_reason for chunk in chunks if chunk.finish_reason] == ["stop"]
