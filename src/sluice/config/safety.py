"""The `safety` section: named guards (docs/safety.md), and which guards each model runs (`models.<name>.guards`)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from sluice.config._base import _Strict

GuardDirection = Literal["input", "output", "both"]  # the prompt, the answer (streamed or whole), or both
GuardAction = Literal["block", "flag"]  # block: refuse / cut the answer; flag: record only (pii guards: also mask)
GuardMode = Literal["enforce", "monitor"]  # monitor: decide and record what it would do, never act
_CATEGORY = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class _GuardBase(_Strict):
    category: str = "policy"  # what a verdict is filed under: metrics, the request log, the error message
    direction: GuardDirection = "both"
    action: GuardAction = "block"
    mode: GuardMode = "enforce"

    @field_validator("category")
    @classmethod
    def _category_name(cls, category: str) -> str:
        if not _CATEGORY.match(category):
            raise ValueError(f"{category!r}: use lower-case letters, digits, - and _, starting with a letter")
        return category


class KeywordGuardConfig(_GuardBase):
    """Words and phrases, matched whole-word on text normalised against evasions (case, Unicode look-alikes,
    zero-width characters, leetspeak, letters spaced or dotted apart)."""

    type: Literal["keyword"]
    words: list[str] = Field(min_length=1)
    allow: list[str] = []  # phrases in which a listed word does not count ("kill the process")

    @field_validator("words", "allow")
    @classmethod
    def _not_blank(cls, words: list[str]) -> list[str]:
        for index, word in enumerate(words):
            if not word.strip():
                raise ValueError(f"entry {index} is blank")
        return words


class RegexGuardConfig(_GuardBase):
    """Python regular expressions searched in the text; a match inside an `allow` match does not count."""

    type: Literal["regex"]
    patterns: list[str] = Field(min_length=1)
    allow: list[str] = []
    # Python's `re` cannot use its fast literal scan when ignoring case: 5 patterns over 1 KB take 3 µs as written
    # and 32 µs with this on (benchmarks/guard_latency.py). Words belong in a keyword guard; `(?i)` scopes it to
    # one pattern.
    ignore_case: bool = False

    @field_validator("patterns", "allow")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for index, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"entry {index} ({pattern!r}) is not a valid regular expression: {exc}") from None
            if re.compile(pattern).search(""):
                raise ValueError(f"entry {index} ({pattern!r}) matches empty text, so it would match everything")
        return patterns


class PIIGuardConfig(_GuardBase):
    """Personal data and secrets, found by the request log's own detectors (telemetry/redact.py): e-mail
    addresses, phone numbers, payment cards (Luhn-checked), IBANs (checksum-checked), IP addresses, API keys,
    tokens, private keys and assigned passwords. `mask` replaces each with its placeholder (`[EMAIL]`...)."""

    type: Literal["pii"]
    category: str = "pii"
    action: Literal["block", "flag", "mask"] = "mask"  # type: ignore[assignment]


GuardConfig = Annotated[KeywordGuardConfig | RegexGuardConfig | PIIGuardConfig, Field(discriminator="type")]


class SafetyConfig(_Strict):
    guards: dict[str, GuardConfig] = {}  # name -> guard; a model lists the names it runs, in order
    # Streamed answers: each output chunk is checked on the last `window_chars` characters of the answer, and the
    # last `hold_back_chars` are held back until a later check passes, so a match no longer than the hold-back
    # never reaches the client (docs/safety.md#streamed-answers).
    window_chars: int = Field(512, ge=16, le=65536)
    hold_back_chars: int = Field(64, ge=0, le=65536)

    @field_validator("guards")
    @classmethod
    def _guard_names(cls, guards: dict[str, GuardConfig]) -> dict[str, GuardConfig]:
        for name in guards:
            if not _CATEGORY.match(name):
                raise ValueError(f"guard name {name!r}: use lower-case letters, digits, - and _, starting with a "
                                 "letter")
        return guards


__all__ = ["GuardAction", "GuardConfig", "GuardDirection", "GuardMode", "KeywordGuardConfig", "PIIGuardConfig",
           "RegexGuardConfig", "SafetyConfig"]
