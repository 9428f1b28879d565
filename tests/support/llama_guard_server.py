"""A loopback stand-in for Llama Guard 3 behind an OpenAI-compatible /v1/completions (as vLLM serves it).

It reads the prompt the way the model is asked to: the categories listed, the conversation, and which role's
last message to assess. That message is unsafe when it contains a word of `UNSAFE_WORDS`; the answer names the
listed category of that word (`unsafe\\nS9`), or `safe`. With `logprobs` in the request it returns the legacy
completions logprobs of the first token, as vLLM does (P(unsafe) 0.97 or 0.02).

    guard = make_llama_guard_server()
    with serve_app(guard) as url: ...
    guard.state.mode = "garbage"      # answers "I am not sure" ; "http_500": a 500; "hang": never answers
    guard.state.prompts               # every prompt received
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

UNSAFE_WORDS = {"bomb": "Indiscriminate Weapons", "stab": "Violent Crimes", "hack": "Code Interpreter Abuse"}
_LISTED = re.compile(r"^(S\d+): (.+)\.$", re.MULTILINE)
_LAST_ROLE = re.compile(r"ONLY THE LAST (User|Agent) message")


def assessed_message(prompt: str) -> tuple[str, str]:
    """(role, text) of the last message of the role the prompt asks about."""
    role = _LAST_ROLE.search(prompt)
    conversation = prompt.split("<BEGIN CONVERSATION>", 1)[1].split("<END CONVERSATION>", 1)[0]
    assert role is not None
    messages = re.split(r"\n\n(?=(?:User|Agent): )", conversation.strip("\n"))
    mine = [message.split(": ", 1)[1] for message in messages if message.startswith(role.group(1) + ": ")]
    return role.group(1), mine[-1] if mine else ""


def make_llama_guard_server() -> Starlette:
    async def completions(request: Request) -> JSONResponse:
        body = await request.json()
        state = request.app.state
        prompt = body["prompt"]
        state.prompts.append(prompt)
        if state.mode == "http_500":
            return JSONResponse({"error": {"message": "boom", "type": "server_error"}}, status_code=500)
        if state.mode == "hang":
            await asyncio.Event().wait()  # until the client gives up
        codes = {name: code for code, name in _LISTED.findall(prompt)}
        _, text = assessed_message(prompt)
        hits = [codes[name] for word, name in UNSAFE_WORDS.items() if word in text.lower() and name in codes]
        answer = "I am not sure" if state.mode == "garbage" else ("unsafe\n" + ",".join(hits)) if hits else "safe"
        choice: dict[str, Any] = {"index": 0, "text": answer, "finish_reason": "stop", "logprobs": None}
        if body.get("logprobs"):
            p_unsafe = 0.97 if hits else 0.02
            first = "unsafe" if hits else "safe"
            choice["logprobs"] = {"tokens": [first], "token_logprobs": [math.log(max(p_unsafe, 1 - p_unsafe))],
                                  "top_logprobs": [{"safe": math.log(1 - p_unsafe), "unsafe": math.log(p_unsafe)}],
                                  "text_offset": [0]}
        return JSONResponse({"id": "cmpl-guard", "object": "text_completion", "created": int(time.time()),
                             "model": body.get("model"), "choices": [choice],
                             "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": 2,
                                       "total_tokens": len(prompt.split()) + 2}})

    app = Starlette(routes=[Route("/v1/completions", completions, methods=["POST"])])
    app.state.mode = "ok"
    app.state.prompts = []
    return app


__all__ = ["UNSAFE_WORDS", "assessed_message", "make_llama_guard_server"]
