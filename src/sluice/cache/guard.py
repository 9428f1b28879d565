"""The semantic cache's second check: a close embedding is not enough when the two prompts differ in a word
that changes the answer.

Sentence embeddings put "convert Celsius to Fahrenheit" and "convert Fahrenheit to Celsius" at similarity
0.997, and "tax deadline in 2024 / 2025", "opening hours on Sunday / Monday", "turn on / off dark mode" above
0.93, while many true paraphrases score lower — no threshold separates them (benchmarks/semantic_threshold.py;
docs/cache.md). So a candidate hit must also pass these rules, read from the two prompt texts:

  numbers    the same numbers (digits, number words, ordinals, roman numerals II-XII)
  negation   the same negation words (not, no, never, without, n't, ...)
  direction  the same words after each "to / from / into / in / for / than / vs" (A to B is not B to A)
  swap       not one content word exchanged for another with the rest alike (Sunday / Monday, on / off)

They refuse some true paraphrases ("How tall is Everest?" / "What is the height of Everest?"): a refused
hit only costs an upstream call, a wrong hit serves a wrong answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER_TEXT = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                "sixteen seventeen eighteen nineteen twenty")
_ORDINAL_TEXT = "first second third fourth fifth sixth seventh eighth ninth tenth"
_NUMBER_WORDS = {word: str(value) for value, word in enumerate(_NUMBER_TEXT.split())}
_ORDINALS = {word: str(value) for value, word in enumerate(_ORDINAL_TEXT.split(), start=1)}
_ROMAN = {"ii": "2", "iii": "3", "iv": "4", "vi": "6", "vii": "7", "viii": "8", "ix": "9", "xi": "11", "xii": "12"}
_DIGITS = re.compile(r"\d+(?:st|nd|rd|th)?")
_NEGATIONS = frozenset({"not", "no", "never", "without", "none", "nobody", "nothing", "neither", "nor", "cannot",
                        "non"})
_CONNECTORS = frozenset({"to", "from", "into", "in", "for", "than", "vs", "versus"})
# Function words: they never decide what a question asks. "on/off", "up/down", "before/after" are content here.
_STOP_TEXT = (
    "a an the of to in for with and or is are was were be been being do does did doing how what whats which who "
    "whom whose when where why can could should would will shall may might must i you my me your yours it its "
    "this that these those there their they them we our us please tell show give way any some about from by at "
    "as into than vs versus if so just")
_STOP = frozenset(_STOP_TEXT.split())
_BRITISH_ISE = re.compile(r"is(e|ed|es|ing|ation)$")  # summarise -> summarize (both sides alike)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@dataclass(slots=True, frozen=True)
class _Reading:
    numbers: tuple[str, ...]
    negations: tuple[str, ...]
    content: frozenset[str]
    after: dict[tuple[str, int], frozenset[str]]  # (connector, its nth occurrence) -> content words after it


def compatible(query: str, cached: str) -> bool:
    """Whether a cached prompt's answer may serve `query`, as far as these rules can tell (see module doc)."""
    a, b = _read(query), _read(cached)
    if a.numbers != b.numbers or a.negations != b.negations:
        return False
    for connector in a.after.keys() & b.after.keys():
        moved_a, moved_b = a.after[connector] - b.after[connector], b.after[connector] - a.after[connector]
        if moved_a & b.content or moved_b & a.content:  # a word after "to" in one is elsewhere in the other
            return False
    only_a, only_b = a.content - b.content, b.content - a.content
    return not (len(only_a) == 1 and len(only_b) == 1 and a.content & b.content)


def _read(text: str) -> _Reading:
    words = _words(text)
    numbers = sorted(_number(word) for word in words if _is_number(word))
    negations = sorted(word for word in words if word in _NEGATIONS)
    content = frozenset(word for word in words if _is_content(word))
    after: dict[tuple[str, int], set[str]] = {}
    seen: dict[str, int] = {}
    current: tuple[str, int] | None = None
    for word in words:
        if word in _CONNECTORS:
            seen[word] = seen.get(word, 0) + 1
            current = (word, seen[word])
            after[current] = set()
        elif current is not None and _is_content(word):
            after[current].add(word)
    return _Reading(tuple(numbers), tuple(negations), content,
                    {connector: frozenset(found) for connector, found in after.items()})


def _words(text: str) -> list[str]:
    """Lower-case words; "n't" becomes "not"; plural -s, British -our and -ise folded ("colours" -> "color")."""
    words = []
    for word in _WORD.findall(text.lower().replace("\u2019", "'")):
        if word.endswith("n't"):
            if word not in ("can't", "won't"):
                words.append(word[:-3])
            words.append("not")
            continue
        word = word.replace("'", "")
        if word in _STOP or word in _NEGATIONS:
            words.append(word)
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        if len(word) > 5 and word.endswith("our"):
            word = word[:-3] + "or"
        word = _BRITISH_ISE.sub(r"iz\1", word) if len(word) > 6 else word
        words.append(word)
    return words


def _is_number(word: str) -> bool:
    return word in _NUMBER_WORDS or word in _ORDINALS or word in _ROMAN or _DIGITS.fullmatch(word) is not None


def _number(word: str) -> str:
    return _NUMBER_WORDS.get(word) or _ORDINALS.get(word) or _ROMAN.get(word) or word.rstrip("stndrh")


def _is_content(word: str) -> bool:
    return word not in _STOP and word not in _NEGATIONS and not _is_number(word)
