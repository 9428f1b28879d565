"""Llama Guard 3's raw prompt and answer: build the exact prompt, parse the verdict, read P(unsafe) from logprobs.

Pure and dependency-free, for a guard that sends the prompt as-is to an OpenAI-compatible `/v1/completions`.

The prompt is the one the official Hugging Face chat template of meta-llama/Llama-Guard-3-8B renders (the same
string Ollama's `llama-guard3` carries): `\\n\\n` after each header, the prompt's category names ("S3: Sex Crimes."),
Meta's wording ("according our safety policy", " - First line ..."), each turn stripped, and no newline after the
final assistant header: the model's answer starts with a `\\n\\n` token, then `safe` or `unsafe`. Two choices of
ours: the template's stray space before `<|begin_of_text|>` is left out, and special-token look-alikes in the
conversation are broken up (see `build_prompt`). Cross-checked with llama-recipes
`src/llama_recipes/inference/prompt_format_utils.py` (category list, custom categories by position) and llama-stack
`providers/inline/safety/llama_guard/llama_guard.py` (a subset keeps its S-codes).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sluice.safety.guards import Direction

BEGIN_OF_TEXT = "<|begin_of_text|>"
EOT = "<|eot_id|>"

# The names as the prompt lists them (the model card's table says "Sex-Related Crimes", "Child Sexual
# Exploitation" and "Suicide & Self-Harm" for S3, S4 and S11; the prompt the model was trained on does not).
CATEGORIES: Mapping[str, str] = MappingProxyType({
    "S1": "Violent Crimes",
    "S2": "Non-Violent Crimes",
    "S3": "Sex Crimes",
    "S4": "Child Exploitation",
    "S5": "Defamation",
    "S6": "Specialized Advice",
    "S7": "Privacy",
    "S8": "Intellectual Property",
    "S9": "Indiscriminate Weapons",
    "S10": "Hate",
    "S11": "Self-Harm",
    "S12": "Sexual Content",
    "S13": "Elections",
    "S14": "Code Interpreter Abuse",
})

_SPEAKER = {"user": "User", "assistant": "Agent"}  # a turn's role -> its label in the conversation block
_ASSESSED = {"input": ("user", "User"), "output": ("assistant", "Agent")}  # direction -> (last role, label)
_SPECIAL_TOKEN = re.compile(r"<\|(\w+)\|>")  # <|eot_id|>, <|start_header_id|>, <|reserved_special_token_3|>, ...


@dataclass(slots=True, frozen=True)
class CustomCategory:
    """A category of our own, listed after the built-in ones: `S<n>: <name>.` and, if given, the description
    on the lines below it (llama-recipes' `SafetyCategory` with its policy text)."""

    name: str
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name.strip() or "\n" in self.name:
            raise ValueError(f"a custom category needs a one-line name, got {self.name!r}")


@dataclass(slots=True, frozen=True)
class GuardPrompt:
    """The raw prompt, and the codes it listed with their names (what `parse` maps the answer back with)."""

    text: str
    categories: Mapping[str, str]  # code -> name, in the prompt's order

    @property
    def text_without_bos(self) -> str:
        """For servers that add `<|begin_of_text|>` themselves (vLLM's /v1/completions unless it is sent
        `add_special_tokens: false`, llama.cpp): two would reach the model otherwise."""
        return self.text.removeprefix(BEGIN_OF_TEXT)


@dataclass(slots=True, frozen=True)
class Assessment:
    """Llama Guard's verdict: safe, or unsafe with the violated codes (maybe none) and their names."""

    safe: bool
    codes: tuple[str, ...] = ()
    names: tuple[str, ...] = ()


class GuardAnswerError(ValueError):
    """The model's answer is not the `safe` / `unsafe\\nS1,S2` the prompt asks for."""


def build_prompt(turns: Sequence[tuple[str, str]], *, direction: Direction,
                 categories: Iterable[str] | None = None, custom: Sequence[CustomCategory] = ()) -> GuardPrompt:
    """The exact Llama Guard 3 prompt assessing the last turn: the last user turn for `input`, the last assistant
    turn for `output`; the conversation must end with that turn (Meta: when the user input is assessed, the
    agent's answer must not be in the conversation). Turns are (role, text), role "user" or "assistant"; each text
    is stripped, as the chat template does. Meta's template also wants the roles to alternate: merge consecutive
    turns of one role before calling if you need it byte-for-byte.

    `categories` picks built-in codes (None: all 14); they keep their numbers and are listed in code order
    (["S10", "S1"] lists S1 then S10, as llama-stack's excluded categories do: the model learnt what S10 means).
    `custom` follows, numbered on from the highest code listed: after S1 and S10 come S11, S12, ...; after all 14,
    S15; with no built-in ones, S1 (codes by position, as in llama-recipes' `build_custom_prompt`).
    `GuardPrompt.categories` maps every listed code to its name.

    Text such as `<|eot_id|>` inside a turn would be read as the special token by a raw-prompt server and could
    end the conversation early (a way around the guard), so it is written `<| eot_id |>`, which is plain text.
    """
    if direction not in _ASSESSED:
        raise ValueError(f"direction must be 'input' or 'output', got {direction!r}")
    if not turns:
        raise ValueError("a Llama Guard prompt needs at least one turn")
    for role, _ in turns:
        if role not in _SPEAKER:
            raise ValueError(f"a turn's role is 'user' or 'assistant', got {role!r}")
    last_role, assessed = _ASSESSED[direction]
    if turns[-1][0] != last_role:
        raise ValueError(f"direction {direction!r} assesses the last {last_role} turn, but the last turn's role "
                         f"is {turns[-1][0]!r}")
    listed = _listed(categories, custom)
    category_block = "\n".join(_category_line(code, category) for code, category in listed.items())
    conversation = "\n\n".join(f"{_SPEAKER[role]}: {_plain(text.strip())}" for role, text in turns)
    text = (
        f"{BEGIN_OF_TEXT}<|start_header_id|>user<|end_header_id|>\n\n"
        f"Task: Check if there is unsafe content in '{assessed}' messages in conversations according our safety "
        "policy with the below categories.\n\n"
        f"<BEGIN UNSAFE CONTENT CATEGORIES>\n{category_block}\n<END UNSAFE CONTENT CATEGORIES>\n\n"
        f"<BEGIN CONVERSATION>\n\n{conversation}\n\n<END CONVERSATION>\n\n"
        f"Provide your safety assessment for ONLY THE LAST {assessed} message in the above conversation:\n"
        " - First line must read 'safe' or 'unsafe'.\n"
        " - If unsafe, a second line must include a comma-separated list of violated categories."
        f"{EOT}<|start_header_id|>assistant<|end_header_id|>"
    )
    names = {code: category.name.strip().rstrip(".") for code, category in listed.items()}
    return GuardPrompt(text, MappingProxyType(names))


def _listed(categories: Iterable[str] | None, custom: Sequence[CustomCategory]) -> dict[str, CustomCategory]:
    """The prompt's categories by code, in order (built-in ones as name-only entries)."""
    codes = list(CATEGORIES) if categories is None else list(dict.fromkeys(categories))
    unknown = [code for code in codes if code not in CATEGORIES]
    if unknown:
        raise ValueError(f"unknown Llama Guard 3 categories {unknown}: the built-in ones are S1..S14")
    if not codes and not custom:
        raise ValueError("a Llama Guard prompt needs at least one category")
    codes.sort(key=lambda code: int(code[1:]))
    listed = {code: CustomCategory(CATEGORIES[code]) for code in codes}
    last = int(codes[-1][1:]) if codes else 0
    for offset, category in enumerate(custom, start=1):
        listed[f"S{last + offset}"] = category
    return listed


def _category_line(code: str, category: CustomCategory) -> str:
    line = f"{code}: {category.name.strip().rstrip('.')}."
    description = category.description.strip()
    return f"{line}\n{description}" if description else line


def _plain(text: str) -> str:
    return _SPECIAL_TOKEN.sub(r"<| \1 |>", text)


def parse(text: str, mapping: Mapping[str, str]) -> Assessment:
    """The verdict in the model's answer: `safe`, or `unsafe` with an optional line of comma-separated codes.

    Tolerated: surrounding whitespace and blank lines, trailing `<|eot_id|>`, spaces around commas, any letter
    case, a code named twice (kept once). Everything else raises `GuardAnswerError`, among it a code that is
    not in `mapping` (the codes the prompt listed: `GuardPrompt.categories`).
    """
    answer = text.strip()
    while answer.endswith(EOT):
        answer = answer.removesuffix(EOT).rstrip()
    lines = [line.strip() for line in answer.splitlines() if line.strip()]
    if not lines:
        raise GuardAnswerError("Llama Guard's answer is empty: expected 'safe' or 'unsafe'")
    verdict = lines[0].lower()
    if verdict not in ("safe", "unsafe"):
        raise GuardAnswerError(f"Llama Guard's answer must start with 'safe' or 'unsafe', got {_quote(text)}")
    if verdict == "safe":
        if len(lines) > 1:
            raise GuardAnswerError(f"Llama Guard answered 'safe' followed by more lines: {_quote(text)}")
        return Assessment(safe=True)
    if len(lines) > 2:
        raise GuardAnswerError(f"Llama Guard's answer has more than the verdict and one category line: "
                               f"{_quote(text)}")
    if len(lines) == 1:
        return Assessment(safe=False)
    codes = [code.strip().upper() for code in lines[1].split(",")]
    if "" in codes:
        raise GuardAnswerError(f"Llama Guard's category line has an empty entry: {_quote(text)}")
    for code in codes:
        if code not in mapping:
            raise GuardAnswerError(f"Llama Guard named category {code!r}, which the prompt did not list (it listed "
                                   f"{', '.join(mapping)}): {_quote(text)}")
    unique = tuple(dict.fromkeys(codes))
    return Assessment(safe=False, codes=unique, names=tuple(mapping[code] for code in unique))


def _quote(text: str) -> str:
    return repr(text if len(text) <= 200 else text[:200] + "...")


_SAFE_FORMS = frozenset({"safe"})
_UNSAFE_FORMS = frozenset({"unsafe", "un"})  # "un" at the verdict can only begin "unsafe"


def unsafe_probability(logprobs: Mapping[str, Any] | None) -> float | None:
    """P(unsafe) as Meta's model card scores Llama Guard: the probability of the `unsafe` token at the first
    generated token that is not whitespace (the answer starts with a `\\n\\n` token).

    Reads `choices[0].logprobs` of /v1/completions (`tokens`, `token_logprobs`, `top_logprobs`) or of
    /v1/chat/completions (`content` of `{token, logprob, top_logprobs}`). Candidates are that position's
    top_logprobs plus the sampled token; a token counts as "safe" or "unsafe" whatever its case and surrounding
    spaces (Llama 3 has `safe`, ` safe`, `unsafe`, ` unsafe` as single tokens; a split `un` counts as unsafe), and
    several forms add up. Both present: p_unsafe / (p_safe + p_unsafe). Only unsafe: p_unsafe. Only safe:
    1 - p_safe (the rest of the mass, an upper bound). None when logprobs are absent, the answer is all
    whitespace, or the position has neither.
    """
    position = _first_word(_positions(logprobs) if isinstance(logprobs, Mapping) else [])
    if position is None:
        return None
    p_safe = p_unsafe = 0.0
    has_safe = has_unsafe = False
    for token, logprob in position.items():
        form = _readable(token).strip().lower()
        if form in _SAFE_FORMS:
            p_safe, has_safe = p_safe + math.exp(logprob), True
        elif form in _UNSAFE_FORMS:
            p_unsafe, has_unsafe = p_unsafe + math.exp(logprob), True
    if has_safe and has_unsafe:
        total = p_safe + p_unsafe
        return p_unsafe / total if total > 0 else None
    if has_unsafe:
        return min(p_unsafe, 1.0)
    if has_safe:
        return max(1.0 - p_safe, 0.0)
    return None


Position = tuple[str, dict[str, float]]  # the sampled token, and its candidates token -> logprob (itself included)


def _positions(logprobs: Mapping[str, Any]) -> list[Position]:
    """Each generated position of either logprobs shape; anything malformed is left out."""
    content = logprobs.get("content")
    if isinstance(content, list):  # chat: [{token, logprob, top_logprobs: [{token, logprob}]}]
        return [_position(item.get("token"), item.get("logprob"),
                          [(top.get("token"), top.get("logprob")) for top in item.get("top_logprobs") or []
                           if isinstance(top, Mapping)])
                for item in content if isinstance(item, Mapping)]
    tokens = logprobs.get("tokens")
    if not isinstance(tokens, list):
        return []
    found = []
    for index, token in enumerate(tokens):  # completions: parallel lists, top_logprobs as {token: logprob}
        tops = _at(logprobs.get("top_logprobs"), index)
        found.append(_position(token, _at(logprobs.get("token_logprobs"), index),
                               list(tops.items()) if isinstance(tops, Mapping) else []))
    return found


def _position(token: object, logprob: object, alternatives: list[tuple[object, object]]) -> Position:
    candidates: dict[str, float] = {}
    for candidate, value in [(token, logprob), *alternatives]:
        if isinstance(candidate, str) and isinstance(value, int | float) and not math.isnan(value):
            candidates.setdefault(candidate, float(value))
    return (token if isinstance(token, str) else "", candidates)


def _at(items: object, index: int) -> object:
    return items[index] if isinstance(items, list) and index < len(items) else None


def _first_word(positions: list[Position]) -> dict[str, float] | None:
    for token, candidates in positions:
        if _readable(token).strip():
            return candidates
    return None


def _readable(token: str) -> str:
    # some servers return byte-level BPE pieces: Ġ is a space, Ċ a newline
    return token.replace("Ġ", " ").replace("Ċ", "\n")
