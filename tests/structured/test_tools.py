"""A request's tools are checked before anything is sent: a 400 that names the tool and the field, on every
backend alike."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.structured import MAX_TOOLS, ToolsError, check_tools

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
                   "required": ["city"]}}}


def tool(name: str, parameters: Any = None, **function: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, **function}
    if parameters is not None:
        body["parameters"] = parameters
    return {"type": "function", "function": body}


def refused(body: dict[str, Any]) -> ToolsError:
    with pytest.raises(ToolsError) as caught:
        check_tools(body)
    assert caught.value.status_code == 400
    return caught.value


def test_well_formed_tools_and_every_tool_choice_pass() -> None:
    tools = [WEATHER, tool("now"), tool("lookup", {"type": "object", "properties": {"q": {"type": "string"}}},
                                        strict=False)]
    for choice in (None, "none", "auto", "required", {"type": "function", "function": {"name": "now"}}):
        check_tools({"tools": tools, "tool_choice": choice, "parallel_tool_calls": False})
    check_tools({"tool_choice": "auto"})  # auto and none need no tools


def test_a_parameters_schema_that_is_not_json_schema_is_refused_naming_the_tool() -> None:
    bad = tool("book_flight", {"type": "object", "properties": {"when": {"type": "datetime"}}})
    error = refused({"tools": [WEATHER, tool("now"), bad]})
    assert error.param == "tools[2].function.parameters"
    assert error.code == "invalid_function_parameters"
    assert "`book_flight`" in error.message
    assert error.message.startswith("tools[2].function.parameters.properties.when.type")


@pytest.mark.parametrize("parameters", [{"type": "string"}, {"type": ["object", "null"]}])
def test_arguments_are_an_object_so_the_schema_root_must_be_one(parameters: dict[str, Any]) -> None:
    error = refused({"tools": [tool("echo", parameters)]})
    assert error.param == "tools[0].function.parameters"
    assert "`echo`" in error.message and "object" in error.message


def test_parameters_must_be_a_schema_object() -> None:
    assert refused({"tools": [tool("echo", "a string")]}).param == "tools[0].function.parameters"


def test_strict_tools_follow_openai_strict_rules() -> None:
    loose = tool("search", {"type": "object", "properties": {"q": {"type": "string"}}}, strict=True)
    error = refused({"tools": [loose]})
    assert error.param == "tools[0].function.parameters"
    assert "additionalProperties" in error.message


def test_schema_limits_hold_for_tools_too() -> None:
    huge_enum = tool("pick", {"type": "object", "properties": {"x": {"enum": list(range(10_001))}}})
    assert "enum" in refused({"tools": [huge_enum]}).message


@pytest.mark.parametrize(("tools", "param"), [
    ([], "tools"),
    ({"type": "function"}, "tools"),
    (["get_weather"], "tools[0]"),
    ([{"type": "custom", "custom": {"name": "x"}}], "tools[0].type"),
    ([{"type": "function"}], "tools[0].function"),
    ([tool("has space")], "tools[0].function.name"),
    ([tool("x" * 65)], "tools[0].function.name"),
    ([tool("now", description=3)], "tools[0].function.description"),
    ([tool("now", strict="yes")], "tools[0].function.strict"),
    ([tool("now"), tool("now")], "tools[1].function.name"),
    ([tool(f"t{i}") for i in range(MAX_TOOLS + 1)], "tools"),
])
def test_malformed_tools_name_the_field(tools: Any, param: str) -> None:
    assert refused({"tools": tools}).param == param


@pytest.mark.parametrize(("choice", "param"), [
    ("sometimes", "tool_choice"),
    ({"type": "function"}, "tool_choice"),
    ({"type": "function", "function": {"name": "book_flight"}}, "tool_choice.function.name"),
])
def test_tool_choice_must_be_known_and_name_an_offered_tool(choice: Any, param: str) -> None:
    error = refused({"tools": [WEATHER], "tool_choice": choice})
    assert error.param == param and error.code == "invalid_tool_choice"


def test_a_call_cannot_be_required_without_tools() -> None:
    assert refused({"tool_choice": "required"}).param == "tool_choice"
    named = refused({"tool_choice": {"type": "function", "function": {"name": "now"}}})
    assert "no tools are offered" in named.message


def test_parallel_tool_calls_is_a_boolean() -> None:
    assert refused({"tools": [WEATHER], "parallel_tool_calls": "yes"}).param == "parallel_tool_calls"


def test_a_tool_set_found_valid_is_not_checked_again_but_a_bad_one_always_is() -> None:
    body = {"tools": [WEATHER, tool("now")], "tool_choice": "required"}
    check_tools(body)
    check_tools(dict(body))  # remembered by its digest
    bad = {"tools": [tool("now", {"type": "object", "properties": {"x": {"type": 7}}})]}
    for _ in range(2):
        assert refused(bad).param == "tools[0].function.parameters"
