"""The simulator asked for JSON (`response_format`): a value the schema accepts, of realistic length, streamed as its
real tokens, cut at max_tokens like a real model, the same for the same seed."""

from __future__ import annotations

import json
import re
from typing import Any

import openai
import pytest
from jsonschema import Draft202012Validator

from sluice.backends import Chunk
from sluice.cost import count_text_tokens, encoding_for
from sluice.sim import create_app
from sluice.sim.errors import BadRequest
from sluice.sim.structured import token_pieces
from tests.sim.support import MODEL, chat_call, completion_call, make_simulator
from tests.support.servers import serve_app

TOKENIZER = "llama-3.1-8b"
ORDER = {"type": "object", "additionalProperties": False, "required": ["id", "customer", "items", "status"],
         "properties": {"id": {"type": "string", "format": "uuid"},
                        "customer": {"type": "object", "required": ["name", "email"],
                                     "properties": {"name": {"type": "string"},
                                                    "email": {"type": "string", "format": "email"}}},
                        "items": {"type": "array", "minItems": 1,
                                  "items": {"type": "object", "required": ["sku", "quantity", "price"],
                                            "properties": {"sku": {"type": "string", "pattern": r"^[A-Z]{3}-\d{4}$"},
                                                           "quantity": {"type": "integer", "minimum": 1},
                                                           "price": {"type": "number", "minimum": 0}}}},
                        "status": {"enum": ["pending", "shipped", "delivered"]},
                        "notes": {"type": ["string", "null"]}}}


def schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "order", "schema": schema, "strict": False}}


async def stream_of(call: Any, seed: int = 0) -> list[Chunk]:
    sim = make_simulator(seed=seed)
    await sim.start()
    try:
        return [chunk async for chunk in sim.stream(call)]
    finally:
        await sim.stop()


def text_chunks(chunks: list[Chunk]) -> list[Chunk]:
    return [chunk for chunk in chunks if chunk.has_output]


async def test_a_chat_request_with_a_schema_gets_json_the_schema_accepts() -> None:
    for seed in range(10):
        chunks = await stream_of(chat_call(f"Order {seed}, please.", response_format=schema_format(ORDER)))
        text = "".join(chunk.text for chunk in chunks)
        Draft202012Validator(ORDER, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(json.loads(text))
        usage = chunks[-1].usage
        assert usage is not None and usage.completion_tokens == len(text_chunks(chunks))
        assert usage.completion_tokens == count_text_tokens(text, TOKENIZER)  # each chunk one real token
        assert 30 <= usage.completion_tokens <= 600  # a realistic answer to such a schema
        assert text_chunks(chunks)[-1].finish_reason == "stop"


async def test_a_completions_request_with_a_schema_gets_json_too() -> None:
    schema = {"type": "array", "minItems": 2, "items": {"type": "integer", "minimum": 0, "maximum": 9}}
    chunks = await stream_of(completion_call("Numbers:", response_format=schema_format(schema)))
    text = "".join(chunk.text for chunk in chunks)
    Draft202012Validator(schema).validate(json.loads(text))
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(text_chunks(chunks))


async def test_json_mode_gets_a_json_object() -> None:
    chunks = await stream_of(chat_call("Describe a queue as JSON.", response_format={"type": "json_object"}))
    value = json.loads("".join(chunk.text for chunk in chunks))
    assert isinstance(value, dict) and value


async def test_max_tokens_cuts_the_json_like_a_real_model() -> None:
    whole = "".join(chunk.text for chunk in await stream_of(chat_call("o", response_format=schema_format(ORDER))))
    chunks = await stream_of(chat_call("o", response_format=schema_format(ORDER), max_tokens=12))
    text = "".join(chunk.text for chunk in chunks)
    assert whole.startswith(text) and len(text) < len(whole)
    assert text_chunks(chunks)[-1].finish_reason == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12 == len(text_chunks(chunks))
    roomy = await stream_of(chat_call("o", response_format=schema_format(ORDER), max_tokens=2000))
    assert "".join(chunk.text for chunk in roomy) == whole  # room to spare: the JSON ends, finish stop
    assert text_chunks(roomy)[-1].finish_reason == "stop"


async def test_the_stream_and_the_whole_answer_are_the_same_json() -> None:
    call = chat_call("o", response_format=schema_format(ORDER), seed=7)
    streamed = "".join(chunk.text for chunk in await stream_of(call))
    sim = make_simulator()
    await sim.start()
    try:
        whole = await sim.complete(chat_call("other prompt", response_format=schema_format(ORDER), seed=7))
    finally:
        await sim.stop()
    assert whole.text == streamed and whole.finish_reason == "stop"
    assert whole.usage is not None and whole.usage.completion_tokens == count_text_tokens(streamed, TOKENIZER)


async def test_the_json_depends_on_the_seed_and_the_prompt() -> None:
    async def text_of(prompt: str, seed: int = 0) -> str:
        return "".join(chunk.text for chunk in await stream_of(chat_call(prompt, response_format=schema_format(ORDER)),
                                                               seed=seed))

    same = await text_of("a")
    assert same == await text_of("a")
    assert same != await text_of("b") and same != await text_of("a", seed=1)


async def test_text_format_is_prose_as_without_a_format() -> None:
    plain = await stream_of(chat_call("hi", max_tokens=20))
    text = await stream_of(chat_call("hi", max_tokens=20, response_format={"type": "text"}))
    assert [chunk.text for chunk in text] == [chunk.text for chunk in plain]


def test_a_format_that_is_not_valid_is_a_bad_request() -> None:
    sim = make_simulator()
    with pytest.raises(BadRequest) as caught:
        sim.admit(chat_call("hi", response_format=schema_format({"type": "strin"})))
    assert caught.value.status_code == 400 and caught.value.param == "response_format.json_schema.schema.type"
    with pytest.raises(BadRequest, match="not one of"):
        sim.admit(chat_call("hi", response_format={"type": "xml"}))


def test_token_pieces_are_one_token_each_and_a_split_character_waits_for_its_last_token() -> None:
    text = '{"city": "Zürich", "mood": "🎉🎉", "name": "日本語のテキスト"}'
    pieces = token_pieces(text, TOKENIZER)
    assert "".join(pieces) == text
    assert len(pieces) == len(encoding_for(TOKENIZER).encode_ordinary(text))
    assert "" in pieces  # an emoji spans tokens: the first ones show nothing
    ascii_pieces = token_pieces('{"a": [1, 2.5, "queue"]}', TOKENIZER)
    assert all(count_text_tokens(piece, TOKENIZER) == 1 for piece in ascii_pieces)


def test_the_http_server_answers_json_to_the_openai_sdk() -> None:
    with serve_app(create_app(make_simulator())) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "An order"}],
                                                response_format=schema_format(ORDER))  # type: ignore[arg-type]
    content = answer.choices[0].message.content
    assert content is not None and answer.choices[0].finish_reason == "stop"
    Draft202012Validator(ORDER).validate(json.loads(content))
    assert answer.usage is not None and answer.usage.completion_tokens == count_text_tokens(content, TOKENIZER)


def test_vllm_constraints_are_honoured_as_vllm_does() -> None:
    simulator = make_simulator()

    def answer(**extra: Any) -> str:
        return "".join(simulator.plan_answer(chat_call("Pick one.", **extra)).pieces)

    assert answer(guided_choice=["yes", "no"]) in ("yes", "no")
    assert answer(structured_outputs={"choice": ["north", "south"]}) in ("north", "south")
    assert re.fullmatch(r"[A-Z]{2}-\d{4}", answer(guided_regex=r"[A-Z]{2}-\d{4}"))
    assert set(json.loads(answer(guided_json={"type": "object", "required": ["a"],
                                              "properties": {"a": {"type": "integer"}}}))) >= {"a"}
    with pytest.raises(BadRequest):
        answer(guided_grammar="root ::= 'a'")
    with pytest.raises(BadRequest):
        answer(guided_regex="(unclosed")
