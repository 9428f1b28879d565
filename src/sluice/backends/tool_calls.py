"""A chat request's tools as the generating backends read them: the offered functions, what `tool_choice` asks
for, and the pieces of an OpenAI tool-call answer (ids, streamed deltas).

The gateway checks the request's tools at its edge (sluice.structured.check_tools): what reaches a backend is
well formed, so these readers only interpret it.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import Any, Literal

from sluice.backends.types import ChatCompletionRequest, GenerationRequest

ChoiceMode = Literal["none", "auto", "required"]
PARALLEL_CALLS_MAX = 3  # calls in one answer: what the simulator draws at most, and the local grammar allows
_ID_ALPHABET = string.ascii_letters + string.digits
_ANY_OBJECT: dict[str, Any] = {"type": "object"}


@dataclass(slots=True, frozen=True)
class ToolSpec:
    """One offered function: its name, description and the JSON Schema of its arguments (an object)."""

    name: str
    description: str
    parameters: dict[str, Any]  # `{"type": "object"}` where the tool gives none

    @classmethod
    def of(cls, tool: dict[str, Any]) -> ToolSpec:
        function = tool.get("function") or {}
        parameters = function.get("parameters")
        if not isinstance(parameters, dict) or not parameters:
            parameters = _ANY_OBJECT
        elif "type" not in parameters and "$ref" not in parameters:
            parameters = {"type": "object", **parameters}  # arguments are always an object
        return cls(str(function.get("name", "")), str(function.get("description") or ""), parameters)

    def definition(self) -> dict[str, Any]:
        """The function as a prompt lists it: name, description, parameters."""
        body: dict[str, Any] = {"name": self.name}
        if self.description:
            body["description"] = self.description
        body["parameters"] = self.parameters
        return body


@dataclass(slots=True, frozen=True)
class ToolChoice:
    """What the request asks of the model: `none` (text), `auto` (text or calls), `required` (at least one call);
    `name` set when it names the one function to call."""

    mode: ChoiceMode
    name: str | None = None
    parallel: bool = True  # `parallel_tool_calls` (OpenAI's default: true)

    @property
    def forced(self) -> bool:
        """Whether the answer must be a call (`required` or a named function)."""
        return self.mode == "required"


def tools_of(request: GenerationRequest) -> tuple[ToolSpec, ...]:
    """The functions a chat request offers; none for completions."""
    if not isinstance(request, ChatCompletionRequest) or not request.tools:
        return ()
    return tuple(ToolSpec.of(tool) for tool in request.tools if tool.get("type", "function") == "function")


def tool_choice_of(request: GenerationRequest) -> ToolChoice:
    """The request's `tool_choice` as OpenAI reads it: `auto` where tools are offered and it sets none, `none`
    where no tools are offered; a named function is `required` with that name."""
    if not isinstance(request, ChatCompletionRequest) or not request.tools:
        return ToolChoice("none")
    parallel = request.parallel_tool_calls is not False
    choice = request.tool_choice
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return ToolChoice("required", str(name), parallel=False)  # a named function is called once
    if choice in ("none", "required"):
        return ToolChoice(choice, parallel=parallel)  # type: ignore[arg-type]
    return ToolChoice("auto", parallel=parallel)


def new_call_id() -> str:
    """An id for one tool call, shaped as OpenAI's (`call_` and 24 letters and digits)."""
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


@dataclass(slots=True, frozen=True)
class ToolDelta:
    """One streamed piece of a tool call: the opening one carries `call_id` and `name` (arguments ""), the
    others a fragment of the arguments' JSON."""

    index: int
    arguments: str = ""
    call_id: str | None = None
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """OpenAI's `delta.tool_calls[]` entry."""
        if self.call_id is None:
            return {"index": self.index, "function": {"arguments": self.arguments}}
        return {"index": self.index, "id": self.call_id, "type": "function",
                "function": {"name": self.name, "arguments": self.arguments}}


__all__ = [
    "PARALLEL_CALLS_MAX",
    "ChoiceMode",
    "ToolChoice",
    "ToolDelta",
    "ToolSpec",
    "new_call_id",
    "tool_choice_of",
    "tools_of",
]
