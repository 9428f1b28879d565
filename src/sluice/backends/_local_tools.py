"""Tool calls on the local GGUF runtime: the prompt that offers the tools, the llguidance grammar the answer is
decoded under, and the reader that turns what the model writes into OpenAI tool-call deltas.

Every model writes a call the same way, Hermes's: `<tool_call>{"name": "<tool>", "arguments": {…}}</tool_call>`.
The grammar forces the envelope and holds the arguments to the tool's schema (each `%json`, so `$ref`s in a schema
resolve against that schema), so a call that ends is a valid call (docs/tool-calling.md):

- a named tool: one call of it; `required`: one to `PARALLEL_CALLS_MAX` calls (one if `parallel_tool_calls` is
  false), nothing else;
- `auto`: text that never contains `<tool_call>`, or text and then calls — the model chooses;
- `none` (or no tools): no grammar; the tools are not offered.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from sluice.backends.guided import JSON_OPTIONS, CompiledFormat, GrammarSubject, compile_grammar, locate
from sluice.backends.tool_calls import (
    PARALLEL_CALLS_MAX,
    ToolChoice,
    ToolDelta,
    ToolSpec,
    new_call_id,
    tool_choice_of,
    tools_of,
)
from sluice.backends.types import ChatMessage, GenerationRequest

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_HEAD = re.compile(r'\{"name": "([A-Za-z0-9_-]{1,64})", "arguments": ')
# Any text without the opening tag (llguidance's regex negation), so text in `auto` cannot fake a call.
_TEXT = r"TEXT: /(.|\n)*/ & ~/(.|\n)*<tool_call>(.|\n)*/"


@dataclass(slots=True, frozen=True)
class ToolPlan:
    """What a chat request asks of the local model's tools; `None` from `tool_plan` means a text answer."""

    tools: tuple[ToolSpec, ...]
    choice: ToolChoice

    def offered(self) -> tuple[ToolSpec, ...]:
        """The tools the answer may call: the named one, or all."""
        if self.choice.name is None:
            return self.tools
        return tuple(tool for tool in self.tools if tool.name == self.choice.name)


def tool_plan(request: GenerationRequest) -> ToolPlan | None:
    """The request's tools and choice where they may lead to a call; None for `none` or no tools."""
    tools, choice = tools_of(request), tool_choice_of(request)
    if not tools or choice.mode == "none":
        return None
    return ToolPlan(tools, choice)


def tool_note(plan: ToolPlan) -> str:
    """The system note that offers the tools and says how to call them (the grammar holds the model to it)."""
    listed = "\n".join(orjson.dumps(tool.definition()).decode() for tool in plan.offered())
    how = (f"To call a function, write {OPEN}{{\"name\": <function name>, \"arguments\": <the arguments as a JSON "
           f"object>}}{CLOSE}.")
    if plan.choice.name is not None:
        ask = f"Answer with a call of {plan.choice.name} and nothing else."
    elif plan.choice.forced:
        ask = "Answer with one or more function calls and nothing else."
    else:
        ask = "Call a function when one helps you answer; otherwise answer in plain text."
    return f"You can call these functions (each with the JSON Schema of its arguments):\n{listed}\n{how}\n{ask}"


def with_note(messages: list[dict[str, str]], note: str) -> list[dict[str, str]]:
    """The note appended to the first system message, or a new first one."""
    if messages and messages[0]["role"] in ("system", "developer"):
        return [{**messages[0], "content": f"{messages[0]['content']}\n\n{note}"}, *messages[1:]]
    return [{"role": "system", "content": note}, *messages]


def message_text(message: ChatMessage, content: str) -> str:
    """An earlier turn's text as the model would have written it: its calls in the call format after the text."""
    calls = [f"{OPEN}{json.dumps(_call_body(call))}{CLOSE}" for call in message.tool_calls or ()]
    return "\n".join(part for part in (content, *calls) if part)


def _call_body(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments: Any = function.get("arguments") or "{}"
    with contextlib.suppress(ValueError):  # unparsable: the client's history as it sent it
        arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
    return {"name": function.get("name"), "arguments": arguments}


@dataclass(slots=True, frozen=True)
class ToolGrammar:
    """The Lark grammar (llguidance's dialect) for a plan, and how to name the tool an error is about."""

    lark: str
    subject: GrammarSubject


def tool_grammar(plan: ToolPlan) -> ToolGrammar:
    """The grammar of what the plan allows: calls only (`required`, a named tool) or text then calls (`auto`), each
    call's envelope literal and its arguments a `%json` of the tool's schema on a line of its own (errors name it)."""
    lines = ["%llguidance {}"]
    most = PARALLEL_CALLS_MAX if plan.choice.parallel else 1
    more = f' ("\\n" call){{0,{most - 1}}}' if most > 1 else ""
    if plan.choice.forced:
        lines.append(f"start: call{more}")
    else:
        lines += [f"start: TEXT | head body{more}", f"head[lazy]: TEXT {json.dumps(OPEN)}", _TEXT]
    offered = plan.offered()
    lines += [f"call: {json.dumps(OPEN)} body", "body: " + " | ".join(f"body_{i}" for i in range(len(offered)))]
    first_body_line = len(lines) + 1  # llguidance numbers lines from 1
    for index, tool in enumerate(offered):
        head = json.dumps(f'{{"name": "{tool.name}", "arguments": ')
        schema = json.dumps({**tool.parameters, "x-guidance": JSON_OPTIONS})
        lines.append(f"body_{index}: {head} %json {schema} {json.dumps('}' + CLOSE)}")
    positions = {tool.name: index for index, tool in enumerate(plan.tools)}
    return ToolGrammar("\n".join(lines), GrammarSubject(
        _locator(offered, positions, first_body_line), "tools", "these tools",
        too_complex_code="tools_too_complex", invalid_code="invalid_function_parameters"))


def compile_tools(plan: ToolPlan, tokenizer: Any) -> CompiledFormat:
    """The plan's grammar compiled for a tokenizer, within guided decoding's limits and deadline (a 400 naming the
    tool whose parameters it cannot hold to)."""
    from llguidance import LLMatcher

    grammar = tool_grammar(plan)
    return compile_grammar(lambda: LLMatcher.grammar_from_lark(grammar.lark), tokenizer, grammar.subject)


def _locator(offered: tuple[ToolSpec, ...], positions: dict[str, int], first_line: int) -> Callable[[str], str]:
    """From llguidance's error (`at 7(12): …`), the path of the tool's parameters it is about."""
    def param_of(error: str) -> str:
        found = re.match(r"at (\d+)\(", error)
        index = int(found.group(1)) - first_line if found else -1
        if not 0 <= index < len(offered):
            return "tools"
        tool = offered[index]
        return f"tools[{positions[tool.name]}].function.parameters{locate(tool.parameters, error)}"
    return param_of


class ToolCallReader:
    """Turns what the model writes under the grammar into text and tool-call deltas, as it comes.

    Text goes out as it is, but for a tail that may be the start of `<tool_call>`; a call goes out as an opening
    delta (id, name) once its name is written, then its arguments as they are written. The envelope's `}` and
    closing tag show nothing. The grammar guarantees the shape, so the reader only follows JSON nesting.
    """

    def __init__(self) -> None:
        self.calls = 0  # calls opened so far
        self._state = "text"  # text | head | arguments | after
        self._buffer = ""
        self._depth = 0
        self._in_string = self._escaped = False

    def feed(self, text: str) -> list[str | ToolDelta]:
        out: list[str | ToolDelta] = []
        self._buffer += text
        while self._buffer and self._step(out):
            pass
        return out

    def finish(self) -> str:
        """What is still held back: text that turned out not to open a call ("" inside a call)."""
        held, self._buffer = self._buffer, ""
        return held if self._state == "text" else ""

    def _step(self, out: list[str | ToolDelta]) -> bool:
        """One move of the state machine; False when it needs more text."""
        buffer = self._buffer
        if self._state in ("text", "after"):
            start = buffer.find(OPEN)
            keep = 0 if start >= 0 else _open_prefix(buffer)
            shown = buffer[:start] if start >= 0 else buffer[:len(buffer) - keep]
            if shown and self._state == "text":
                out.append(shown)
            if start < 0:
                self._buffer = buffer[len(buffer) - keep:]
                return False
            self._buffer, self._state = buffer[start + len(OPEN):], "head"
            return True
        if self._state == "head":
            head = _HEAD.match(buffer.lstrip())
            if head is None:
                return False
            out.append(ToolDelta(self.calls, "", call_id=new_call_id(), name=head.group(1)))
            self._buffer = buffer.lstrip()[head.end():]
            self._state, self._depth, self._in_string, self._escaped = "arguments", 0, False, False
            return True
        end = self._arguments_end(buffer)
        fragment = buffer if end is None else buffer[:end]
        if fragment:
            out.append(ToolDelta(self.calls, fragment))
        if end is None:
            self._buffer = ""
            return False
        self._buffer, self._state = buffer[end:], "after"
        self.calls += 1
        return True

    def _arguments_end(self, text: str) -> int | None:
        """Where the arguments' JSON value ends in `text` (one past its closing brace), following on from earlier."""
        for position, char in enumerate(text):
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self._depth += 1
            elif char in "}]":
                self._depth -= 1
                if self._depth == 0:
                    return position + 1
        return None


def _open_prefix(text: str) -> int:
    """The length of the longest tail of `text` that `<tool_call>` starts with."""
    return max((size for size in range(1, len(OPEN)) if text.endswith(OPEN[:size])), default=0)


__all__ = ["CLOSE", "OPEN", "ToolCallReader", "ToolGrammar", "ToolPlan", "compile_tools", "message_text",
           "tool_grammar", "tool_note", "tool_plan", "with_note"]
