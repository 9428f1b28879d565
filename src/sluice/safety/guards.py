"""Guard layers behind one interface: `check(text, direction) -> Verdict | None` (None: nothing found).

Two kinds. *Local* guards (`Guard`: keyword, regex, PII, toxicity, injection heuristics) run in the event loop
and take microseconds to a few milliseconds. *Called* guards (`CalledGuard`: Llama Guard, custom hooks, an
injection classifier) are awaited with a deadline (`timeout_s`) and a failure policy (`on_error`); the stage
runs every local guard first, then the called ones concurrently, and stops at the first block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sluice.config import KeywordGuardConfig, PIIGuardConfig, RegexGuardConfig
from sluice.safety.normalize import tokens
from sluice.telemetry import CARD, EMAIL, IBAN, IP, PHONE, SECRET, redact

Direction = Literal["input", "output"]


@dataclass(slots=True, frozen=True)
class Verdict:
    """What one guard found: which rule, under what category, what it does about it (and whether it may)."""

    guard: str  # its name in `safety.guards`
    layer: str  # keyword | regex
    direction: Direction
    category: str
    action: str  # block | flag | mask
    mode: str  # enforce | monitor
    rule: str  # which rule matched: the listed word, or `pattern[i]` (never the user's text)
    latency_s: float = 0.0  # the check's time, set by the stage that timed it
    score: float | None = None  # a classifier's or model's score in [0, 1], where it gives one

    @property
    def blocks(self) -> bool:
        """It stops the request or the answer: a blocking guard that enforces (monitor only records)."""
        return self.action == "block" and self.mode == "enforce"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"guard": self.guard, "layer": self.layer, "direction": self.direction,
                                "category": self.category, "action": self.action, "mode": self.mode,
                                "rule": self.rule}
        if self.score is not None:
            body["score"] = round(self.score, 4)
        return body


class Guard(Protocol):
    """A local guard: checked in the event loop (microseconds to milliseconds)."""

    name: str
    layer: str
    mode: str
    directions: frozenset[Direction]

    def check(self, text: str, direction: Direction) -> Verdict | None: ...


@dataclass(slots=True, frozen=True)
class GuardContext:
    """What a called guard knows of the request: handed to custom hooks as a dict (`as_dict`)."""

    request_id: str
    model: str
    endpoint: str
    key_id: str | None
    team: str | None
    request: Any = None  # the gateway's RequestContext (Llama Guard links its own call to it)

    def as_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "model": self.model, "endpoint": self.endpoint,
                "key_id": self.key_id, "team": self.team}


class CalledGuard(Protocol):
    """A guard that calls out (a model, a hook): awaited with a deadline; a failure is handled by `on_error`."""

    name: str
    layer: str
    mode: str
    directions: frozenset[Direction]
    timeout_s: float
    on_error: str  # allow | block
    when: str  # before | during (input)
    every_chars: int  # streamed answers: check each time this much new text arrived

    async def judge(self, text: str, direction: Direction, context: GuardContext) -> Verdict | None: ...


class GuardFailed(Exception):
    """A called guard could not decide (its model is down, it answered garbage): the message says why."""


class GuardBase:
    """What every guard shares: its settings, and turning a finding into a verdict."""

    layer = ""
    every_chars = 0  # streamed answers: 0 checks at every chunk; a costlier guard waits for this much new text

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self.category: str = config.category
        self.action: str = config.action
        self.mode: str = config.mode
        self.directions: frozenset[Direction] = (frozenset(("input", "output")) if config.direction == "both"
                                                 else frozenset((config.direction,)))

    def _called(self, config: Any) -> None:
        """A called guard's settings (config's `_CalledGuardBase`): deadline, failure policy, when, pace."""
        self.timeout_s: float = config.timeout_s
        self.on_error: str = config.on_error
        self.when: str = config.when
        self.every_chars = config.every_chars

    def _verdict(self, direction: Direction, rule: str, *, category: str | None = None,
                 score: float | None = None) -> Verdict:
        return Verdict(self.name, self.layer, direction, category or self.category, self.action, self.mode, rule,
                       score=score)



def _outside(span: tuple[int, int], allowed: list[tuple[int, int]]) -> bool:
    return not any(start <= span[0] and span[1] <= end for start, end in allowed)


class _Phrases:
    """Phrases as token tuples, found in a text's tokens with one dict lookup per token (no regex scan)."""

    def __init__(self, phrases: list[str]) -> None:
        self.single: dict[str, str] = {}  # one-token phrases
        self.by_first: dict[str, list[tuple[tuple[str, ...], str]]] = {}  # longer ones, by their first token
        for phrase in phrases:
            words = tuple(tokens(phrase))
            if not words:
                continue
            if len(words) == 1:
                self.single.setdefault(words[0], phrase)
            else:
                self.by_first.setdefault(words[0], []).append((words, phrase))
        self.first = frozenset(self.single) | frozenset(self.by_first)  # any phrase starts with one of these
        # one-word phrases that letters spaced apart can spell ("b o m b"), by length
        self.spelled = {word: phrase for word, phrase in self.single.items() if len(word) >= 2}
        self.spelled_lengths = sorted({len(word) for word in self.spelled})

    def find(self, words: list[str]) -> list[tuple[int, int, str]]:
        """(first token, end token, phrase) of every occurrence."""
        found = []
        present = self.first.intersection(words)  # one pass in C; most texts share no word with the list
        if present:
            single, by_first = self.single, self.by_first
            for index, word in enumerate(words):
                if word not in present:
                    continue
                phrase = single.get(word)
                if phrase is not None:
                    found.append((index, index + 1, phrase))
                for tail, longer in by_first.get(word, ()):
                    if tuple(words[index:index + len(tail)]) == tail:
                        found.append((index, index + len(tail), longer))
        if self.spelled:
            found.extend(self._spelled(words))
        return found

    def _spelled(self, words: list[str]) -> list[tuple[int, int, str]]:
        """Runs of single letters joined back: `b o m b`, `b.o.m.b`, `a b-o-m-b` (any listed word inside a run)."""
        found: list[tuple[int, int, str]] = []
        start = 0
        count = len(words)
        while start < count:
            if len(words[start]) != 1 or start + 1 == count or len(words[start + 1]) != 1:
                start += 1
                continue
            end = start
            while end < count and len(words[end]) == 1:
                end += 1
            if end - start >= 2:
                joined = "".join(words[start:end])
                for offset in range(len(joined)):
                    for length in self.spelled_lengths:
                        phrase = self.spelled.get(joined[offset:offset + length])
                        if phrase is not None and offset + length <= len(joined):
                            found.append((start + offset, start + offset + length, phrase))
            start = end
        return found


class KeywordGuard(GuardBase):
    """Listed words and phrases, whole words, on normalised tokens (normalize.py); `allow` phrases excuse them."""

    layer = "keyword"

    def __init__(self, name: str, config: KeywordGuardConfig) -> None:
        super().__init__(name, config)
        self._words = _Phrases(config.words)
        self._allow = _Phrases(config.allow) if config.allow else None
        # how far back a match can start before a streamed answer's newest text (letters spaced apart double it)
        self.reach = 2 * max(len(word) for word in config.words) + 16

    def check(self, text: str, direction: Direction) -> Verdict | None:
        words = tokens(text)
        found = self._words.find(words)
        if not found:
            return None
        allowed = [(start, end) for start, end, _ in self._allow.find(words)] if self._allow is not None else []
        for start, end, phrase in sorted(found):
            if not allowed or _outside((start, end), allowed):
                return self._verdict(direction, phrase)
        return None


class RegexGuard(GuardBase):
    """Regular expressions searched in the text as sent; a match inside an `allow` match does not count."""

    layer = "regex"

    def __init__(self, name: str, config: RegexGuardConfig) -> None:
        super().__init__(name, config)
        flags = re.IGNORECASE if config.ignore_case else 0
        self._patterns = [re.compile(pattern, flags) for pattern in config.patterns]
        allow = "|".join(f"(?:{pattern})" for pattern in config.allow)
        self._allow = re.compile(allow, flags) if allow else None

    def check(self, text: str, direction: Direction) -> Verdict | None:
        allowed = [match.span() for match in self._allow.finditer(text)] if self._allow is not None else []
        for index, pattern in enumerate(self._patterns):
            for match in pattern.finditer(text):
                if not allowed or _outside(match.span(), allowed):
                    return self._verdict(direction, f"pattern[{index}]")
                # an allowed match: look further in the text for one that is not
        return None


_PLACEHOLDERS = (("email", EMAIL), ("phone", PHONE), ("card", CARD), ("iban", IBAN), ("ip", IP), ("secret", SECRET))


class PIIGuard(GuardBase):
    """The request log's PII and secret detectors as a guard; `mask` gives the text with placeholders."""

    layer = "pii"

    def __init__(self, name: str, config: PIIGuardConfig, presidio: Any = None) -> None:
        super().__init__(name, config)
        self.presidio = presidio  # a PresidioDetector (presidio.py) when `presidio: true`
        # Streamed answers: at every chunk (0) or each `every_chars` of new text (text is held until checked;
        # masking is done on what leaves whatever the pace).
        self.every_chars = config.every_chars
        self.unmask = config.unmask

    def check(self, text: str, direction: Direction) -> Verdict | None:
        masked = redact(text)
        kinds = []
        if masked != text:
            kinds = [kind for kind, placeholder in _PLACEHOLDERS
                     if masked.count(placeholder) > text.count(placeholder)] or ["pii"]
        if self.presidio is not None:  # on what the built-in detectors left, so nothing is found twice
            kinds.extend(sorted({entity.lower() for _, _, entity in self.presidio.find(masked)}))
        return self._verdict(direction, ",".join(kinds)) if kinds else None

    def mask(self, text: str) -> str:
        masked = redact(text)
        return self.presidio.mask(masked) if self.presidio is not None else masked

    def mask_numbered(self, text: str, vault: dict[str, str]) -> str:
        """`mask`, with each value's placeholder numbered (`[EMAIL_1]`; the same value keeps its number across
        calls) and recorded in `vault` (placeholder -> value). A value whose exact span cannot be told (it does
        not mask to its placeholder on its own) keeps the plain placeholder: it is never put back."""
        masked = self.mask(text)
        if masked == text or _PLACEHOLDER.search(text):  # a text that already holds placeholders stays plain
            return masked
        parts = _PLACEHOLDER.split(masked)  # literal, kind, literal, kind, ..., literal
        out, position = [parts[0]], len(parts[0])
        numbers = {value: placeholder for placeholder, value in vault.items()}
        for index in range(1, len(parts), 2):
            kind, literal = parts[index], parts[index + 1]
            plain = f"[{kind}]"
            end = self._value_end(text, position, literal, plain, last=index + 2 >= len(parts))
            value = text[position:end]
            placeholder = plain
            if self.mask(value) == plain:  # exactly this value, and nothing of its surroundings
                placeholder = numbers.get(value) or f"[{kind}_{sum(p.startswith(f'[{kind}_') for p in vault) + 1}]"
                vault[placeholder], numbers[value] = value, placeholder
            out += (placeholder, literal)
            position = end + len(literal)
        return "".join(out)

    def _value_end(self, text: str, start: int, literal: str, plain: str, *, last: bool) -> int:
        """Where the value that became `plain` ends: the first place the following literal text can start at
        such that the value alone masks to `plain` (else the first place it can start at all)."""
        if last:
            return len(text) - len(literal)
        limit = min(len(text), start + 512)
        ends = [index for index in range(start + 1, limit + 1) if text.startswith(literal, index)] if literal \
            else list(range(start + 1, limit + 1))
        for end in ends:
            if self.mask(text[start:end]) == plain:
                return end
        return ends[0] if ends else len(text)


_PLACEHOLDER = re.compile(r"\[([A-Z][A-Z_]*[A-Z])\]")  # [EMAIL], [US_SSN]: what masking writes
_NUMBERED = re.compile(r"\[[A-Z][A-Z_]*_\d+\]")  # [EMAIL_1]: what numbered masking writes


def unmask(text: str, vault: dict[str, str]) -> str:
    """Put back the values a numbered masking replaced (placeholders not in `vault` stay as they are)."""
    if "[" not in text:
        return text
    return _NUMBERED.sub(lambda match: vault.get(match.group(), match.group()), text)


__all__ = ["CalledGuard", "Direction", "Guard", "GuardBase", "GuardContext", "GuardFailed", "KeywordGuard", "PIIGuard",
           "RegexGuard", "Verdict", "unmask"]
