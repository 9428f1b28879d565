"""Datasets: random prompts with real token counts, ShareGPT and JSONL files, all seeded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluice.cost import count_text_tokens
from sluice.loadtest.datasets import (
    DatasetError,
    DatasetSpec,
    jsonl_requests,
    make_requests,
    random_requests,
    sharegpt_requests,
)

MODEL = "gpt-4o-mini"


def test_random_prompts_have_exactly_the_asked_token_count() -> None:
    requests = random_requests(5, input_len=64, output_len=32, model=MODEL, seed=3)
    assert [r.prompt_tokens for r in requests] == [64] * 5
    assert all(count_text_tokens(r.prompt, MODEL) == 64 for r in requests)
    assert [r.output_len for r in requests] == [32] * 5


def test_random_range_ratio_spreads_lengths_within_bounds() -> None:
    requests = random_requests(50, input_len=100, output_len=40, range_ratio=0.5, model=MODEL, seed=4)
    assert all(50 <= r.prompt_tokens <= 150 and 20 <= r.output_len <= 60 for r in requests)
    assert len({r.prompt_tokens for r in requests}) > 10
    assert all(count_text_tokens(r.prompt, MODEL) == r.prompt_tokens for r in requests)


def test_random_is_seeded() -> None:
    first = random_requests(3, input_len=20, output_len=5, range_ratio=0.3, model=MODEL, seed=9)
    assert first == random_requests(3, input_len=20, output_len=5, range_ratio=0.3, model=MODEL, seed=9)
    assert first != random_requests(3, input_len=20, output_len=5, range_ratio=0.3, model=MODEL, seed=10)


def _conversation(prompt: str, reply: str) -> dict:
    return {"conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": reply}]}


def test_sharegpt_uses_first_turn_and_reply_length_and_filters_short_pairs(tmp_path: Path) -> None:
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps([
        _conversation("tell me about rivers and stones please", "rivers carve stones over many long years"),
        _conversation("hi", "hello there my friend"),  # prompt under 4 tokens: filtered
        {"conversations": [{"from": "human", "value": "alone without any reply"}]},  # one turn: skipped
    ]))
    [request] = sharegpt_requests(path, 1, model=MODEL, seed=0)
    assert request.prompt.startswith("tell me about rivers")
    assert request.output_len == count_text_tokens("rivers carve stones over many long years", MODEL)
    with pytest.raises(DatasetError, match="only 1 usable"):
        sharegpt_requests(path, 2, model=MODEL)


def test_jsonl_reads_prompts_with_optional_output_len(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "one two three"}\n\n{"prompt": "four five", "output_len": 7}\n')
    requests = sorted(jsonl_requests(path, 2, model=MODEL, output_len=16, seed=1), key=lambda r: r.prompt)
    assert [(r.prompt, r.prompt_tokens, r.output_len) for r in requests] == [("four five", 2, 7),
                                                                            ("one two three", 3, 16)]
    path.write_text('{"text": "no prompt key"}\n')
    with pytest.raises(DatasetError):
        jsonl_requests(path, 1, model=MODEL, output_len=16)


def test_random_prefix_is_shared_and_adds_to_the_input_len_as_in_vllm() -> None:
    plain = random_requests(4, input_len=12, output_len=3, model=MODEL, seed=5)
    prefixed = random_requests(4, input_len=12, output_len=3, model=MODEL, seed=5, prefix_len=20)
    prefix = prefixed[0].prompt[: len(prefixed[0].prompt) - len(plain[0].prompt) - 1]
    assert count_text_tokens(prefix, MODEL) == 20
    for before, after in zip(plain, prefixed, strict=True):
        assert after.prompt == f"{prefix} {before.prompt}"  # the prompts themselves are those without a prefix
        assert after.prompt_tokens == count_text_tokens(after.prompt, MODEL) == 32


def test_prefix_count_rotates_several_shared_prefixes() -> None:
    requests = random_requests(6, input_len=8, output_len=3, model=MODEL, seed=2, prefix_len=10, prefix_count=3)
    heads = [" ".join(r.prompt.split()[:10]) for r in requests]
    assert len(set(heads)) == 3 and heads[:3] == heads[3:]


def test_turns_make_conversations_of_follow_up_prompts() -> None:
    plain = random_requests(3, input_len=8, output_len=4, model=MODEL, seed=1)
    conversations = random_requests(3, input_len=8, output_len=4, model=MODEL, seed=1, turns=3)
    assert [c.prompt for c in conversations] == [p.prompt for p in plain] and not plain[0].follow_ups
    assert all(len(c.follow_ups) == 2 for c in conversations)
    assert all(f.prompt_tokens == 8 and f.output_len == 4 and not f.follow_ups
               for c in conversations for f in c.follow_ups)
    assert len({f.prompt for c in conversations for f in c.follow_ups}) == 6


def test_prefix_and_turns_are_random_dataset_options(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "one two three"}\n')
    with pytest.raises(ValueError, match="--dataset-name random"):
        make_requests(DatasetSpec("jsonl", path, turns=2), 1, model=MODEL)
