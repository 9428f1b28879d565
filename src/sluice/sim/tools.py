"""Tool calls in the simulator: when a request's `tool_choice` asks for (or allows) a call, the calls a model would
write — arguments valid against each tool's schema, drawn from a seed — as the tokens they cost, one step each.

A call is written as `{"name": "<tool>", "arguments": <arguments JSON>}` (the shape most tool-calling templates
train on) and each of its tokens is one engine step: the tokens up to the arguments open the call (its id and
name go out with the last of them), each token of the arguments streams as a fragment at TPOT, the closing `}` is
a step that shows nothing. The request's tool definitions are prompt tokens, as a chat template writes them in.
"""

from __future__ import annotations

import random

from sluice.backends import (
    PARALLEL_CALLS_MAX,
    ChatCompletionRequest,
    GenerationRequest,
    ToolDelta,
    ToolSpec,
    new_call_id,
    tool_choice_of,
    tools_of,
)
from sluice.cost import count_text_tokens
from sluice.errors import InvalidRequest
from sluice.sim.errors import BadRequest
from sluice.sim.structured import token_pieces
from sluice.structured import check_tools, has_tool_fields, instance_for, json_text

Step = str | ToolDelta | None  # what one output token shows: text, a piece of a call, or nothing
DEFAULT_TOOL_CALL_RATE = 0.5  # share of `tool_choice: auto` answers that call a tool (config `tool_call_rate`)
_PARALLEL_COUNTS = (0.5, 0.3, 0.2)  # with parallel calls allowed and several tools: 1, 2 or 3 calls


def tool_steps(request: GenerationRequest, seed: int, model: str, rate: float) -> list[Step] | None:
    """The answer's steps where it calls tools; None where it answers in text (no tools, `none`, or `auto` when
    the draw says text). Arguments come from `instance_for`, so they validate against the tool's schema."""
    if not isinstance(request, ChatCompletionRequest):
        return None
    fields = {"tools": request.tools, "tool_choice": request.tool_choice,
              "parallel_tool_calls": request.parallel_tool_calls}
    if not has_tool_fields(fields):
        return None
    try:  # the gateway's checks at the simulator's own edge (it is served without the gateway too)
        check_tools(fields)
    except InvalidRequest as error:
        raise BadRequest(error.message, param=error.param) from None
    tools, choice = tools_of(request), tool_choice_of(request)
    if not tools or choice.mode == "none":
        return None
    rng = random.Random(seed)
    if choice.mode == "auto" and rng.random() >= rate:
        return None
    if choice.name is not None:
        chosen = [tool for tool in tools if tool.name == choice.name]
    else:
        most = min(PARALLEL_CALLS_MAX, len(tools)) if choice.parallel else 1
        count = rng.choices(range(1, most + 1), weights=_PARALLEL_COUNTS[:most])[0]
        chosen = rng.sample(list(tools), count)
    steps: list[Step] = []
    for index, tool in enumerate(chosen):
        steps.extend(_call_steps(tool, index, rng, model))
    return steps


def tool_prompt_tokens(request: GenerationRequest, model: str) -> int:
    """Prompt tokens the tools add: their definitions, and the calls earlier assistant turns made."""
    if not isinstance(request, ChatCompletionRequest):
        return 0
    tokens = 0
    tools = tools_of(request)
    if tools:
        tokens += count_text_tokens(json_text([tool.definition() for tool in tools]), model)
    for message in request.messages:
        for call in message.tool_calls or ():
            function = call.get("function") or {}
            tokens += count_text_tokens(f"{function.get('name', '')} {function.get('arguments', '')}", model) + 4
    return tokens


def _call_steps(tool: ToolSpec, index: int, rng: random.Random, model: str) -> list[Step]:
    arguments = json_text(instance_for(tool.parameters, rng))
    head = token_pieces(f'{{"name": {json_text(tool.name)}, "arguments": ', model)
    opening = ToolDelta(index, "", call_id=new_call_id(), name=tool.name)
    steps: list[Step] = [None] * (len(head) - 1) + [opening]
    steps.extend(ToolDelta(index, piece) if piece else None for piece in token_pieces(arguments, model))
    steps.append(None)  # the call's closing brace
    return steps


__all__ = ["DEFAULT_TOOL_CALL_RATE", "Step", "tool_prompt_tokens", "tool_steps"]
