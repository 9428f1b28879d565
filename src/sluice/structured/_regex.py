"""Strings that match a regular expression (a JSON Schema `pattern`): a walk over Python's own parse of it.

Covers literals, `.`, classes (`[A-Z0-9_-]`, `[^x]`, `\\d \\w \\s` and their negations), groups, alternation,
backreferences and every repeat (`? * + {n} {n,m}`, lazy and possessive). Anchors and word boundaries emit
nothing; lookarounds, conditionals and inline flags are skipped, so the caller checks the result with
`re.search` (as jsonschema does) and draws again.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Sequence
from functools import lru_cache
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any

_EXTRA_REPEATS = 4  # `*`, `+`, `{n,}`: at most this many beyond the minimum
_PRINTABLE = tuple(string.ascii_letters + string.digits + " -_.,:/@#")  # for `.` and negated classes
_CATEGORIES = {
    sre.CATEGORY_DIGIT: lambda ch: ch.isdigit(),
    sre.CATEGORY_NOT_DIGIT: lambda ch: not ch.isdigit(),
    sre.CATEGORY_WORD: lambda ch: ch.isalnum() or ch == "_",
    sre.CATEGORY_NOT_WORD: lambda ch: not (ch.isalnum() or ch == "_"),
    sre.CATEGORY_SPACE: lambda ch: ch.isspace(),
    sre.CATEGORY_NOT_SPACE: lambda ch: not ch.isspace(),
}
_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", sre.MAX_REPEAT)}
_SKIPPED = {sre.AT, sre.ASSERT, sre.ASSERT_NOT, sre.GROUPREF_EXISTS}


class _Unsupported(Exception):
    pass


def sample_matching(pattern: str, rng: random.Random, words: Sequence[str]) -> str | None:
    """A string the pattern matches in full, or None where the pattern is not a regex this walk can follow."""
    tree = _parsed(pattern)
    if tree is None:
        return None
    out: list[str] = []
    try:
        _emit(tree, rng, words, out, {})
    except _Unsupported:
        return None
    return "".join(out)


@lru_cache(maxsize=256)
def _parsed(pattern: str) -> Any:
    try:
        return _parser.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return None


def _emit(items: Any, rng: random.Random, words: Sequence[str], out: list[str], groups: dict[int, str]) -> None:
    for op, arg in items:
        if op == sre.LITERAL:
            out.append(chr(arg))
        elif op in (sre.NOT_LITERAL, sre.ANY):
            out.append(rng.choice([ch for ch in _PRINTABLE if op == sre.ANY or ord(ch) != arg]))
        elif op == sre.IN:
            out.append(rng.choice(_class_chars(arg)))
        elif op in _REPEATS:
            low, high, body = arg
            count = low + rng.randint(0, min(high - low, _EXTRA_REPEATS))
            word = _word_for(body, low, high, rng, words) if count > 1 else None
            if word is not None:
                out.append(word)
            else:
                for _ in range(count):
                    _emit(body, rng, words, out, groups)
        elif op == sre.SUBPATTERN:
            group, body = arg[0], arg[-1]
            start = len(out)
            _emit(body, rng, words, out, groups)
            if group is not None:
                groups[group] = "".join(out[start:])
        elif op == sre.BRANCH:
            _emit(rng.choice(arg[1]), rng, words, out, groups)
        elif op == sre.GROUPREF:
            out.append(groups.get(arg, ""))
        elif op == getattr(sre, "ATOMIC_GROUP", None):
            _emit(arg, rng, words, out, groups)
        elif op not in _SKIPPED:
            raise _Unsupported(op)


def _class_chars(items: Any) -> list[str]:
    """The printable characters a `[...]` class admits (its own characters where none is printable ASCII)."""
    negated = bool(items) and items[0][0] == sre.NEGATE
    matches = [ch for ch in _PRINTABLE if _in_class(items, ch) != negated]
    if matches:
        return matches
    if negated:
        raise _Unsupported("a negated class that excludes every printable character")
    own = [chr(arg) for op, arg in items if op == sre.LITERAL]
    own += [chr(low + offset) for op, arg in items if op == sre.RANGE for low, high in [arg]
            for offset in range(min(high - low + 1, 64))]
    if not own:
        raise _Unsupported("a class of categories only")
    return own


def _in_class(items: Any, ch: str) -> bool:
    code = ord(ch)
    for op, arg in items:
        if (op == sre.LITERAL and code == arg) or (op == sre.RANGE and arg[0] <= code <= arg[1]):
            return True
        if op == sre.CATEGORY and _CATEGORIES.get(arg, lambda _: False)(ch):
            return True
    return False


def _word_for(body: Any, low: int, high: int, rng: random.Random, words: Sequence[str]) -> str | None:
    """A real word where a repeat of one class admits it (`[a-z]+` -> "queue"): text, not letter soup."""
    if len(body) != 1 or body[0][0] != sre.IN:
        return None
    fits = _words_in_class(tuple(body[0][1]), low, high, tuple(words))
    return rng.choice(fits) if fits and rng.random() < 0.8 else None


@lru_cache(maxsize=256)
def _words_in_class(items: tuple[Any, ...], low: int, high: int, words: tuple[str, ...]) -> tuple[str, ...]:
    if items and items[0][0] == sre.NEGATE:
        return ()
    return tuple(variant for word in words for variant in (word, word.capitalize(), word.upper())
                 if low <= len(variant) <= high and all(_in_class(items, ch) for ch in variant))
