"""Cost-based routing: score a prompt's difficulty from cheap features and pick the cheap or the strong model.

The default classifier (`rules_score`) is a fixed logistic combination of features read from the text — no
model to load, microseconds per prompt. A custom one is any `<module>:<attr>` callable with the same signature:
`(turns) -> probability that the prompt is hard`, in [0, 1].
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from sluice.backends import ChatCompletionRequest, CompletionRequest
from sluice.errors import InvalidRequest

Choice = Literal["easy", "hard"]
DIFFICULTY_HEADER = "x-sluice-difficulty"  # easy | hard: the caller overrides the classifier


@dataclass(slots=True, frozen=True)
class Turn:
    """One message of the conversation as plain text (non-text parts dropped)."""

    role: str
    text: str


Classifier = Callable[[Sequence[Turn]], float]


@dataclass(slots=True, frozen=True)
class DifficultyFeatures:
    words: int  # in every turn
    turns: int  # user and assistant turns (system prompts not counted)
    code: int  # code fences (2 each) and code-like tokens
    math: int  # math symbols, LaTeX, math vocabulary
    reasoning: int  # multi-step / reasoning words (prove, derive, design, compare, step by step, ...)
    constraints: int  # explicit requirements (must, at least, exactly, without, numbered lists, ...)


_WORD = re.compile(r"\S+")
_FENCE = re.compile(r"```")
_SQL = re.compile(r"\b(SELECT|FROM|WHERE|JOIN|GROUP BY|INSERT|UPDATE)\b")  # upper case only: "from" is English too
_CODE = re.compile(r"\b(def|class|return|import|function|const|var|public|void|struct|fn|impl|"
                   r"#include|async|await|lambda|regex|SQL|API|JSON|YAML|stack ?traces?|traceback|"
                   r"segfault|compiler?|goroutine|mutex|kubernetes|docker|asyncio|thread-safe)\b|[{};]|=>|::|"
                   r"\w+\(\)|\w\.\w+\(", re.IGNORECASE)
_MATH = re.compile(r"[=+*/^√∑∫∂≤≥≠∞π]|\\(frac|sum|int|sqrt|lim)|\b(integral|derivative|eigen\w*|matrix|"
                   r"theorem|lemma|probability|expected value|variance|modulo|polynomial|equations?|"
                   r"induction|converge\w*|diverge\w*|asymptotic|complexity|irrational)\b", re.IGNORECASE)
_REASONING = re.compile(r"\b(prove|proof|derive|derivation|design|architect\w*|analy[sz]e|analysis|compare|"
                        r"contrast|trade-?offs?|step[- ]by[- ]step|explain (why|how)|why (does|is)|justify|"
                        r"evaluate|evidence|optimi[sz]e|implement|debug|refactor|critique|strategy|"
                        r"pros and cons|diagnose|"
                        r"how would you|what would happen|edge cases?|migrat\w+|propose|plan|"
                        r"rebut\w*|show that|model|persuasive)\b", re.IGNORECASE)
_CONSTRAINT = re.compile(r"\b(must|should not|at least|at most|exactly|no more than|without|only use|"
                         r"in under|within|ensure|constraints?|requirements?|assume|budget)\b|"
                         r"^\s*(\d+[.)]|[-*•])\s|\s\d+\)\s", re.IGNORECASE | re.MULTILINE)

# Logistic weights, set by hand against benchmarks/data/difficulty_prompts.jsonl (benchmarks/cost_router.py).
_BIAS = -2.5
_W_LOG_WORDS = 0.6  # per unit of ln(1 + words): 10 words ≈ 1.4, 40 words ≈ 2.2, 150 words ≈ 3.0
_W_TURNS = 0.25  # per user/assistant turn beyond the first
_W_CODE = 0.6
_W_MATH = 0.55
_W_REASONING = 1.4
_W_CONSTRAINTS = 0.6
_CAP = 4  # counts above this add nothing: a long paste is not "more hard" than a short one


def features(turns: Sequence[Turn]) -> DifficultyFeatures:
    text = "\n".join(turn.text for turn in turns)
    return DifficultyFeatures(
        words=len(_WORD.findall(text)),
        turns=sum(1 for turn in turns if turn.role in ("user", "assistant")),
        code=len(_FENCE.findall(text)) * 2 + len(_CODE.findall(text)) + len(_SQL.findall(text)),
        math=len(_MATH.findall(text)),
        reasoning=len(_REASONING.findall(text)),
        constraints=len(_CONSTRAINT.findall(text)),
    )


def rules_score(turns: Sequence[Turn]) -> float:
    """The default classifier: the probability that the prompt needs the strong model."""
    f = features(turns)
    logit = (_BIAS + _W_LOG_WORDS * math.log1p(f.words) + _W_TURNS * max(f.turns - 1, 0)
             + _W_CODE * min(f.code, _CAP) + _W_MATH * min(f.math, _CAP)
             + _W_REASONING * min(f.reasoning, _CAP) + _W_CONSTRAINTS * min(f.constraints, _CAP))
    return 1.0 / (1.0 + math.exp(-logit))


def load_classifier(spec: str) -> Classifier:
    """`rules` (the default) or `<module>:<attr>` naming a callable; ValueError when it cannot be loaded."""
    if spec == "rules":
        return rules_score
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected `rules` or `<module>:<attr>`, not {spec!r}")
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {spec!r} ({exc})") from None
    if not callable(found):
        raise ValueError(f"{spec!r} is not callable")
    return found  # type: ignore[no-any-return]


def turns_of(request: ChatCompletionRequest | CompletionRequest) -> list[Turn]:
    if isinstance(request, CompletionRequest):
        prompt = request.prompt
        texts = [prompt] if isinstance(prompt, str) else [p for p in prompt if isinstance(p, str)]
        return [Turn("user", text) for text in texts]
    turns = []
    for message in request.messages:
        content = message.content
        if isinstance(content, list):  # content parts: keep the text ones
            content = " ".join(str(part.get("text", "")) for part in content if part.get("type") == "text")
        turns.append(Turn(message.role, content or ""))
    return turns


@dataclass(slots=True, frozen=True)
class Decision:
    choice: Choice
    model: str  # the public model that serves the request
    score: float | None  # the classifier's; None when the caller's header decided


class DifficultyRouter:
    """`models.<name>.router`: easy prompts to `easy`, the rest (score ≥ threshold) to `hard`."""

    __slots__ = ("classifier", "easy", "hard", "threshold")

    def __init__(self, easy: str, hard: str, classifier: Classifier = rules_score, threshold: float = 0.5) -> None:
        self.easy = easy
        self.hard = hard
        self.classifier = classifier
        self.threshold = threshold

    def decide(self, turns: Sequence[Turn], headers: Mapping[str, str]) -> Decision:
        override = headers.get(DIFFICULTY_HEADER)
        if override is not None:
            choice = override.strip().lower()
            if choice == "easy":
                return Decision("easy", self.easy, None)
            if choice == "hard":
                return Decision("hard", self.hard, None)
            raise InvalidRequest(f"`{DIFFICULTY_HEADER}` must be `easy` or `hard`, not {override!r}.",
                                 code="invalid_difficulty")
        score = float(self.classifier(turns))
        if score >= self.threshold:
            return Decision("hard", self.hard, score)
        return Decision("easy", self.easy, score)


__all__ = ["DIFFICULTY_HEADER", "Classifier", "Decision", "DifficultyFeatures", "DifficultyRouter", "Turn",
           "features", "load_classifier", "rules_score", "turns_of"]
