"""Deterministic output text, built token by token from real tokens of the model family's tokenizer."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from functools import lru_cache

from sluice.cost import encoding_for

# Plain English words; each model family keeps those its tokenizer encodes as one token, both as
# " word" and as " Word"/"Word" (sentence starts), so every emitted piece is exactly one real token.
_WORDS = """
the a an this that these those some every each other another same new old good great small large long short
high low early late first last next own only real simple clear open public common full free ready right
model system server request token batch cache memory queue latency time step rate load cost price budget
user team service model data record report result value number level point line page file table field
gateway router backend replica cluster node network region zone engine worker process thread task job
policy limit window metric signal event alert rule check test trial sample answer question reason idea plan
will can may must should would could might does did has had is was are were be been being have do
run runs ran send sends sent read reads write writes keep keeps kept make makes made take takes took give
gives gave find finds found show shows shown move moves moved hold holds held turn turns start starts stop
stops wait waits call calls return returns serve serves build builds measure measures follow follows
slowly quickly often always never again soon still also just even well far near here there now then today
and or but so yet because while when where after before since until unless though if than as
of in on at by for with from into over under about between through during without within along across
"""
_PUNCTUATION = (".", ",")


@dataclass(slots=True, frozen=True)
class Vocabulary:
    """The pieces a tokenizer encodes as single tokens: mid-sentence words and sentence starts."""

    words: tuple[str, ...]  # " word"
    starts: tuple[str, ...]  # " Word"
    first_words: tuple[str, ...]  # "Word" (the very first piece of an answer)


@lru_cache(maxsize=32)
def vocabulary(model: str) -> Vocabulary:
    encoding = encoding_for(model)

    def single(piece: str) -> bool:
        return len(encoding.encode_ordinary(piece)) == 1

    kept = [w for w in dict.fromkeys(_WORDS.split())
            if single(" " + w) and single(" " + w.capitalize()) and single(w.capitalize())]
    if len(kept) < 50 or not all(single(p) for p in _PUNCTUATION):
        raise ValueError(f"the tokenizer for {model!r} splits too many plain words to generate text")
    return Vocabulary(tuple(" " + w for w in kept), tuple(" " + w.capitalize() for w in kept),
                      tuple(w.capitalize() for w in kept))


def seed_for(*parts: object) -> int:
    """A stable 64-bit seed from any parts (Python's `hash` of a str changes between processes)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class TextGenerator:
    """Sentences of plain words whose tokens are known in advance, so counts are exact by construction.

    `pieces(seed, n)` returns n strings; each is one token of the model family's tokenizer and
    `"".join(pieces)` encodes back to exactly n tokens.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.vocab = vocabulary(model)

    def pieces(self, seed: int, num_tokens: int) -> list[str]:
        rng = random.Random(seed)
        vocab = self.vocab
        out: list[str] = []
        while len(out) < num_tokens:
            out.append(rng.choice(vocab.starts if out else vocab.first_words))
            for _ in range(rng.randint(3, 13)):
                if rng.random() < 0.08:
                    out.append(",")  # only ever between two words: ",," or ",." would merge into one token
                out.append(rng.choice(vocab.words))
            out.append(".")
        return out[:num_tokens]
