"""The tokenizer fallback picks the model family's real tokenizer offline (cl100k as a marked approximation)."""

from __future__ import annotations

import pytest
import quicktok

from sluice.cost import count_text_tokens, tokenizer_for
from sluice.cost.tokens import encoding_for

TEXT = "Grüße aus München — 東京タワー 🚀 refactoring"  # counts differ between the vocabularies


@pytest.mark.parametrize(("model", "encoding"), [
    ("gpt-4o", "o200k_base"), ("gpt-4o-mini-2024-07-18", "o200k_base"), ("chatgpt-4o-latest", "o200k_base"),
    ("gpt-4.1", "o200k_base"), ("gpt-4.1-nano", "o200k_base"), ("gpt-5-mini", "o200k_base"),
    ("o1", "o200k_base"), ("o3-mini", "o200k_base"), ("o4-mini", "o200k_base"),
    ("gpt-oss-20b", "o200k_harmony"),
    ("gpt-4", "cl100k_base"), ("gpt-4-turbo", "cl100k_base"), ("gpt-3.5-turbo", "cl100k_base"),
    ("text-embedding-3-small", "cl100k_base"),
    ("meta-llama/Llama-3.1-8B-Instruct", "llama3"), ("llama-3.1-8b-instant", "llama3"), ("llama3.1:8b", "llama3"),
    ("meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo", "llama3"), ("llama-3.3-70b-versatile", "llama3"),
    ("Qwen/Qwen2.5-7B-Instruct", "qwen3"), ("qwen3-8b", "qwen3"), ("Qwen/QwQ-32B", "qwen3"),
])
def test_known_families_get_their_own_tokenizer(model: str, encoding: str) -> None:
    choice = tokenizer_for(model)
    assert (choice.encoding, choice.exact) == (encoding, True)
    assert encoding_for(model).encode(TEXT) == quicktok.get_encoding(encoding).encode(TEXT)


@pytest.mark.parametrize("model", ["claude-3-5-haiku-latest", "mistral-large-2411", "meta-llama/Llama-4-Scout-17B",
                                   "google/gemma-2-9b-it", "llama-30b", "omni-x"])
def test_other_models_are_counted_with_cl100k_and_marked_approximate(model: str) -> None:
    choice = tokenizer_for(model)
    assert (choice.encoding, choice.exact) == ("cl100k_base", False)


def test_the_family_changes_the_count() -> None:
    counts = {model: count_text_tokens(TEXT, model) for model in ("gpt-4", "gpt-4.1", "llama-3.1-8b")}
    assert counts == {"gpt-4": 18, "gpt-4.1": 14, "llama-3.1-8b": 14}
    assert count_text_tokens("", "gpt-4o") == 0
