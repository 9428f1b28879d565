"""A chat request's `tools`, `tool_choice` and `parallel_tool_calls`, checked up front: a 400 naming the tool and
the path of what is wrong (`tools[2].function.parameters.properties.when.type`) in its message, before the cache,
a guard or a backend sees the request; `param` is the field as OpenAI names it (`tools[2].function.parameters`).
The same checks hold on every backend (docs/tool-calling.md).

- `tools`: 1 to 128 entries, each `{"type": "function", "function": {...}}`;
- `function`: a `name` (letters, digits, `_` and `-`, at most 64; unique in the request), an optional
  `description` (a string), `parameters` (a JSON Schema of an object: Draft 2020-12's meta-schema and the limits
  `response_format` schemas keep, structured/formats.py) and `strict` (with OpenAI's strict-mode rules);
- `tool_choice`: `none`, `auto`, `required`, or `{"type": "function", "function": {"name": …}}` naming an offered
  tool; `required` and a named tool need tools;
- `parallel_tool_calls`: true or false.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from sluice.errors import InvalidRequest
from sluice.structured.formats import LIMITS, FormatLimits, ResponseFormatError, check_schema

MAX_TOOLS = 128  # OpenAI's limit on functions per request
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CHOICES = ("none", "auto", "required")
_TOOL_FIELDS = ("tools", "tool_choice", "parallel_tool_calls")
_VALID_KEPT = 1024
_VALID: dict[bytes, None] = {}  # digests of tool fields found valid, oldest first


class ToolsError(InvalidRequest):
    """`param` is the field OpenAI names (`tools[2].function.parameters`); the message starts with the full path."""

    def __init__(self, path: str, message: str, code: str = "invalid_tools", *, param: str | None = None) -> None:
        super().__init__(f"{path}: {message}", param=param or path, code=code)


def has_tool_fields(body: dict[str, Any]) -> bool:
    """Whether a body sets any of the fields `check_tools` checks (most bodies set none: they pay nothing)."""
    return any(body.get(name) is not None for name in _TOOL_FIELDS)


def check_tools(body: dict[str, Any], *, limits: FormatLimits = LIMITS) -> None:
    """Raise ToolsError (a 400) naming the first problem in the body's tool fields; return when they are usable.

    Tool sets found valid are remembered by a digest (an agent sends the same few on every turn, and checking a
    schema costs about a millisecond per tool; the digest, a few microseconds)."""
    fields = {name: body.get(name) for name in _TOOL_FIELDS}
    key = hashlib.blake2b(orjson.dumps(fields), digest_size=16).digest() if limits is LIMITS else None
    if key is not None and key in _VALID:
        return
    _check(fields, limits)
    if key is not None:
        _VALID[key] = None
        if len(_VALID) > _VALID_KEPT:
            del _VALID[next(iter(_VALID))]  # the oldest


def _check(body: dict[str, Any], limits: FormatLimits) -> None:
    tools = body.get("tools")
    names: list[str] = []
    if tools is not None:
        if not isinstance(tools, list) or not tools:
            raise ToolsError("tools", "must be a non-empty list of {\"type\": \"function\", \"function\": {...}}")
        if len(tools) > MAX_TOOLS:
            raise ToolsError("tools", f"{len(tools)} tools; at most {MAX_TOOLS}")
        for index, tool in enumerate(tools):
            name = _check_tool(tool, f"tools[{index}]", limits)
            if name in names:
                raise ToolsError(f"tools[{index}].function.name", f"`{name}` is offered twice; tool names must be "
                                 "unique")
            names.append(name)
    _check_choice(body.get("tool_choice"), names)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise ToolsError("parallel_tool_calls", "must be true or false")


def _check_tool(tool: Any, path: str, limits: FormatLimits) -> str:
    if not isinstance(tool, dict):
        raise ToolsError(path, "must be an object: {\"type\": \"function\", \"function\": {\"name\": ...}}")
    if tool.get("type") != "function":
        raise ToolsError(f"{path}.type", f"{tool.get('type')!r}: only function tools are supported (\"function\")")
    function = tool.get("function")
    if not isinstance(function, dict):
        raise ToolsError(f"{path}.function", "required: {\"name\": ..., \"parameters\": {...}}")
    name = function.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ToolsError(f"{path}.function.name", "required: letters, digits, _ and -, at most 64 characters")
    if function.get("description") is not None and not isinstance(function["description"], str):
        raise ToolsError(f"{path}.function.description", f"tool `{name}`: must be a string")
    strict = function.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise ToolsError(f"{path}.function.strict", f"tool `{name}`: must be true or false")
    parameters = function.get("parameters")
    if parameters is not None:
        _check_parameters(parameters, f"{path}.function.parameters", name, limits, strict is True)
    return name


def _check_parameters(parameters: Any, path: str, name: str, limits: FormatLimits, strict: bool) -> None:
    """A JSON Schema of the arguments, which are always an object (OpenAI refuses a root of another type)."""
    code = "invalid_function_parameters"
    if not isinstance(parameters, dict):
        raise ToolsError(path, f"tool `{name}`: must be a JSON Schema object, e.g. {{\"type\": \"object\", "
                         "\"properties\": {...}}", code)
    kind = parameters.get("type")
    if kind is not None and kind != "object":
        raise ToolsError(f"{path}.type", f"tool `{name}`: arguments are a JSON object; the schema's root must be "
                         f"type \"object\", not {kind!r}", code, param=path)
    if not parameters:
        return  # {}: any arguments
    try:
        check_schema(parameters, path, limits=limits, strict=strict)
    except ResponseFormatError as error:  # the same schema checks as response_format, worded for a tool
        where = error.param or path
        detail = error.message.removeprefix(f"{where}: ")
        raise ToolsError(where, f"tool `{name}`: {detail}", code, param=path) from None


def _check_choice(choice: Any, names: list[str]) -> None:
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in _CHOICES:
            raise ToolsError("tool_choice", f"{choice!r} is not one of none, auto, required, or "
                             "{\"type\": \"function\", \"function\": {\"name\": ...}}", "invalid_tool_choice")
        if choice == "required" and not names:
            raise ToolsError("tool_choice", "\"required\" needs tools to choose from", "invalid_tool_choice")
        return
    if not isinstance(choice, dict) or choice.get("type") != "function" or not isinstance(choice.get("function"),
                                                                                             dict):
        raise ToolsError("tool_choice", "must be none, auto, required, or {\"type\": \"function\", "
                         "\"function\": {\"name\": ...}}", "invalid_tool_choice")
    name = choice["function"].get("name")
    if name not in names:
        offered = ", ".join(names) if names else "no tools are offered"
        raise ToolsError("tool_choice.function.name", f"{name!r} is not an offered tool ({offered})",
                         "invalid_tool_choice")


__all__ = ["MAX_TOOLS", "ToolsError", "check_tools", "has_tool_fields"]
