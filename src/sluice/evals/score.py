"""What a scorer is: the `Score` it gives, the two kinds (pure: `score(answer, case)`; model-backed: awaited
`ascore(answer, case, client)`, calling a model through a gateway), and the pydantic base every scorer spec
shares (strict options, `problem(case)` checked when the suite loads, `spec()` read by the suite's hash)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import orjson
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from sluice.evals.scorer_client import ScorerClient
    from sluice.evals.suite import Case


@dataclass(slots=True, frozen=True)
class Score:
    value: float  # 0..1
    passed: bool
    reason: str
    # Set when a model-backed scorer could not score (its model errored or answered garbage): then value is 0 and
    # passed False, and the score is not a measurement (summaries leave it out of the scorer's rate).
    error: str | None = None


class Scorer(Protocol):
    """A pure scorer: a function of the answer and the case."""

    type: str

    def score(self, answer: str, case: Case) -> Score: ...

    def problem(self, case: Case) -> str | None: ...

    def spec(self) -> dict[str, Any]: ...


class ModelScorer(Protocol):
    """A scorer that may call a model through a gateway (judge, similarity, an unsafe check with Llama Guard)."""

    type: str

    @property
    def needs_gateway(self) -> bool: ...

    async def ascore(self, answer: str, case: Case, client: ScorerClient | None) -> Score: ...

    def problem(self, case: Case) -> str | None: ...

    def spec(self) -> dict[str, Any]: ...


AnyScorer = Scorer | ModelScorer


class ScorerSpec(BaseModel):
    """The base of every scorer: its options as a strict pydantic model (unknown options are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)
    needs_expected: ClassVar[str] = ""  # the option that stands in for `expected`; "" when none is needed

    def problem(self, case: Case) -> str | None:
        """Why this scorer cannot score the case (checked when the suite loads), or None."""
        if self.needs_expected and getattr(self, self.needs_expected) is None and case.expected is None:
            return f"{self.type} needs `{self.needs_expected}` or the case's `expected`"  # type: ignore[attr-defined]
        return None

    def spec(self) -> dict[str, Any]:
        """The spec with every option filled in: what the suite's hash reads."""
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def error_path(cls, loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
        """The option path of a validation error's location (a spec with tagged unions drops their tags)."""
        return loc

    def _target(self, case: Case) -> Any:
        own = getattr(self, self.needs_expected)
        return case.expected if own is None else own


class ModelScorerSpec(ScorerSpec):
    """The base of model-backed scorers: awaited by the runner, concurrently with other cases."""

    @property
    def needs_gateway(self) -> bool:
        """Whether scoring calls a model through a gateway (a run must then have one to call)."""
        return True

    async def ascore(self, answer: str, case: Case, client: ScorerClient | None) -> Score:
        raise NotImplementedError


def verdict(passed: bool, reason: str) -> Score:
    """A pass/fail score: value 1 or 0."""
    return Score(1.0 if passed else 0.0, passed, reason)


def scorer_error(reason: str, error: str) -> Score:
    """A scorer that could not score: not a measurement (value 0, not passed, `error` set)."""
    return Score(0.0, False, reason, error=error)


def as_text(value: Any) -> str:
    """A string as it is; anything else as its JSON."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


__all__ = ["AnyScorer", "ModelScorer", "ModelScorerSpec", "Score", "Scorer", "ScorerSpec", "as_text", "scorer_error",
           "shorten", "verdict"]
