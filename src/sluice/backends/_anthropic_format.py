"""`response_format` on Anthropic: a forced tool whose input schema is the format's schema, its input the answer.

The Messages API has no `response_format`; a tool the model must call (`tool_choice: {"type": "tool"}`) makes it
answer with JSON shaped by `input_schema`, which the adapter hands back as the message content (finish reason
`stop`, not `tool_calls`). A schema whose root is not an object is wrapped as `{"value": <schema>}` (tool inputs are
objects) and unwrapped on the way back. With tools of the client's own the format is not forced: the gateway
validates the answer (structured/stage.py) as for any backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from sluice.backends.types import ChatCompletionRequest

_OBJECT_ONLY: dict[str, Any] = {"type": "object"}
_DESCRIPTION = "Give your whole answer as this tool's input; it is returned to the user as JSON."


@dataclass(slots=True, frozen=True)
class OutputTool:
    name: str
    input_schema: dict[str, Any]
    wrapped: bool  # the format's schema is not an object: the answer is the input's `value`

    def definition(self) -> dict[str, Any]:
        return {"name": self.name, "description": _DESCRIPTION, "input_schema": self.input_schema}

    def answer(self, tool_input: Any) -> str:
        """The tool's input as the JSON text of the answer."""
        if self.wrapped and isinstance(tool_input, dict) and "value" in tool_input:
            tool_input = tool_input["value"]
        return orjson.dumps(tool_input).decode()


def output_tool(request: object) -> OutputTool | None:
    """The forced tool for a chat request's JSON `response_format` (none with tools of its own, or for text)."""
    if not isinstance(request, ChatCompletionRequest) or request.tools or not request.response_format:
        return None
    response_format = request.response_format
    if response_format.get("type") == "json_object":
        return OutputTool("json_output", _OBJECT_ONLY, False)
    if response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema") or {}
    schema = spec.get("schema") if isinstance(spec.get("schema"), dict) else _OBJECT_ONLY
    name = spec.get("name") or "json_output"
    if schema.get("type") == "object" or (schema.get("properties") and "type" not in schema):
        return OutputTool(name, schema, False)
    definitions = {key: schema[key] for key in ("$defs", "definitions") if key in schema}
    inner = {key: value for key, value in schema.items() if key not in definitions}
    # `$ref`s point at the root's `$defs`: they stay at the root of the wrapping object.
    return OutputTool(name, {"type": "object", "properties": {"value": inner}, "required": ["value"],
                             "additionalProperties": False, **definitions}, True)


__all__ = ["OutputTool", "output_tool"]
