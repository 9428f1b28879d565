"""Strings and numbers for a schema, as a model would write them: words of a length the property's name
suggests, values in a plausible range, formats (`date`, `email`, `uuid`…) and patterns honoured."""

from __future__ import annotations

import math
import random
import re
import uuid
from collections.abc import Sequence
from typing import Any

from sluice.structured._regex import sample_matching

_PATTERN_TRIES = 8  # draws for a pattern (with length limits); past them, the last draw, documented as best effort
_MULTIPLE_TRIES = 20
_MAX_LENGTH = 100_000  # characters at most, whatever minLength says (max_tokens cuts a real model sooner)
# (substrings of a property's name, words in the value): how long a model's answer to that field runs.
_STRING_WORDS: tuple[tuple[tuple[str, ...], tuple[int, int]], ...] = (
    (("description", "summary", "explanation", "reason", "content", "text", "body", "comment", "message",
      "answer", "notes", "review", "bio", "detail", "rationale"), (8, 30)),
    (("name", "title", "label", "city", "country", "author", "category", "tag", "status", "type", "kind",
      "topic", "role"), (1, 3)),
)
_DEFAULT_STRING_WORDS = (2, 6)
# (substrings of a property's name, (low, high, decimals)): a plausible range where the schema sets none.
_NUMBER_RANGES: tuple[tuple[tuple[str, ...], tuple[float, float, int]], ...] = (
    (("year",), (1990, 2025, 0)),
    (("age",), (18, 80, 0)),
    (("rating", "stars"), (1, 5, 1)),
    (("percent", "pct"), (0, 100, 1)),
    (("score", "confidence", "probability", "ratio"), (0, 1, 2)),
    (("price", "amount", "cost", "total", "salary"), (5, 500, 2)),
    (("count", "quantity", "number", "num", "size"), (1, 20, 0)),
)
_DEFAULT_RANGE = (1, 100, 2)


def string_value(schema: dict[str, Any], rng: random.Random, words: Sequence[str], name: str | None) -> str:
    """A string valid for `format`, `pattern`, `minLength` and `maxLength` (patterns: best effort)."""
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    hint = (name or "").lower()
    fmt = schema.get("format") or ("email" if "email" in hint else "uri" if hint.endswith("url") else None)
    formatted = _formatted(fmt, rng, words) if "pattern" not in schema else None
    if formatted is not None and low <= len(formatted) <= (high if high is not None else len(formatted)):
        return formatted
    if "pattern" in schema:
        return _matching(schema["pattern"], low, high, rng, words, hint)
    return _fit(_words_text(rng, words, hint), low, high, rng, words)


def _words_text(rng: random.Random, words: Sequence[str], hint: str) -> str:
    span = next((span for keys, span in _STRING_WORDS if any(key in hint for key in keys)), _DEFAULT_STRING_WORDS)
    chosen = [rng.choice(words) for _ in range(rng.randint(*span))]
    if span[1] <= 3:  # names and titles
        return " ".join(word.capitalize() for word in chosen)
    text = " ".join(chosen).capitalize()
    return text + "." if span == _STRING_WORDS[0][1] else text


def _fit(text: str, low: int, high: int | None, rng: random.Random, words: Sequence[str]) -> str:
    low = min(low, _MAX_LENGTH)
    parts, size = [text], len(text)
    while size < low:
        parts.append(" " + rng.choice(words))
        size += len(parts[-1])
    text = "".join(parts)
    if high is not None and len(text) > high:
        text = text[:high]
        if len(text.rstrip()) >= low:
            text = text.rstrip()
    return text


def _matching(pattern: str, low: int, high: int | None, rng: random.Random, words: Sequence[str],
              hint: str) -> str:
    try:
        compiled = re.compile(pattern)
    except re.error:
        return _fit(_words_text(rng, words, hint), low, high, rng, words)
    candidate = ""
    for attempt in range(_PATTERN_TRIES):
        # Words first (`[a-z]+` -> "queue"); where they keep missing (a lookahead wants a digit), letters alone.
        sampled = sample_matching(pattern, rng, words if attempt < _PATTERN_TRIES // 2 else ())
        candidate = sampled or _fit(_words_text(rng, words, hint), low, high, rng, words)
        if compiled.search(candidate) and low <= len(candidate) <= (high if high is not None else len(candidate)):
            return candidate
    return candidate


def _formatted(fmt: str | None, rng: random.Random, words: Sequence[str]) -> str | None:
    if fmt is None:
        return None
    if fmt == "date":
        return _date(rng)
    if fmt == "time":
        return _time(rng)
    if fmt == "date-time":
        return f"{_date(rng)}T{_time(rng)}"
    if fmt in ("email", "idn-email"):
        return f"{rng.choice(words)}.{rng.choice(words)}@example.com"
    if fmt in ("uri", "iri", "uri-reference", "iri-reference"):
        return f"https://{rng.choice(words)}.example.com/{rng.choice(words)}/{rng.choice(words)}"
    if fmt == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if fmt == "ipv4":
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    if fmt == "ipv6":
        return ":".join(f"{rng.randint(0, 0xFFFF):x}" for _ in range(8))
    if fmt in ("hostname", "idn-hostname"):
        return f"{rng.choice(words)}.example.com"
    if fmt == "duration":
        return f"PT{rng.randint(1, 59)}M"
    return None  # other formats are annotations: plain words


def _date(rng: random.Random) -> str:
    return f"{rng.randint(2019, 2026):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _time(rng: random.Random) -> str:
    return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"


def number_value(schema: dict[str, Any], rng: random.Random, *, integer: bool, name: str | None) -> int | float:
    """A number within `minimum`/`maximum` (exclusive ones too) and a `multipleOf`, in a range the name suggests."""
    low, low_open = _bound(schema, "minimum", "exclusiveMinimum", max)
    high, high_open = _bound(schema, "maximum", "exclusiveMaximum", min)
    hint = (name or "").lower()
    typical_low, typical_high, decimals = next(
        (span for keys, span in _NUMBER_RANGES if any(key in hint for key in keys)), _DEFAULT_RANGE)
    if low is not None and high is None:
        typical_low, typical_high = (typical_low, typical_high) if typical_low >= low else (low, low + 100)
    if high is not None and low is None:
        typical_low, typical_high = (typical_low, typical_high) if typical_high <= high else (high - 100, high)
    pick_low = max(typical_low, low) if low is not None else typical_low
    pick_high = min(typical_high, high) if high is not None else typical_high
    if pick_low > pick_high:  # the name's range misses the schema's: the schema wins
        pick_low, pick_high = (low if low is not None else high - 100), (high if high is not None else low + 100)

    def fits(value: float) -> bool:
        return ((low is None or (value > low if low_open else value >= low))
                and (high is None or (value < high if high_open else value <= high)))

    multiple = schema.get("multipleOf")
    if multiple:
        return _multiple_value(multiple, pick_low, pick_high, fits, rng, integer=integer)
    if integer:
        first = math.floor(pick_low) + 1 if low_open and pick_low == low else math.ceil(pick_low)
        last = math.ceil(pick_high) - 1 if high_open and pick_high == high else math.floor(pick_high)
        return rng.randint(first, max(first, last))
    value = rng.uniform(pick_low, pick_high)
    for places in (decimals, decimals + 2, 6):
        if fits(rounded := round(value, places)):
            return int(rounded) if places == 0 else rounded
    return (pick_low + pick_high) / 2 if fits((pick_low + pick_high) / 2) else value


def _bound(schema: dict[str, Any], inclusive: str, exclusive: str, tighter: Any) -> tuple[float | None, bool]:
    """(the bound, whether it is exclusive) from the inclusive and exclusive keywords (the tighter one wins)."""
    closed, opened = schema.get(inclusive), schema.get(exclusive)
    if opened is None or isinstance(opened, bool):
        return closed, False
    if closed is None or tighter(closed, opened) == opened:
        return opened, True
    return closed, False


def _multiple_value(multiple: float, low: float, high: float, fits: Any, rng: random.Random, *,
                    integer: bool) -> int | float:
    """k * multiple in range, exact as jsonschema checks it (`value / multiple` an integer for float multiples)."""
    first, last = math.ceil(low / multiple), math.floor(high / multiple)
    if first > last:
        first = last = math.ceil(low / multiple)
    places = max(0, -math.floor(math.log10(abs(multiple)))) + 2 if isinstance(multiple, float) else 0
    value: int | float = first * multiple
    for _ in range(_MULTIPLE_TRIES):
        steps = rng.randint(first, last)
        value = steps * multiple if places == 0 else round(steps * multiple, places)
        exact = (value / multiple).is_integer() if isinstance(multiple, float) else True
        if integer and float(value).is_integer():
            value = int(value)
        elif integer:
            continue
        if exact and fits(value):
            return value
    return value
