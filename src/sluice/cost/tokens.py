"""Token counting fallback: real BPE tokenizers (quicktok) when an upstream reports no usage."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import quicktok


@lru_cache(maxsize=256)
def encoding_for(model: str) -> quicktok.Tokenizer:
    """The model family's tokenizer when known offline (GPT, Llama 3, Qwen), else cl100k as an estimate."""
    try:
        return quicktok.encoding_for_model(model)
    except KeyError:
        return quicktok.get_encoding("cl100k_base")


def count_text_tokens(text: str, model: str) -> int:
    return len(encoding_for(model).encode(text)) if text else 0


def count_message_tokens(messages: list[Any], model: str) -> int:
    """Prompt tokens of chat messages: content text plus a small per-message framing allowance."""
    encoding = encoding_for(model)
    total = 0
    for message in messages:
        content = message.content if hasattr(message, "content") else message.get("content")
        if isinstance(content, str):
            total += len(encoding.encode(content))
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += len(encoding.encode(part["text"]))
        total += 4  # role and separators, as chat templates add them
    return total + 2


def count_prompt_tokens(prompt: str | list[Any], model: str) -> int:
    if isinstance(prompt, str):
        return count_text_tokens(prompt, model)
    if prompt and isinstance(prompt[0], int):
        return len(prompt)
    return sum(len(p) if isinstance(p, list) else count_text_tokens(p, model) for p in prompt)
