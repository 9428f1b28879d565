"""The `safety` section: named guards (docs/safety.md), and which guards each model runs (`models.<name>.guards`)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

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
    # presidio-analyzer's pattern recognizers as well (offline, no spaCy model): credit cards, crypto wallets,
    # IBANs, US SSNs / passports / bank numbers / ITINs / driver's licences, UK NHS numbers, medical licences,
    # dates... `entities` picks some (presidio's names, e.g. US_SSN); empty: nine the built-in detectors lack
    # (safety/presidio.py DEFAULT_ENTITIES, ~0.6 ms per 1 KB; all seventeen take ~10 ms).
    presidio: bool = False
    entities: list[str] = []
    min_score: float = Field(0.5, ge=0, le=1)  # presidio's own confidence at which a finding counts
    # Streamed answers: 0 checks the window at every chunk (~15 µs each); N checks each time N characters arrived.
    # Text waits until checked, so a pace above `hold_back_chars` delays the first token further.
    every_chars: int = Field(0, ge=0, le=65536)
    # Masking a prompt with numbered placeholders ([EMAIL_1], [PHONE_2]) and putting the values back where the
    # answer uses them: the upstream never sees them, the user gets a readable answer
    # (docs/safety.md#pii-putting-the-prompts-values-back).
    unmask: bool = False


class _CalledGuardBase(_GuardBase):
    """What guards that call out (a model, a hook) share: a deadline, what a failure means, and when they run."""

    timeout_s: float = Field(5.0, gt=0, le=300)  # the check's deadline; past it the guard has failed
    # A guard that fails (timeout, error, an answer that makes no sense): `allow` lets the text through (fail
    # open) and records why; `block` refuses it (fail closed: a 503 `guard_unavailable` for a prompt, a cut answer).
    on_error: Literal["allow", "block"] = "allow"
    # Input only: `before` the upstream call (the prompt waits for the verdict), or `during` it (both start at
    # once; the answer is held until the guard passes, so it costs max(guard, time to first token), not the sum).
    when: Literal["before", "during"] = "before"
    # Streamed answers: checked each time this many new characters arrived, and at the end; the text after the
    # last check is held back (a model guard cannot be run per token).
    every_chars: int = Field(256, ge=16, le=65536)


def _import_path(value: str) -> str:
    if not _HOOK.match(value):
        raise ValueError(f"{value!r}: give the hook as `module.path:attribute` (e.g. `my_guards:check`)")
    return value


_HOOK = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class ToxicityGuardConfig(_GuardBase):
    """An offline toxicity classifier (alt-profanity-check: TF-IDF word features into linear SVMs, ~0.06 ms per
    1 KB); the text is flagged when its probability of being abusive reaches `threshold`."""

    type: Literal["toxicity"]
    category: str = "toxicity"
    # 0.6: on the design half of the shipped sets, 20/33 toxic texts found and 0/106 benign ones (0.5 flags a
    # benign one; 0.8 finds 16/33). docs/safety.md#measured has the untouched half and the blind set.
    threshold: float = Field(0.6, gt=0, le=1)
    # Streamed answers: checked each time this much text arrived (~40 µs a check). Text waits until checked: the
    # default matches the default hold-back, so the first token is not delayed further.
    every_chars: int = Field(64, ge=16, le=65536)


class InjectionGuardConfig(_CalledGuardBase):
    """Prompt injection and jailbreak heuristics (instruction overrides, role-play jailbreaks, encoded payloads),
    plus an optional classifier hook `module:attr` returning a score in [0, 1] (or a bool)."""

    type: Literal["injection"]
    category: str = "injection"
    direction: GuardDirection = "input"
    heuristics: bool = True
    classifier: str | None = None
    threshold: float = Field(0.5, gt=0, le=1)  # the classifier's score at which it finds

    @field_validator("classifier")
    @classmethod
    def _classifier_path(cls, value: str | None) -> str | None:
        return None if value is None else _import_path(value)


class CustomGuardConfig(_CalledGuardBase):
    """Your own check, `module.path:attribute`: a function (sync or async) `(text, direction, context)` returning
    None/False (nothing found), True, a score in [0, 1] (found at `threshold`), or a dict with `score` /
    `flagged`, and optionally `category` and `rule` (docs/safety.md#custom-guards)."""

    type: Literal["custom"]
    hook: str
    threshold: float = Field(0.5, gt=0, le=1)

    @field_validator("hook")
    @classmethod
    def _hook_path(cls, value: str) -> str:
        return _import_path(value)


class LlamaGuardCategory(_Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=4000)


class LlamaGuardConfig(_CalledGuardBase):
    """Llama Guard 3 served by any configured model (vLLM, Ollama, Groq, an OpenAI-compatible server), called
    through the gateway's own chain for `model` (so it is routed, timed, priced and logged like any request)."""

    type: Literal["llama_guard"]
    category: str = "unsafe"  # used when the answer names no category; otherwise its category names are used
    model: str  # a model name from `models` that serves Llama Guard 3 on /v1/completions
    categories: list[str] | None = None  # a subset of S1..S14; None: all fourteen
    custom_categories: list[LlamaGuardCategory] = []  # your own, numbered after the chosen ones
    # With logprobs from the backend, the score is P("unsafe") at the first token; it finds at this threshold.
    # Without them, the model's own first line decides.
    threshold: float = Field(0.5, gt=0, le=1)
    max_chars: int = Field(16000, ge=256, le=400_000)  # the newest part of a conversation it is shown

    @field_validator("categories")
    @classmethod
    def _known_codes(cls, codes: list[str] | None) -> list[str] | None:
        if codes is None:
            return None
        known = [f"S{number}" for number in range(1, 15)]
        for index, code in enumerate(codes):
            if code not in known:
                raise ValueError(f"entry {index} ({code!r}) is not a Llama Guard 3 category; use S1..S14")
        if not codes:
            raise ValueError("list at least one category, or leave the key out for all fourteen")
        return codes


GuardConfig = Annotated[KeywordGuardConfig | RegexGuardConfig | PIIGuardConfig | ToxicityGuardConfig
                        | InjectionGuardConfig | CustomGuardConfig | LlamaGuardConfig, Field(discriminator="type")]


class GuardPolicy(_Strict):
    """What a team or a key adds to every model's guards, and which guards its requests may skip."""

    guards: list[str] = []  # run after the model's own
    may_skip: list[str] = []  # a request may drop these with `x-sluice-guards: -name`


class SafetyConfig(_Strict):
    guards: dict[str, GuardConfig] = {}  # name -> guard; a model lists the names it runs, in order
    # Streamed answers: each output chunk is checked on the last `window_chars` characters of the answer, and the
    # last `hold_back_chars` are held back until a later check passes, so a match no longer than the hold-back
    # never reaches the client (docs/safety.md#streamed-answers).
    window_chars: int = Field(512, ge=16, le=65536)
    hold_back_chars: int = Field(64, ge=0, le=65536)
    # Per team (a virtual key's `team`) and per key (its id or name): guards added, and guards it may skip.
    teams: dict[str, GuardPolicy] = {}
    keys: dict[str, GuardPolicy] = {}

    @field_validator("guards")
    @classmethod
    def _guard_names(cls, guards: dict[str, GuardConfig]) -> dict[str, GuardConfig]:
        for name in guards:
            if not _CATEGORY.match(name):
                raise ValueError(f"guard name {name!r}: use lower-case letters, digits, - and _, starting with a "
                                 "letter")
        return guards

    @model_validator(mode="after")
    def _policies_name_known_guards(self) -> SafetyConfig:
        for section, policies in (("teams", self.teams), ("keys", self.keys)):
            for who, policy in policies.items():
                for field in ("guards", "may_skip"):
                    for index, name in enumerate(getattr(policy, field)):
                        if name not in self.guards:
                            known = ", ".join(sorted(self.guards)) or "none"
                            raise ValueError(f"safety.{section}.{who}.{field}.{index}: unknown guard {name!r} "
                                             f"(defined: {known})")
        return self


__all__ = ["CustomGuardConfig", "GuardAction", "GuardConfig", "GuardDirection", "GuardMode", "GuardPolicy",
           "InjectionGuardConfig", "KeywordGuardConfig", "LlamaGuardCategory", "LlamaGuardConfig", "PIIGuardConfig",
           "RegexGuardConfig", "SafetyConfig", "ToxicityGuardConfig"]
