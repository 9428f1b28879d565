"""The OpenAI bodies guards read and rewrite: the prompt's text (and masking it in place), an answer's text, an
answer rewritten (masked, the prompt's values put back) whole or as it streams out, and the answer a guard
withholds (`finish_reason: "content_filter"`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sluice.backends import ChatCompletionRequest, Chunk, Completion
from sluice.safety.guards import Guard, unmask

if TYPE_CHECKING:
    from sluice.backends import GenerationRequest

CONTENT_FILTER = "content_filter"
_HEAD_FIELDS = ("id", "created", "model", "system_fingerprint")
_OPEN_PLACEHOLDER = re.compile(r"\[[A-Z_0-9]{0,40}$")
Rewrite = Callable[[str], str]  # what an answer's text becomes before it leaves: masked, the prompt's values put back


def answer_rewrite(masks: list[Guard], vault: dict[str, str] | None) -> Rewrite | None:
    """What an answer's text goes through before it leaves: masking by `masks`, then the prompt's values put back
    where the answer uses their numbered placeholders (`vault`); None when neither applies."""
    if not masks and not vault:
        return None
    if not vault:
        return lambda text: masked(text, masks)
    return lambda text: unmask(masked(text, masks), vault)  # new PII masked; the prompt's own put back


def input_masking(masks: list[Guard], vault: dict[str, str] | None) -> Rewrite:
    """The prompt's masking: the first guard that unmasks numbers its placeholders into `vault`."""
    numbering = next((guard for guard in masks if getattr(guard, "unmask", False)), None) if vault is not None \
        else None
    if numbering is None:
        return lambda text: masked(text, masks)
    others = [guard for guard in masks if guard is not numbering]
    return lambda text: masked(numbering.mask_numbered(text, vault), others)  # type: ignore[attr-defined]


def rewritten_release(out: list[tuple[Chunk, int]], rest: list[tuple[Chunk, int]], rewrite: Rewrite,
                       endpoint: str) -> tuple[list[tuple[Chunk, int]], list[tuple[Chunk, int]]]:
    """Of the chunks due for release (`out`), the longest run whose text rewrites the same alone as it does
    followed by everything after it (so a card number, or a placeholder to put a value back in, split across the
    cut is never half sent), with that text rewritten; the rest stays pending."""
    texts = [chunk.text for chunk, _ in out]
    whole = rewrite("".join(texts) + "".join(chunk.text for chunk, _ in rest))
    for count in range(len(out), 0, -1):
        prefix = "".join(texts[:count])
        if _OPEN_PLACEHOLDER.search(prefix):
            continue  # it may end in half a placeholder (`[EMAIL_`): wait for the rest, however short the hold-back
        masked = rewrite(prefix)
        if not whole.startswith(masked):
            continue
        if masked == prefix:
            return out[:count], out[count:] + rest
        released: list[tuple[Chunk, int]] = []
        for chunk, end in out[:count]:
            if chunk.text:
                if not masked and chunk.finish_reason is None and chunk.usage is None:
                    continue  # its text went out in an earlier chunk of this run
                chunk = chunk.with_text(masked, endpoint)
                masked = ""
            released.append((chunk, end))
        return released, out[count:] + rest
    return [], out + rest



def prompt_text(request: GenerationRequest) -> str:
    """What input guards read: the users' messages (text parts too), or a completion's prompt strings. System
    and assistant messages are the operator's and the model's own."""
    if isinstance(request, ChatCompletionRequest):
        parts: list[str] = []
        for message in request.messages:
            if message.role != "user":
                continue
            content = message.content
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(str(part.get("text", "")) for part in content
                             if isinstance(part, dict) and part.get("type") == "text")
        return "\n".join(parts)
    prompt = request.prompt
    if isinstance(prompt, str):
        return prompt
    return "\n".join(item for item in prompt if isinstance(item, str))


def masked(text: str, masks: list[Guard]) -> str:
    for guard in masks:
        text = guard.mask(text)  # type: ignore[attr-defined]
    return text


def mask_prompt(request: GenerationRequest, raw_body: dict[str, Any] | None, masking: Rewrite) -> None:
    """Mask the users' messages (or the prompt) in the request and in the body forwarded upstream, in place."""
    done: dict[str, str] = {}  # the request and the forwarded body hold the same texts: each is masked once

    def masked(text: str) -> str:
        if text not in done:
            done[text] = masking(text)
        return done[text]

    def content(value: Any) -> Any:
        if isinstance(value, str):
            return masked(value)
        if isinstance(value, list):
            return [{**part, "text": masked(part["text"])}
                    if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
                    else part for part in value]
        return value

    if isinstance(request, ChatCompletionRequest):
        for message in request.messages:
            if message.role == "user":
                message.content = content(message.content)
        sent = raw_body.get("messages") if raw_body is not None else None
        for message in sent if isinstance(sent, list) else ():
            if isinstance(message, dict) and message.get("role") == "user":
                message["content"] = content(message.get("content"))
        return
    request.prompt = content(request.prompt)  # type: ignore[assignment]
    if raw_body is not None and "prompt" in raw_body:
        raw_body["prompt"] = content(raw_body["prompt"])


def rewritten_answer(answer: Completion, endpoint: str, rewrite: Rewrite) -> Completion:
    """The answer with every choice's text rewritten (usage and everything else kept)."""
    payload = dict(answer.payload)
    choices = []
    for choice in payload.get("choices") or ():
        choice = dict(choice)
        if endpoint == "chat" and isinstance((choice.get("message") or {}).get("content"), str):
            choice["message"] = {**choice["message"], "content": rewrite(choice["message"]["content"])}
        elif endpoint != "chat" and isinstance(choice.get("text"), str):
            choice["text"] = rewrite(choice["text"])
        choices.append(choice)
    payload["choices"] = choices
    return Completion(payload, rewrite(answer.text), answer.usage, answer.finish_reason)


def masked_answer(answer: Completion, endpoint: str, masks: list[Guard]) -> Completion:
    return rewritten_answer(answer, endpoint, lambda text: masked(text, masks)) if masks else answer


def answer_text(payload: dict[str, Any], endpoint: str) -> str:
    """Every choice's text of a whole answer (a chat message's content, a completion's text)."""
    texts = []
    for choice in payload.get("choices") or ():
        if endpoint == "chat":
            content = (choice.get("message") or {}).get("content")
            texts.append(content if isinstance(content, str) else "")
        else:
            texts.append(choice.get("text") or "")
    return "\n".join(texts)


def filtered(answer: Completion, endpoint: str) -> Completion:
    """The answer with its text withheld and `finish_reason: "content_filter"` on every choice (usage kept)."""
    payload = dict(answer.payload)
    choices = []
    for choice in payload.get("choices") or ():
        choice = {**choice, "finish_reason": CONTENT_FILTER, "logprobs": None}
        if endpoint == "chat":
            choice["message"] = {"role": "assistant", "content": ""}
        else:
            choice["text"] = ""
        choices.append(choice)
    payload["choices"] = choices
    return Completion(payload, "", answer.usage, CONTENT_FILTER)


def cut_chunk(like: dict[str, Any], endpoint: str) -> Chunk:
    """The last chunk of a stream a guard stopped: no text, `finish_reason: "content_filter"`."""
    head = {name: like[name] for name in _HEAD_FIELDS if name in like}
    if endpoint == "chat":
        head["object"] = "chat.completion.chunk"
        choice: dict[str, Any] = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": CONTENT_FILTER}
    else:
        head["object"] = "text_completion"
        choice = {"index": 0, "text": "", "logprobs": None, "finish_reason": CONTENT_FILTER}
    return Chunk({**head, "choices": [choice]}, finish_reason=CONTENT_FILTER)


__all__ = ["CONTENT_FILTER", "Rewrite", "answer_rewrite", "answer_text", "cut_chunk", "filtered", "input_masking",
           "mask_prompt", "masked", "masked_answer", "prompt_text", "rewritten_answer", "rewritten_release"]
