"""Token counting fallback: real BPE tokenizers (quicktok, offline) when an upstream reports no usage.

Counts made here are estimates and are marked so (`RequestRecord.tokens_estimated`); upstream usage always
wins. The model family picks the tokenizer (see `ENCODING_RULES` and docs/cost.md):

  o-series (o1, o3, o4-mini…), gpt-4o, chatgpt-4o, gpt-4.1, gpt-4.5, gpt-5   -> o200k_base  (exact)
  gpt-oss                                                                  -> o200k_harmony (exact)
  gpt-4, gpt-3.5, text-embedding-3 / ada-002                               -> cl100k_base (exact)
  Llama 3 / 3.1 / 3.2 / 3.3 (any host's spelling)                          -> llama3      (exact)
  Qwen2 / Qwen2.5 / Qwen3 / QwQ                                            -> qwen3       (exact: one vocabulary)
  everything else (Claude, Mistral, Gemma, Llama 4, DeepSeek…)             -> cl100k_base (approximate)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import quicktok


@dataclass(slots=True, frozen=True)
class TokenizerChoice:
    encoding: str  # quicktok encoding name
    exact: bool  # False: the model's own tokenizer is not available offline, cl100k stands in


# First match wins; patterns see the lower-cased last path segment ("meta-llama/Llama-3.1-8B" -> "llama-3.1-8b").
_RULES = (
    (r"^gpt-oss", "o200k_harmony"),
    (r"^(o\d)(-|$)", "o200k_base"),
    (r"^(chatgpt-4o|gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5)", "o200k_base"),
    (r"^(gpt-4|gpt-3\.5|text-embedding-3|text-embedding-ada)", "cl100k_base"),
    (r"^(meta-)?llama-?3([.:\-_]|$)", "llama3"),
    (r"^(qwen2|qwen3|qwq)", "qwen3"),
)
ENCODING_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), enc) for p, enc in _RULES)
FALLBACK = TokenizerChoice("cl100k_base", exact=False)


def tokenizer_for(model: str) -> TokenizerChoice:
    """Which tokenizer counts `model`'s tokens, and whether it is the model's own."""
    name = model.lower().rsplit("/", 1)[-1]
    for pattern, encoding in ENCODING_RULES:
        if pattern.search(name):
            return TokenizerChoice(encoding, exact=True)
    return FALLBACK


@lru_cache(maxsize=256)
def encoding_for(model: str) -> quicktok.Tokenizer:
    """The tokenizer for `model` (see `tokenizer_for`); loaded once per encoding by quicktok."""
    return quicktok.get_encoding(tokenizer_for(model).encoding)


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
