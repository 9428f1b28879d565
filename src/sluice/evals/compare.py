"""Two runs of one suite side by side: every metric both can give, each run's estimate and the paired change
with its interval, called worse or better only when the interval excludes no change; and the flipped cases."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sluice.evals.gate import Flip, flipped_cases
from sluice.evals.metrics import Estimate, estimate, metric_names, regression
from sluice.evals.results import CaseResult

Verdict = Literal["worse", "better", "no clear change", "no data"]


@dataclass(slots=True, frozen=True)
class MetricChange:
    metric: str
    baseline: Estimate
    candidate: Estimate
    worse: Estimate  # how much worse the candidate is (paired, over shared cases); negative: better

    @property
    def verdict(self) -> Verdict:
        if self.worse.value is None or self.baseline.value is None or self.candidate.value is None:
            return "no data"
        if self.worse.low > 0:
            return "worse"
        if self.worse.high < 0:
            return "better"
        return "no clear change"

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "verdict": self.verdict,
                **{name: {"value": found.value, "low": found.low, "high": found.high, "cases": found.cases}
                   for name, found in (("baseline", self.baseline), ("candidate", self.candidate),
                                       ("worse", self.worse))}}


@dataclass(slots=True, frozen=True)
class Comparison:
    changes: list[MetricChange]
    flips: list[Flip]  # regressions first
    shared_cases: int
    only_baseline: int  # cases only the baseline has
    only_candidate: int
    confidence: float

    def to_json(self) -> dict[str, Any]:
        return {"confidence": self.confidence, "shared_cases": self.shared_cases,
                "only_baseline": self.only_baseline, "only_candidate": self.only_candidate,
                "changes": [change.to_json() for change in self.changes],
                "flips": [flip.to_json() for flip in self.flips]}


def compare_runs(baseline: Sequence[CaseResult], candidate: Sequence[CaseResult],
                 confidence: float = 0.95) -> Comparison:
    """Every metric both runs can give (`unsafe_rate` only where both have an `unsafe` scorer)."""
    base_metrics = set(metric_names(baseline))
    changes = []
    for metric in metric_names(candidate):
        if metric not in base_metrics or (metric == "unsafe_rate" and not _has_unsafe(baseline, candidate)):
            continue
        changes.append(MetricChange(metric, estimate(baseline, metric, confidence),
                                    estimate(candidate, metric, confidence),
                                    regression(baseline, candidate, metric, confidence)))
    before, after = {r.case_id for r in baseline}, {r.case_id for r in candidate}
    return Comparison(changes, flipped_cases(baseline, candidate), len(before & after), len(before - after),
                      len(after - before), confidence)


def _has_unsafe(*runs: Sequence[CaseResult]) -> bool:
    return all(any(score.type == "unsafe" for result in run for score in result.scores) for run in runs)


__all__ = ["Comparison", "MetricChange", "compare_runs"]
