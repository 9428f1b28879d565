"""Quality gates that account for variance: thresholds on a run's metrics (`--min accuracy=0.75`, `--max
unsafe_rate=0.01`) and on its regression against a baseline run of the same suite (`--max-regression
accuracy=0.02`), each decided from a confidence interval, not a point estimate.

A check **fails** only when its whole interval lies on the wrong side of the limit (the shortfall is real at the
chosen confidence), **passes** when the whole interval lies on the right side, and is **inconclusive** when the
interval straddles the limit: the suite is too small, or too noisy, to tell. A gate fails when a check fails;
`strict` makes an inconclusive check fail it too. The report also lists the cases that flipped between the
baseline and the candidate, regressions first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sluice.evals.metrics import Estimate, check_metric, estimate, per_case, regression
from sluice.evals.results import CaseResult

Kind = Literal["min", "max", "max_regression"]
Status = Literal["pass", "fail", "inconclusive"]
MAX_REASON_CHARS = 200


class GateError(ValueError):
    """A threshold that cannot be read or checked: the message says what to type."""


@dataclass(slots=True, frozen=True)
class Threshold:
    metric: str
    kind: Kind
    limit: float

    def text(self) -> str:
        return f"{self.metric} {_OPERATOR[self.kind]} {self.limit:g}"


_OPERATOR = {"min": ">=", "max": "<=", "max_regression": "regresses at most"}


def parse_threshold(kind: Kind, text: str) -> Threshold:
    """`accuracy=0.75`, `unsafe_rate=1%` (a percentage is read as a share) -> a Threshold."""
    metric, equals, value = text.partition("=")
    metric, value = metric.strip(), value.strip()
    option = "--" + kind.replace("_", "-")
    if not equals or not metric or not value:
        raise GateError(f"{option} {text!r}: write METRIC=VALUE, e.g. {option} accuracy=0.75")
    try:
        limit = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise GateError(f"{option} {text!r}: {value!r} is not a number (e.g. 0.75 or 75%)") from None
    if kind == "max_regression" and limit < 0:
        raise GateError(f"{option} {text!r}: the allowed regression cannot be negative")
    return Threshold(metric, kind, limit)


@dataclass(slots=True, frozen=True)
class Check:
    threshold: Threshold
    status: Status
    observed: Estimate  # the candidate's metric; for a regression, how much worse than the baseline
    baseline: Estimate | None = None  # the baseline's metric, for a regression check

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.threshold.metric, "kind": self.threshold.kind, "limit": self.threshold.limit,
                "status": self.status, "observed": _estimate_json(self.observed),
                "baseline": None if self.baseline is None else _estimate_json(self.baseline)}


@dataclass(slots=True, frozen=True)
class Flip:
    """A case whose majority verdict changed between the baseline and the candidate."""

    case_id: str
    before: float  # the case's pass rate over its repeats, in the baseline
    after: float  # and in the candidate
    reason: str  # why the candidate failed it (the first failing scorer, or the error); "" for a fix
    answer: str | None  # the candidate's answer (of the first failing repeat for a regression)

    @property
    def regressed(self) -> bool:
        return self.after < self.before

    def to_json(self) -> dict[str, Any]:
        return {"case_id": self.case_id, "before": self.before, "after": self.after, "regressed": self.regressed,
                "reason": self.reason, "answer": self.answer}


@dataclass(slots=True, frozen=True)
class GateReport:
    checks: list[Check]
    confidence: float
    strict: bool
    flips: list[Flip] = field(default_factory=list)  # regressions first
    shared_cases: int | None = None  # cases in both runs, when there is a baseline

    @property
    def status(self) -> Status:
        statuses = {check.status for check in self.checks}
        return "fail" if "fail" in statuses else "inconclusive" if "inconclusive" in statuses else "pass"

    @property
    def passed(self) -> bool:
        return self.status == "pass" or (self.status == "inconclusive" and not self.strict)

    @property
    def exit_code(self) -> int:
        """0 passed, 1 failed (the documented codes; 2, an error, is the caller's)."""
        return 0 if self.passed else 1

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "passed": self.passed, "confidence": self.confidence, "strict": self.strict,
                "checks": [check.to_json() for check in self.checks], "shared_cases": self.shared_cases,
                "flips": [flip.to_json() for flip in self.flips]}


def evaluate_gate(candidate: Sequence[CaseResult], thresholds: Sequence[Threshold], *,
                  baseline: Sequence[CaseResult] | None = None, confidence: float = 0.95,
                  strict: bool = False) -> GateReport:
    """Each threshold checked on the candidate's results (and its regression against `baseline`)."""
    if not thresholds:
        raise GateError("no thresholds: give --min, --max or --max-regression (e.g. --min accuracy=0.75)")
    if not candidate:
        raise GateError("the candidate run has no results")
    checks: list[Check] = []
    for threshold in thresholds:
        metric = check_metric(threshold.metric, candidate)
        if threshold.kind == "max_regression":
            if baseline is None:
                raise GateError(f"--max-regression {threshold.metric}: give a --baseline to compare with")
            worse = regression(baseline, candidate, metric, confidence)
            if worse.value is None:
                raise GateError("the baseline and the candidate share no case ids: are they runs of one suite?")
            checks.append(Check(threshold, _decide(worse, threshold), worse, estimate(baseline, metric, confidence)))
        else:
            found = estimate(candidate, metric, confidence)
            if found.value is None:
                raise GateError(f"{threshold.metric}: no case of the run gives a value (all errored?)")
            checks.append(Check(threshold, _decide(found, threshold), found))
    flips = flipped_cases(baseline, candidate) if baseline is not None else []
    shared = None if baseline is None else len({r.case_id for r in baseline} & {r.case_id for r in candidate})
    return GateReport(checks, confidence, strict, flips, shared)


def _decide(found: Estimate, threshold: Threshold) -> Status:
    limit = threshold.limit
    if threshold.kind == "min":
        return "pass" if found.low >= limit else "fail" if found.high < limit else "inconclusive"
    # max and max_regression: the value (or how much worse it got) must stay at or under the limit
    return "pass" if found.high <= limit else "fail" if found.low > limit else "inconclusive"


def flipped_cases(baseline: Sequence[CaseResult], candidate: Sequence[CaseResult]) -> list[Flip]:
    """Cases passed by most repeats in one run and by fewer than half in the other; regressions first."""
    before, after = per_case(baseline, "accuracy"), per_case(candidate, "accuracy")
    flips = []
    for case_id in sorted(before.keys() & after.keys()):
        if (before[case_id] >= 0.5) != (after[case_id] >= 0.5):
            failing = next((result for result in candidate if result.case_id == case_id and not result.passed),
                           None)
            flips.append(Flip(case_id, before[case_id], after[case_id], _why(failing),
                              None if failing is None else failing.answer))
    return sorted(flips, key=lambda flip: (not flip.regressed, flip.case_id))


def _why(result: CaseResult | None) -> str:
    if result is None:
        return ""
    if result.error is not None:
        return f"error: {result.error}"[:MAX_REASON_CHARS]
    failed = next((score for score in result.scores if not score.passed), None)
    return "" if failed is None else f"{failed.type}: {failed.reason}"[:MAX_REASON_CHARS]


def _estimate_json(found: Estimate) -> dict[str, Any]:
    return {"value": found.value, "low": found.low, "high": found.high, "cases": found.cases}


__all__ = ["Check", "Flip", "GateError", "GateReport", "Threshold", "evaluate_gate", "flipped_cases",
           "parse_threshold"]
