"""`response_format` checked up front: each problem a 400 naming its path; bombs refused before anything
compiles them; strict mode's object rules; through the gateway, nothing reaches the upstream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from sluice.structured import check_response_format
from sluice.structured.formats import ResponseFormatError
from tests.support.gateway import run_gateway, upstream_config
from tests.support.openai_server import OpenAIUpstream

PERSON = {"type": "object", "additionalProperties": False, "required": ["name", "age"],
          "properties": {"name": {"type": "string"}, "age": {"type": ["integer", "null"]}}}


def schema_format(schema: Any, strict: bool | None = True, name: Any = "person") -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": strict}}


def problem(value: Any) -> tuple[str, str]:
    with pytest.raises(ResponseFormatError) as error:
        check_response_format(value)
    assert error.value.status_code == 400 and error.value.code == "invalid_response_format"
    return str(error.value.param), error.value.message


def test_good_formats_pass() -> None:
    for value in ({"type": "text"}, {"type": "json_object"}, schema_format(PERSON),
                  schema_format({"type": "array", "items": {"type": "number"}}, strict=False),
                  {"type": "json_schema", "json_schema": {"name": "free"}}):
        check_response_format(value)


@pytest.mark.parametrize(("value", "path", "says"), [
    ("json", "response_format", "must be an object"),
    ({"type": "xml"}, "response_format.type", "'xml' is not one of text, json_object, json_schema"),
    ({"type": "json_schema"}, "response_format.json_schema", "required with type json_schema"),
    (schema_format(PERSON, name="has space"), "response_format.json_schema.name", "letters, digits"),
    (schema_format(PERSON, strict="yes"), "response_format.json_schema.strict", "true or false"),
    (schema_format({"type": "object", "properties": {"age": {"type": "integr"}}}, strict=False),
     "response_format.json_schema.schema.properties.age.type", "is not valid under any of the given schemas"),
    (schema_format({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}),
     "response_format.json_schema.schema.additionalProperties", "strict mode needs false on every object"),
    (schema_format({**PERSON, "required": ["name"]}), "response_format.json_schema.schema.required",
     "missing age"),
    (schema_format({"type": "object", "additionalProperties": False, "required": ["tags"], "properties": {
        "tags": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}}}}}),
     "response_format.json_schema.schema.properties.tags.items.additionalProperties", "strict mode"),
    (schema_format({"type": "string"}), "response_format.json_schema.schema.type", "object at the root"),
])
def test_each_problem_names_its_path(value: Any, path: str, says: str) -> None:
    where, message = problem(value)
    assert where == path and says in message and message.startswith(path + ": ")


def test_schemas_that_would_explode_a_grammar_compiler_are_refused_first() -> None:
    def nest(depth: int) -> dict[str, Any]:
        return {"type": "string"} if depth == 0 else {"anyOf": [nest(depth - 1) for _ in range(2)]}

    where, message = problem(schema_format(nest(9), strict=False))
    assert "anyOf / oneOf / allOf nested deeper than 8" in message and where.endswith(".anyOf")
    where, message = problem(schema_format({"enum": [f"v{i}" for i in range(10_001)]}, strict=False))
    assert where.endswith(".schema.enum") and "more than 10,000 enum values" in message
    where, message = problem(schema_format({"enum": ["x" * 300_000]}, strict=False))
    assert where == "response_format.json_schema.schema" and "at most 262,144" in message
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        deep = {"type": "array", "items": deep}
    assert "nested deeper than 32" in problem(schema_format(deep, strict=False))[1]


def test_through_the_gateway_a_bad_format_is_a_400_and_never_reaches_the_upstream(
        upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    fake, url = upstream
    with run_gateway(upstream_config(url, tmp_path / "log.db")) as gw:
        fake.reset()
        bad = httpx.post(gw.url + "/v1/chat/completions", json={
            "model": "m", "messages": [{"role": "user", "content": "hi"}],
            "response_format": schema_format({"type": "object", "properties": {"a": {"type": "string"}}})})
        embeddings = httpx.post(gw.url + "/v1/embeddings", json={
            "model": "m", "input": "hi", "response_format": {"type": "json_object"}})
        good = httpx.post(gw.url + "/v1/chat/completions", json={  # the fake upstream echoes: a valid answer
            "model": "m", "messages": [{"role": "user", "content": '{"name": "Ann", "age": 3}'}],
            "response_format": schema_format(PERSON)})
        forwarded = [body.get("response_format") for body in fake.bodies("/v1/chat/completions")]
    assert bad.status_code == 400
    assert bad.json()["error"] == {
        "message": "response_format.json_schema.schema.additionalProperties: strict mode needs false on every "
                   "object", "type": "invalid_request_error",
        "param": "response_format.json_schema.schema.additionalProperties", "code": "invalid_response_format"}
    assert embeddings.status_code == 400 and embeddings.json()["error"]["param"] == "response_format"
    assert good.status_code == 200
    assert forwarded == [schema_format(PERSON)]  # only the good one went upstream, as sent
