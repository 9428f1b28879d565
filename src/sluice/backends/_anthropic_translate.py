"""OpenAI chat ⇄ Anthropic Messages translation: request bodies, whole answers, usage, stop reasons."""

from __future__ import annotations

import time
from typing import Any

import orjson

from sluice.backends._anthropic_format import output_tool
from sluice.backends.chunks import new_id
from sluice.backends.types import BackendCall, ChatCompletionRequest, ChatMessage, Completion, Usage
from sluice.errors import InvalidRequest

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Anthropic's documented error types and the HTTP status each is sent with (used for stream `error` events).
ERROR_STATUSES: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


def messages_body(call: BackendCall, *, default_max_tokens: int, stream: bool) -> dict[str, Any]:
    """The `POST /v1/messages` body for an OpenAI chat call; raises `InvalidRequest` for what cannot map."""
    request = call.request
    if call.endpoint != "chat" or not isinstance(request, ChatCompletionRequest):
        raise InvalidRequest("Anthropic backends serve only chat completions", code="unsupported_endpoint")
    if request.n is not None and request.n > 1:
        raise InvalidRequest("Anthropic models return one choice per request; n must be 1", param="n")
    system, turns = split_messages(request.messages)
    body: dict[str, Any] = {"model": call.upstream_model, "messages": turns,
                            "max_tokens": request.output_limit or default_max_tokens, "stream": stream}
    if system:
        body["system"] = system
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop_list:
        body["stop_sequences"] = request.stop_list
    if request.user:
        body["metadata"] = {"user_id": request.user}
    if request.tools:
        body["tools"] = [tool_definition(tool) for tool in request.tools]
        choice = tool_choice(request.tool_choice, parallel=request.parallel_tool_calls)
        if choice is not None:
            body["tool_choice"] = choice
    elif (output := output_tool(request)) is not None:  # response_format: a forced tool (_anthropic_format.py)
        body["tools"] = [output.definition()]
        body["tool_choice"] = {"type": "tool", "name": output.name}
    return body


def split_messages(messages: list[ChatMessage]) -> tuple[str, list[dict[str, Any]]]:
    """(system prompt, user/assistant turns): Anthropic takes the system apart and needs alternation."""
    system_parts: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role in ("system", "developer"):
            system_parts.append(_plain_text(message.content))
            continue
        role, blocks = _turn(message)
        if not blocks:
            continue  # Anthropic rejects empty content; dropping it keeps neighbours mergeable
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return "\n\n".join(part for part in system_parts if part), turns


def _turn(message: ChatMessage) -> tuple[str, list[dict[str, Any]]]:
    if message.role == "user":
        return "user", content_blocks(message.content)
    if message.role == "assistant":
        blocks = content_blocks(message.content)
        blocks.extend(tool_use_block(tool_call) for tool_call in message.tool_calls or ())
        return "assistant", blocks
    if message.role == "tool":
        if not message.tool_call_id:
            raise InvalidRequest("a tool message needs tool_call_id", param="messages")
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        blocks = content_blocks(message.content)
        if blocks:
            result["content"] = blocks
        return "user", [result]
    raise InvalidRequest(f"message role {message.role!r} is not supported by Anthropic backends",
                         param="messages")


def content_blocks(content: str | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """OpenAI content (string or parts) -> Anthropic content blocks, empty text left out."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            blocks.append(image_block(part.get("image_url")))
        else:
            raise InvalidRequest(f"content part type {kind!r} is not supported by Anthropic backends",
                                 param="messages")
    return blocks


def image_block(image_url: str | dict[str, Any] | None) -> dict[str, Any]:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise InvalidRequest("image_url needs a url", param="messages")
    if url.startswith("data:"):
        header, comma, data = url[len("data:"):].partition(",")
        media_type, *params = header.split(";")
        if not comma or "base64" not in params or not media_type:
            raise InvalidRequest("image data URLs must be data:<media type>;base64,<data>", param="messages")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest("image_url must be an http(s) URL or a base64 data URL", param="messages")


def tool_use_block(tool_call: dict[str, Any]) -> dict[str, Any]:
    function = tool_call.get("function") or {}
    raw = function.get("arguments") or "{}"
    try:
        arguments = raw if isinstance(raw, dict) else orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"tool call {tool_call.get('id')!r} arguments are not valid JSON",
                             param="messages") from exc
    if not isinstance(arguments, dict):
        raise InvalidRequest(f"tool call {tool_call.get('id')!r} arguments must be a JSON object",
                             param="messages")
    return {"type": "tool_use", "id": tool_call.get("id"), "name": function.get("name"), "input": arguments}


def tool_definition(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool.get("function") or {}
    if tool.get("type", "function") != "function" or not function.get("name"):
        raise InvalidRequest("Anthropic backends accept only function tools with a name", param="tools")
    definition: dict[str, Any] = {"name": function["name"],
                                  "input_schema": function.get("parameters") or _EMPTY_SCHEMA}
    if function.get("description"):
        definition["description"] = function["description"]
    return definition


def tool_choice(choice: str | dict[str, Any] | None, *,
                parallel: bool | None = None) -> dict[str, Any] | None:
    named = {"auto": "auto", "required": "any", "none": "none"}
    function_name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    result: dict[str, Any] | None
    if choice is None:
        result = None
    elif isinstance(choice, str) and choice in named:
        result = {"type": named[choice]}
    elif isinstance(choice, dict) and choice.get("type") == "function" and function_name:
        result = {"type": "tool", "name": function_name}
    else:
        raise InvalidRequest(f"tool_choice {choice!r} is not supported", param="tool_choice")
    if parallel is False and (result is None or result["type"] != "none"):
        result = {**(result or {"type": "auto"}), "disable_parallel_tool_use": True}
    return result


def _plain_text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if any(part.get("type") != "text" for part in content):
        raise InvalidRequest("system messages may hold only text", param="messages")
    return "\n".join(part.get("text") or "" for part in content)


def finish_reason(stop_reason: str | None) -> str | None:
    if stop_reason is None:
        return None
    return FINISH_REASONS.get(stop_reason, "stop")


def usage_from(usage: dict[str, Any] | None) -> Usage | None:
    """Anthropic usage -> `Usage`; cache reads and writes are prompt tokens too, listed apart upstream."""
    if not usage:
        return None
    cache_read = usage.get("cache_read_input_tokens")
    cache_write = usage.get("cache_creation_input_tokens")
    prompt_tokens = int(usage.get("input_tokens") or 0) + int(cache_read or 0) + int(cache_write or 0)
    return Usage(prompt_tokens=prompt_tokens, completion_tokens=int(usage.get("output_tokens") or 0),
                 cached_tokens=int(cache_read) if cache_read is not None else None,
                 cache_write_tokens=int(cache_write) if cache_write is not None else None)


def completion_from_message(call: BackendCall, message: dict[str, Any]) -> Completion:
    """An Anthropic `message` object -> an OpenAI `chat.completion`."""
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    output = output_tool(call.request)
    answered = output is not None and any(block.get("type") == "tool_use" and block.get("name") == output.name
                                          for block in message.get("content") or ())
    for block in message.get("content") or ():
        if answered:  # the forced output tool's input is the answer; text around it is not
            if block.get("type") == "tool_use" and block.get("name") == output.name:  # type: ignore[union-attr]
                texts.append(output.answer(block.get("input")))  # type: ignore[union-attr]
        elif block.get("type") == "text":
            texts.append(block.get("text") or "")
        elif block.get("type") == "tool_use":
            tool_calls.append({"id": block.get("id"), "type": "function",
                               "function": {"name": block.get("name"),
                                            "arguments": orjson.dumps(block.get("input") or {}).decode()}})
    text = "".join(texts)
    reply: dict[str, Any] = {"role": "assistant", "content": text if text or not tool_calls else None}
    if tool_calls:
        reply["tool_calls"] = tool_calls
    stop_reason = message.get("stop_reason")
    finish = "stop" if answered and stop_reason == "tool_use" else finish_reason(stop_reason)
    usage = usage_from(message.get("usage"))
    payload: dict[str, Any] = {
        "id": message.get("id") or new_id("chat"), "object": "chat.completion", "created": int(time.time()),
        "model": call.upstream_model,
        "choices": [{"index": 0, "message": reply, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not None:
        payload["usage"] = usage.to_dict()
    return Completion(payload=payload, text=text, usage=usage, finish_reason=finish)
