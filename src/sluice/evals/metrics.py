"""What a gate or a comparison measures on a run: named metrics over its case results, each estimated with a
confidence interval that treats the case (not the repeat) as the unit of sampling, and the paired difference of
two runs of the same suite.

A metric is first reduced to one value per case (the mean over the case's repeats), then estimated over cases:
repeats of one case are not independent draws, so counting them as such would make intervals too narrow. A rate
whose per-case values are all 0 or 1 gets the Wilson interval; anything else a percentile bootstrap over cases
(seeded: the same results always give the same interval). Two runs are compared case by case on the cases both
have (paired), which cancels the spread between easy and hard cases.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from sluice.evals.results import CaseResult
from sluice.stats import wilson

BOOTSTRAP_RESAMPLES = 4000
BOOTSTRAP_SEED = 20261207

# metric -> (what it is, higher is better)
FIXED_METRICS: dict[str, tuple[str, bool]] = {
    "accuracy": ("share of cases passed by every scorer (an errored case fails)", True),
    "error_rate": ("share of calls that errored (HTTP error, connection, timeout)", False),
    "unsafe_rate": ("share of answers an `unsafe` scorer flagged", False),
    "latency_p50": ("median of the per-case latency, seconds", False),
    "latency_p95": ("95th percentile of the per-case latency, seconds", False),
    "cost_per_case": ("mean cost of a case, USD (the gateway's x-sluice-cost-usd)", False),
}
ALIASES = {"pass_rate": "accuracy"}
_PERCENTILES = {"latency_p50": 50.0, "latency_p95": 95.0}


class MetricError(ValueError):
    """A metric no run of this suite can give: the message names those it can."""


@dataclass(slots=True, frozen=True)
class Estimate:
    value: float | None  # None when no case gave a value
    low: float
    high: float
    cases: int  # cases that gave a value


def metric_names(results: Iterable[CaseResult]) -> list[str]:
    """The metrics these results can give: the fixed ones, then each scorer's pass rate and its mean score."""
    scorers = sorted({score.type for result in results for score in result.scores})
    return [*FIXED_METRICS, *(name for scorer in scorers for name in (scorer, f"{scorer}.score"))]


def higher_is_better(metric: str) -> bool:
    metric = ALIASES.get(metric, metric)
    return FIXED_METRICS[metric][1] if metric in FIXED_METRICS else True


def check_metric(metric: str, results: Sequence[CaseResult]) -> str:
    """The metric's canonical name; MetricError when these results cannot give it."""
    canonical = ALIASES.get(metric, metric)
    known = metric_names(results)
    if canonical == "unsafe_rate" and "unsafe" not in known:
        raise MetricError("unsafe_rate needs an `unsafe` scorer in the suite (see docs/evals.md)")
    if canonical not in known:
        raise MetricError(f"unknown metric {metric!r}; this run has: {', '.join(known)}")
    return canonical


def per_case(results: Iterable[CaseResult], metric: str) -> dict[str, float]:
    """Case id -> the metric's mean over the case's repeats (cases that give no value are left out)."""
    value_of = _value_function(ALIASES.get(metric, metric))
    values: dict[str, list[float]] = {}
    for result in results:
        value = value_of(result)
        if value is not None:
            values.setdefault(result.case_id, []).append(value)
    return {case_id: sum(found) / len(found) for case_id, found in values.items()}


def estimate(results: Sequence[CaseResult], metric: str, confidence: float = 0.95) -> Estimate:
    """The metric over the run's cases with its two-sided interval at `confidence`."""
    metric = check_metric(metric, results)
    values = np.fromiter(per_case(results, metric).values(), dtype=float)
    if not len(values):
        return Estimate(None, 0.0, 0.0, 0)
    statistic = _statistic(metric)
    value = float(statistic(values[None, :])[0])
    if metric not in _PERCENTILES and _is_binary(values):
        low, high = wilson(int(values.sum()), len(values), z=_z(confidence))
        return Estimate(value, low, high, len(values))
    low, high = _bootstrap(lambda index: statistic(values[index]), len(values), confidence)
    return Estimate(value, low, high, len(values))


def regression(baseline: Sequence[CaseResult], candidate: Sequence[CaseResult], metric: str,
               confidence: float = 0.95) -> Estimate:
    """How much worse the candidate is than the baseline on `metric` (positive: worse, in the metric's own unit),
    over the cases both runs have, with a paired bootstrap interval at `confidence`."""
    metric = check_metric(metric, candidate)
    before, after = per_case(baseline, metric), per_case(candidate, metric)
    shared = sorted(before.keys() & after.keys())
    if not shared:
        return Estimate(None, 0.0, 0.0, 0)
    base = np.array([before[case] for case in shared])
    cand = np.array([after[case] for case in shared])
    sign = 1.0 if higher_is_better(metric) else -1.0
    statistic = _statistic(metric)

    def worse(index: np.ndarray) -> np.ndarray:
        return sign * (statistic(base[index]) - statistic(cand[index]))

    value = float(worse(np.arange(len(shared))[None, :])[0])
    low, high = _bootstrap(worse, len(shared), confidence)
    return Estimate(value, min(low, value), max(high, value), len(shared))


def _value_function(metric: str) -> Callable[[CaseResult], float | None]:
    if metric == "accuracy":
        return lambda result: float(result.passed)
    if metric == "error_rate":
        return lambda result: float(result.error is not None)
    if metric == "unsafe_rate":
        return lambda result: _scored(result, "unsafe", lambda passed, _: float(not passed))
    if metric in _PERCENTILES:
        return lambda result: result.latency_s if result.error is None else None
    if metric == "cost_per_case":
        return lambda result: result.cost_usd
    if metric.endswith(".score"):
        scorer = metric.removesuffix(".score")
        return lambda result: _scored(result, scorer, lambda _, value: value)
    return lambda result: _scored(result, metric, lambda passed, _: float(passed))


def _scored(result: CaseResult, scorer: str, pick: Callable[[bool, float], float]) -> float | None:
    """The mean of `pick` over the result's scores of type `scorer` (errored scores left out), None if none."""
    found = [pick(score.passed, score.value) for score in result.scores
             if score.type == scorer and getattr(score, "error", None) is None]
    return sum(found) / len(found) if found else None


def _statistic(metric: str) -> Callable[[np.ndarray], np.ndarray]:
    """Rows of per-case values -> one statistic per row: the mean, or a percentile for the latency metrics."""
    if metric in _PERCENTILES:
        q = _PERCENTILES[metric]
        return lambda rows: np.percentile(rows, q, axis=-1)
    return lambda rows: rows.mean(axis=-1)


def _bootstrap(statistic: Callable[[np.ndarray], np.ndarray], cases: int,
               confidence: float) -> tuple[float, float]:
    """The percentile-bootstrap interval of `statistic` over `cases` resampled with replacement."""
    generator = np.random.default_rng(BOOTSTRAP_SEED)
    index = generator.integers(0, cases, size=(BOOTSTRAP_RESAMPLES, cases))
    draws = statistic(index)
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return float(low), float(high)


def _is_binary(values: np.ndarray) -> bool:
    return bool(np.all((values == 0) | (values == 1)))


def _z(confidence: float) -> float:
    """The two-sided normal quantile for `confidence` (0.95 -> 1.96)."""
    if not 0.5 <= confidence < 1:
        raise ValueError(f"confidence {confidence} must be in [0.5, 1)")
    return NormalDist().inv_cdf((1 + confidence) / 2)


__all__ = ["ALIASES", "FIXED_METRICS", "Estimate", "MetricError", "check_metric", "estimate", "higher_is_better",
           "metric_names", "per_case", "regression"]
