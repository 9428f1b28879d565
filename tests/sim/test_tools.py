"""The simulator calls tools when a request's tool_choice asks for (or allows) it: arguments valid against each tool's
schema, OpenAI's answer and streaming shapes, token counts that are the calls' real tokens — through a real gateway
and the official openai SDK, so agent workloads can be load-tested without a GPU."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from jsonschema import Draft202012Validator
from openai.lib.streaming.chat import ChatCompletionStreamState

from sluice.sim import create_app
from sluice.sim.structured import token_pieces
from tests.sim.support import MODEL, chat_call, make_simulator
from tests.support.gateway import RunningGateway, records, run_gateway
from tests.support.servers import serve_app

TOKENIZER = "llama-3.1-8b"
WEATHER_ARGS = {"type": "object", "additionalProperties": False, "required": ["city", "unit"],
                "properties": {"city": {"type": "string", "maxLength": 40},
                               "unit": {"enum": ["celsius", "fahrenheit"]},
                               "days": {"type": "integer", "minimum": 1, "maximum": 14}}}
FLIGHT_ARGS = {"$ref": "#/$defs/booking", "$defs": {
    "airport": {"type": "string", "pattern": "^[A-Z]{3}$"},
    "booking": {"type": "object", "required": ["origin", "destination", "date", "passengers"],
                "properties": {"origin": {"$ref": "#/$defs/airport"}, "destination": {"$ref": "#/$defs/airport"},
                               "date": {"type": "string", "format": "date"},
                               "passengers": {"type": "array", "minItems": 1, "maxItems": 4,
                                              "items": {"type": "object", "required": ["name"],
                                                        "properties": {"name": {"type": "string"}}}}}}}}
SCHEMAS = {"get_weather": WEATHER_ARGS, "book_flight": FLIGHT_ARGS, "get_time": {"type": "object"}}
TOOLS = [{"type": "function", "function": {"name": name, "description": f"{name} tool", "parameters": schema}}
         for name, schema in SCHEMAS.items()]
MESSAGES = [{"role": "user", "content": "Book me a flight to Oslo and tell me the weather there."}]


def sim_config(db: Path, *, cache: bool = False, **sim: Any) -> dict[str, Any]:
    """A simulated H100 behind model `agent`; the exact cache off unless asked for (seeded requests would hit it)."""
    backend = {"type": "sim", "model": "llama-3.1-8b", "gpu": "h100-sxm", "max_model_len": 8192, **sim}
    return {"store": {"url": f"sqlite:///{db}", "flush_interval_s": 0.05}, "cache": {"exact": {"enabled": cache}},
            "backends": {"h100": backend}, "models": {"agent": {"targets": [{"backend": "h100", "model": "llama"}]}}}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningGateway, Path]]:
    db = tmp_path_factory.mktemp("tools") / "log.db"
    with run_gateway(sim_config(db)) as gw:
        yield gw, db


def validate(call: Any) -> dict[str, Any]:
    arguments = json.loads(call.function.arguments)
    Draft202012Validator(SCHEMAS[call.function.name],
                         format_checker=Draft202012Validator.FORMAT_CHECKER).validate(arguments)
    return arguments  # type: ignore[no-any-return]


def call_tokens(name: str, arguments: str) -> int:
    """What one call costs: `{"name": "<tool>", "arguments": ` + the arguments + `}`, in real tokens."""
    return len(token_pieces(f'{{"name": "{name}", "arguments": ', TOKENIZER)) + \
        len(token_pieces(arguments, TOKENIZER)) + 1


def test_required_gets_calls_whose_arguments_validate_against_the_schema(
        gateway: tuple[RunningGateway, Path]) -> None:
    client = gateway[0].client()
    for seed in range(5):
        answer = client.chat.completions.create(model="agent", messages=MESSAGES, tools=TOOLS,  # type: ignore[arg-type]
                                                tool_choice="required", seed=seed)
        choice = answer.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        calls = choice.message.tool_calls or []
        assert 1 <= len(calls) <= 3
        for call in calls:
            assert call.type == "function" and call.id.startswith("call_") and len(call.id) == 29
            validate(call)
        assert len({call.id for call in calls}) == len(calls)
        assert answer.usage is not None
        assert answer.usage.completion_tokens == sum(call_tokens(c.function.name, c.function.arguments)
                                                     for c in calls)


def test_a_streamed_answer_accumulates_into_the_same_calls(gateway: tuple[RunningGateway, Path]) -> None:
    client = gateway[0].client()
    whole = client.chat.completions.create(model="agent", messages=MESSAGES, tools=TOOLS,  # type: ignore[arg-type]
                                           tool_choice="required", seed=5)
    with client.chat.completions.stream(model="agent", messages=MESSAGES, tools=TOOLS,  # type: ignore[arg-type]
                                        tool_choice="required", seed=5,
                                        stream_options={"include_usage": True}) as stream:
        streamed = stream.get_final_completion()
    assert streamed.choices[0].finish_reason == "tool_calls"
    got = [(c.function.name, c.function.arguments) for c in streamed.choices[0].message.tool_calls or []]
    assert got == [(c.function.name, c.function.arguments) for c in whole.choices[0].message.tool_calls or []]
    assert streamed.usage is not None and whole.usage is not None
    assert streamed.usage.completion_tokens == whole.usage.completion_tokens


def test_streamed_deltas_are_in_openais_format(gateway: tuple[RunningGateway, Path]) -> None:
    body = {"model": "agent", "messages": MESSAGES, "tools": TOOLS, "tool_choice": "required", "seed": 5,
            "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", gateway[0].url + "/v1/chat/completions", json=body) as response:  # the wire, as sent
        chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    deltas = [call for chunk in chunks if chunk["choices"]
              for call in chunk["choices"][0]["delta"].get("tool_calls", [])]
    openings = [delta for delta in deltas if "id" in delta]
    assert len(openings) == 2  # this seed draws two calls
    for index, opening in enumerate(openings):  # a call's first delta: index, id, type, name, empty arguments
        assert opening == {"index": index, "id": opening["id"], "type": "function",
                           "function": {"name": opening["function"]["name"], "arguments": ""}}
        assert opening["function"]["name"] in SCHEMAS
    arguments = ["" for _ in openings]
    for delta in deltas[1:]:
        if "id" not in delta:  # then fragments of its arguments
            assert set(delta) == {"index", "function"} and set(delta["function"]) == {"arguments"}
            arguments[delta["index"]] += delta["function"]["arguments"]
    for opening, text in zip(openings, arguments, strict=True):
        Draft202012Validator(SCHEMAS[opening["function"]["name"]]).validate(json.loads(text))
    finishes = [chunk["choices"][0]["finish_reason"] for chunk in chunks
                if chunk["choices"] and chunk["choices"][0]["finish_reason"]]
    assert finishes == ["tool_calls"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


def test_a_named_tool_is_the_one_called_once(gateway: tuple[RunningGateway, Path]) -> None:
    client = gateway[0].client()
    for seed in range(4):
        answer = client.chat.completions.create(
            model="agent", messages=MESSAGES, tools=TOOLS, seed=seed,  # type: ignore[arg-type]
            tool_choice={"type": "function", "function": {"name": "book_flight"}})
        [call] = answer.choices[0].message.tool_calls or []
        assert call.function.name == "book_flight"
        assert validate(call)["origin"].isupper()


def test_none_answers_in_text(gateway: tuple[RunningGateway, Path]) -> None:
    answer = gateway[0].client().chat.completions.create(model="agent", messages=MESSAGES, tools=TOOLS,  # type: ignore[arg-type]
                                                         tool_choice="none", max_tokens=20)
    assert answer.choices[0].message.tool_calls is None
    assert answer.choices[0].message.content and answer.choices[0].finish_reason == "length"


async def test_parallel_calls_come_only_where_allowed() -> None:
    sim = make_simulator()  # a virtual clock: as many answers as the test wants, at once
    await sim.start()

    async def counts(tools: list[dict[str, Any]], **params: Any) -> list[int]:
        answers = [await sim.complete(chat_call("go", tools=tools, tool_choice="required", seed=seed, **params))
                   for seed in range(30)]
        return [len(answer.payload["choices"][0]["message"]["tool_calls"]) for answer in answers]

    try:
        parallel = await counts(TOOLS)
        assert set(parallel) == {1, 2, 3}
        assert set(await counts(TOOLS, parallel_tool_calls=False)) == {1}
        assert set(await counts(TOOLS[:2])) == {1, 2}  # never more calls than tools offered
        assert set(await counts(TOOLS[:1])) == {1}
    finally:
        await sim.stop()


def test_parallel_tool_calls_false_holds_through_the_gateway(gateway: tuple[RunningGateway, Path]) -> None:
    client = gateway[0].client()
    for seed in range(3):
        answer = client.chat.completions.create(model="agent", messages=MESSAGES, tools=TOOLS,  # type: ignore[arg-type]
                                                tool_choice="required", seed=seed, parallel_tool_calls=False)
        assert len(answer.choices[0].message.tool_calls or []) == 1


def test_tool_definitions_count_as_prompt_tokens(gateway: tuple[RunningGateway, Path]) -> None:
    client = gateway[0].client()
    plain = client.chat.completions.create(model="agent", messages=MESSAGES, max_tokens=1)
    offered = client.chat.completions.create(model="agent", messages=MESSAGES, tools=TOOLS,  # type: ignore[arg-type]
                                             tool_choice="none", max_tokens=1)
    assert plain.usage is not None and offered.usage is not None
    assert offered.usage.prompt_tokens - plain.usage.prompt_tokens > 100  # three schemas' worth


def test_the_request_log_records_usage_of_tool_call_answers(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with run_gateway(sim_config(db)) as gw:  # closing the gateway writes the log
        client = gw.client()
        whole = client.chat.completions.create(model="agent", messages=MESSAGES, tools=TOOLS,  # type: ignore[arg-type]
                                               tool_choice="required", seed=1,
                                               extra_headers={"x-request-id": "tools-whole"})
        streamed = list(client.chat.completions.create(model="agent", messages=MESSAGES, tools=TOOLS,  # type: ignore[arg-type]
                                                       tool_choice="required", seed=1, stream=True,
                                                       extra_headers={"x-request-id": "tools-stream"}))
    assert streamed[-1].choices[0].finish_reason == "tool_calls"
    rows = {row.client_request_id: row for row in records(db)}
    assert whole.usage is not None
    for request_id in ("tools-whole", "tools-stream"):
        row = rows[request_id]
        assert row.finish_reason == "tool_calls" and not row.tokens_estimated
        assert (row.prompt_tokens, row.completion_tokens) == (whole.usage.prompt_tokens,
                                                              whole.usage.completion_tokens)


def test_tool_schemas_that_are_not_json_schema_are_a_400_naming_the_tool(
        gateway: tuple[RunningGateway, Path]) -> None:
    bad = {"type": "function", "function": {"name": "book_hotel", "parameters": {
        "type": "object", "properties": {"nights": {"type": "int"}}}}}
    with pytest.raises(openai.BadRequestError) as caught:
        gateway[0].client().chat.completions.create(model="agent", messages=MESSAGES, tools=[*TOOLS, bad],  # type: ignore[arg-type]
                                                    tool_choice="required")
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["param"] == "tools[3].function.parameters" and error["code"] == "invalid_function_parameters"
    assert "`book_hotel`" in error["message"] and "properties.nights.type" in error["message"]
    with pytest.raises(openai.BadRequestError) as unknown:
        gateway[0].client().chat.completions.create(model="agent", messages=MESSAGES, tools=TOOLS,  # type: ignore[arg-type]
                                                    tool_choice={"type": "function", "function": {"name": "fly"}})
    assert unknown.value.body["param"] == "tool_choice.function.name"  # type: ignore[index]


@pytest.mark.parametrize(("rate", "expected"), [(0.0, {False}), (1.0, {True}), (0.5, {False, True})])
async def test_auto_calls_a_tool_at_the_configured_rate(rate: float, expected: set[bool]) -> None:
    sim = make_simulator()
    sim.tool_call_rate = rate
    await sim.start()
    try:
        answers = [await sim.complete(chat_call(f"question {i}", tools=TOOLS, tool_choice="auto"))
                   for i in range(30)]
    finally:
        await sim.stop()
    called = [answer.finish_reason == "tool_calls" for answer in answers]
    assert set(called) == expected
    if rate == 0.5:
        assert 8 <= sum(called) <= 22
    assert all(bool(a.payload["choices"][0]["message"].get("tool_calls")) == c for a, c in zip(answers, called,
                                                                                               strict=True))


def test_a_cached_tool_call_answer_replays_as_the_same_calls(tmp_path: Path) -> None:
    with run_gateway(sim_config(tmp_path / "log.db", cache=True)) as gw:
        client = gw.client()
        first = client.chat.completions.create(model="agent", messages=MESSAGES, tools=TOOLS,  # type: ignore[arg-type]
                                               tool_choice="required", seed=3)
        raw = client.chat.completions.with_raw_response.create(model="agent", messages=MESSAGES, tools=TOOLS,  # type: ignore[arg-type]
                                                               tool_choice="required", seed=3, stream=True)
        assert raw.headers["x-sluice-cache"] == "hit-exact"
        state = ChatCompletionStreamState()  # what the SDK's stream helper folds the chunks with
        for chunk in raw.parse():
            state.handle_chunk(chunk)
        replayed = state.get_final_completion()

    def calls(answer: Any) -> list[tuple[str, str, str]]:
        return [(c.id, c.function.name, c.function.arguments) for c in answer.choices[0].message.tool_calls]

    assert calls(replayed) == calls(first) and replayed.choices[0].finish_reason == "tool_calls"


def test_tool_call_rate_is_a_sim_backend_setting(tmp_path: Path) -> None:
    with run_gateway(sim_config(tmp_path / "log.db", tool_call_rate=1.0)) as gw:
        answer = gw.client().chat.completions.create(model="agent", messages=MESSAGES, tools=TOOLS)  # type: ignore[arg-type]
    assert answer.choices[0].finish_reason == "tool_calls"


async def test_max_tokens_cuts_a_call_like_a_real_model() -> None:
    sim = make_simulator()
    await sim.start()
    try:
        answer = await sim.complete(chat_call("book", tools=TOOLS, max_tokens=12, tool_choice={
            "type": "function", "function": {"name": "book_flight"}}))
    finally:
        await sim.stop()
    assert answer.finish_reason == "length" and answer.usage is not None and answer.usage.completion_tokens == 12
    [call] = answer.payload["choices"][0]["message"]["tool_calls"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(call["function"]["arguments"])


def test_the_simulator_server_checks_tools_at_its_own_edge() -> None:
    bad = {"type": "function", "function": {"name": "x", "parameters": {"type": "object", "required": "city"}}}
    with serve_app(create_app(make_simulator())) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=[bad])  # type: ignore[arg-type, list-item]
        assert caught.value.body["param"] == "tools[0].function.parameters"  # type: ignore[index]
        answer = client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS,  # type: ignore[arg-type]
                                                tool_choice="required")
    assert answer.choices[0].finish_reason == "tool_calls"
