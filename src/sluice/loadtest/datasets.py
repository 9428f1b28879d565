"""Benchmark prompts: synthetic `random`, ShareGPT-format JSON and JSONL of prompts; all seeded."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from sluice.cost import count_text_tokens

# Common English words, each one token with its leading space in the BPE vocabularies we count with.
_WORDS = ("the", "of", "and", "to", "in", "is", "for", "on", "that", "with", "as", "by", "at", "from", "this",
          "be", "are", "was", "it", "an", "or", "have", "not", "but", "all", "time", "new", "one", "two",
          "day", "year", "work", "part", "way", "use", "data", "model", "system", "water", "light", "road",
          "city", "house", "river", "stone", "paper", "music", "table", "green", "blue", "red", "small",
          "large", "early", "late", "open", "close")


class DatasetError(ValueError):
    """A dataset file is missing, malformed, or yields too few prompts."""


PREFIX_SEED_OFFSET = 7_919  # prefixes and follow-up turns draw apart: the prompts stay those of before
TURNS_SEED_OFFSET = 104_729


@dataclass(slots=True, frozen=True)
class BenchRequest:
    prompt: str
    prompt_tokens: int
    output_len: int  # max tokens to ask for
    follow_ups: tuple[BenchRequest, ...] = ()  # multi-turn: the next user turns, each sent after the last answer


def _sample_lens(rng: np.random.Generator, mean_len: int, range_ratio: float, n: int) -> np.ndarray:
    """As vLLM: uniform integers in [floor(L·(1−r)), ceil(L·(1+r))]; range_ratio 0 gives exactly L."""
    if not 0 <= range_ratio < 1:
        raise ValueError("random_range_ratio must be in [0, 1)")
    low = max(1, math.floor(mean_len * (1 - range_ratio)))
    high = max(low, math.ceil(mean_len * (1 + range_ratio)))
    return rng.integers(low, high + 1, size=n)


def prompt_of_tokens(target: int, model: str, rng: np.random.Generator) -> tuple[str, int]:
    """Random words trimmed or padded until the model's tokenizer counts `target` tokens (or the nearest)."""
    words = [str(w) for w in rng.choice(_WORDS, size=target)]
    count = count_text_tokens(" ".join(words), model)
    while count > target and len(words) > 1:
        words.pop()
        count = count_text_tokens(" ".join(words), model)
    while count < target:
        words.append(str(rng.choice(_WORDS)))
        count = count_text_tokens(" ".join(words), model)
    return " ".join(words), count


def random_requests(num_prompts: int, *, input_len: int, output_len: int, range_ratio: float = 0.0,
                    model: str, seed: int = 0, prefix_len: int = 0, prefix_count: int = 1,
                    turns: int = 1) -> list[BenchRequest]:
    """Random prompts of `input_len` tokens (± the range ratio). With `prefix_len`, each starts with one of
    `prefix_count` shared prefixes of that many tokens, in turn (vLLM's `--random-prefix-len` is one prefix;
    the prompt is then prefix + `input_len` tokens). With `turns` > 1 each is a conversation: `turns − 1`
    follow-up user turns of the same lengths."""
    if prefix_len < 0 or prefix_count < 1 or turns < 1:
        raise ValueError("--random-prefix-len must be >= 0, --prefix-count and --turns >= 1")
    rng = np.random.default_rng(seed)
    input_lens = _sample_lens(rng, input_len, range_ratio, num_prompts)
    output_lens = _sample_lens(rng, output_len, range_ratio, num_prompts)
    prefix_rng = np.random.default_rng(seed + PREFIX_SEED_OFFSET)
    prefixes = [prompt_of_tokens(prefix_len, model, prefix_rng)[0] for _ in range(prefix_count)] if prefix_len else []
    follow_ups = (random_requests(num_prompts * (turns - 1), input_len=input_len, output_len=output_len,
                                  range_ratio=range_ratio, model=model, seed=seed + TURNS_SEED_OFFSET)
                  if turns > 1 else [])
    requests = []
    for index, (in_len, out_len) in enumerate(zip(input_lens, output_lens, strict=True)):
        prompt, tokens = prompt_of_tokens(int(in_len), model, rng)
        if prefixes:
            prompt = f"{prefixes[index % len(prefixes)]} {prompt}"
            tokens = count_text_tokens(prompt, model)
        turns_after = tuple(follow_ups[index * (turns - 1):(index + 1) * (turns - 1)])
        requests.append(BenchRequest(prompt, tokens, int(out_len), turns_after))
    return requests


def sharegpt_requests(path: Path, num_prompts: int, *, model: str, seed: int = 0,
                      output_len: int | None = None) -> list[BenchRequest]:
    """First human turn as the prompt; output length that of the reply (or `output_len`). As vLLM, entries
    with fewer than two turns are skipped, and pairs with prompt or reply under 4 tokens, prompt over 1024
    or total over 2048 tokens are filtered out."""
    entries = [e for e in _load_json(path) if len(e.get("conversations", [])) >= 2]
    np.random.default_rng(seed).shuffle(entries)
    requests: list[BenchRequest] = []
    for entry in entries:
        if len(requests) == num_prompts:
            break
        prompt, reply = entry["conversations"][0]["value"], entry["conversations"][1]["value"]
        prompt_tokens = count_text_tokens(prompt, model)
        reply_tokens = output_len or count_text_tokens(reply, model)
        if output_len is None and (prompt_tokens < 4 or reply_tokens < 4 or prompt_tokens > 1024
                                   or prompt_tokens + reply_tokens > 2048):
            continue
        requests.append(BenchRequest(prompt, prompt_tokens, reply_tokens))
    return _enough(requests, num_prompts, path)


def jsonl_requests(path: Path, num_prompts: int, *, model: str, output_len: int, seed: int = 0) -> list[BenchRequest]:
    """One JSON object per line with "prompt" and optionally "output_len"; shuffled with the seed."""
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: {exc}") from None
    if any(not isinstance(row, dict) or not isinstance(row.get("prompt"), str) for row in rows):
        raise DatasetError(f"{path}: every line must be an object with a string \"prompt\"")
    np.random.default_rng(seed).shuffle(rows)
    requests = [BenchRequest(row["prompt"], count_text_tokens(row["prompt"], model),
                             int(row.get("output_len", output_len))) for row in rows[:num_prompts]]
    return _enough(requests, num_prompts, path)


def _load_json(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: {exc}") from None
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a JSON list of ShareGPT conversations")
    return data


def _enough(requests: list[BenchRequest], num_prompts: int, path: Path) -> list[BenchRequest]:
    if len(requests) < num_prompts:
        raise DatasetError(f"{path}: only {len(requests)} usable prompts, {num_prompts} asked for")
    return requests


@dataclass(slots=True, frozen=True)
class DatasetSpec:
    """Which prompts to send, as the `--dataset-*`, `--random-*` and `--sharegpt-*` flags name them."""

    name: str = "random"  # random, sharegpt or jsonl
    path: Path | None = None
    input_len: int = 1024
    output_len: int = 128
    range_ratio: float = 0.0
    sharegpt_output_len: int | None = None
    prefix_len: int = 0  # random: shared prefix tokens before each prompt
    prefix_count: int = 1  # random: how many distinct shared prefixes
    turns: int = 1  # random: user turns per conversation

    def with_input_len(self, input_len: int) -> DatasetSpec:
        return replace(self, input_len=input_len)

    def describe(self) -> dict[str, object]:
        """The spec under vLLM's result-file names."""
        return {"dataset_name": self.name, "dataset_path": str(self.path) if self.path else None,
                "random_input_len": self.input_len, "random_output_len": self.output_len,
                "random_range_ratio": self.range_ratio, "random_prefix_len": self.prefix_len,
                "prefix_count": self.prefix_count, "turns": self.turns}


def make_requests(spec: DatasetSpec, num_prompts: int, *, model: str, seed: int = 0) -> list[BenchRequest]:
    """`num_prompts` requests from the spec's dataset; raises `DatasetError` (bad file) or `ValueError` (bad spec)."""
    if spec.name == "random":
        return random_requests(num_prompts, input_len=spec.input_len, output_len=spec.output_len,
                               range_ratio=spec.range_ratio, model=model, seed=seed, prefix_len=spec.prefix_len,
                               prefix_count=spec.prefix_count, turns=spec.turns)
    if spec.prefix_len or spec.prefix_count != 1 or spec.turns != 1:
        raise ValueError("--random-prefix-len, --prefix-count and --turns need --dataset-name random")
    if spec.name not in ("sharegpt", "jsonl"):
        raise ValueError(f"--dataset-name must be random, sharegpt or jsonl, not {spec.name!r}")
    if spec.path is None:
        raise ValueError(f"--dataset-name {spec.name} needs --dataset-path")
    if spec.name == "sharegpt":
        return sharegpt_requests(spec.path, num_prompts, model=model, seed=seed, output_len=spec.sharegpt_output_len)
    return jsonl_requests(spec.path, num_prompts, model=model, seed=seed, output_len=spec.output_len)
