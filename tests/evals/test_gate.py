"""Gates decided by intervals: a shortfall fails only when it is real at the chosen confidence, noise is
inconclusive, repeats do not narrow intervals as if they were new cases, regressions are paired by case, and the
flipped cases are named."""

from __future__ import annotations

import random

import pytest

from sluice.evals.compare import compare_runs
from sluice.evals.gate import GateError, Threshold, evaluate_gate, flipped_cases, parse_threshold
from sluice.evals.metrics import MetricError, estimate, regression
from sluice.evals.results import CaseResult, ScoreResult
from sluice.stats import wilson


def result(case_id: str, passed: bool, *, repeat: int = 0, latency_s: float = 0.5, cost: float | None = None,
           error: str | None = None, unsafe: bool | None = None, answer: str = "an answer") -> CaseResult:
    scores = [] if error else [ScoreResult("exact", float(passed), passed, "equal" if passed else "differs")]
    if unsafe is not None and not error:
        scores.append(ScoreResult("unsafe", float(not unsafe), not unsafe, "toxicity" if unsafe else "clean"))
    return CaseResult(case_id=case_id, repeat=repeat, answer=None if error else answer, scores=tuple(scores),
                      passed=passed and not error and not unsafe, latency_s=latency_s, cost_usd=cost, error=error)


def run(passes: list[bool], **kwargs: object) -> list[CaseResult]:
    return [result(f"c{index}", passed, **kwargs) for index, passed in enumerate(passes)]  # type: ignore[arg-type]


def test_parse_threshold_reads_shares_and_percentages() -> None:
    assert parse_threshold("min", "accuracy=0.75") == Threshold("accuracy", "min", 0.75)
    assert parse_threshold("max", "unsafe_rate = 1%") == Threshold("unsafe_rate", "max", 0.01)
    with pytest.raises(GateError, match=r"write METRIC=VALUE, e.g. --min accuracy=0\.75"):
        parse_threshold("min", "accuracy")
    with pytest.raises(GateError, match="'high' is not a number"):
        parse_threshold("max", "latency_p95=high")
    with pytest.raises(GateError, match="cannot be negative"):
        parse_threshold("max_regression", "accuracy=-0.1")


def test_binary_accuracy_uses_the_wilson_interval_of_cases() -> None:
    found = estimate(run([True] * 80 + [False] * 20), "accuracy")
    assert found.value == pytest.approx(0.8)
    assert (found.low, found.high) == pytest.approx(wilson(80, 100))
    assert found.cases == 100


def test_min_threshold_fails_only_when_the_whole_interval_is_below() -> None:
    clearly_low = run([True] * 50 + [False] * 50)  # 0.50, interval ~0.40-0.60
    near = run([True] * 14 + [False] * 6)  # 0.70 on 20 cases: interval ~0.48-0.85
    clearly_high = run([True] * 95 + [False] * 5)
    threshold = [parse_threshold("min", "accuracy=0.75")]
    assert evaluate_gate(clearly_low, threshold).status == "fail"
    assert evaluate_gate(near, threshold).status == "inconclusive"
    assert evaluate_gate(clearly_high, threshold).status == "pass"
    assert evaluate_gate(near, threshold).exit_code == 0  # not shown to be below: not failed
    assert evaluate_gate(near, threshold, strict=True).exit_code == 1
    assert evaluate_gate(clearly_low, threshold).exit_code == 1


def test_max_unsafe_rate_on_a_small_suite_cannot_be_shown_and_says_so() -> None:
    clean = run([True] * 100, unsafe=False)
    report = evaluate_gate(clean, [parse_threshold("max", "unsafe_rate=0.01")])
    check = report.checks[0]
    assert check.observed.value == 0.0
    assert check.observed.high > 0.01  # 0 of 100 does not show a rate under 1 %
    assert report.status == "inconclusive"
    unsafe = run([True] * 80 + [False] * 20, unsafe=False)
    unsafe = [result(r.case_id, True, unsafe=index < 20) for index, r in enumerate(unsafe)]
    assert evaluate_gate(unsafe, [parse_threshold("max", "unsafe_rate=0.05")]).status == "fail"


def test_repeats_are_clustered_by_case_not_counted_as_new_cases() -> None:
    # 10 cases, 10 repeats each: 8 cases always pass, 2 always fail. 100 answers, but only 10 independent cases.
    results = [result(f"c{case}", case < 8, repeat=repeat) for case in range(10) for repeat in range(10)]
    found = estimate(results, "accuracy")
    naive_low, naive_high = wilson(80, 100)
    assert found.value == pytest.approx(0.8)
    assert found.cases == 10
    assert found.high - found.low > naive_high - naive_low  # wider than pretending 100 independent answers


def test_identical_runs_have_no_regression_and_pass_any_allowance() -> None:
    base = run([True] * 30 + [False] * 10)
    report = evaluate_gate(base, [parse_threshold("max_regression", "accuracy=0")], baseline=base)
    assert report.status == "pass"
    assert report.checks[0].observed.value == 0.0
    assert report.flips == []


def test_a_real_regression_fails_and_names_the_flipped_cases() -> None:
    base = run([True] * 100)
    cand = run([True] * 80 + [False] * 20)
    report = evaluate_gate(cand, [parse_threshold("max_regression", "accuracy=0.02")], baseline=base)
    check = report.checks[0]
    assert check.observed.value == pytest.approx(0.2)
    assert check.observed.low > 0.02
    assert check.baseline is not None and check.baseline.value == 1.0
    assert report.status == "fail"
    assert [flip.case_id for flip in report.flips] == sorted(f"c{index}" for index in range(80, 100))
    assert all(flip.regressed and flip.reason == "exact: differs" for flip in report.flips)
    assert report.shared_cases == 100


def test_a_one_case_change_on_a_small_suite_is_inconclusive() -> None:
    base = run([True] * 20)
    cand = run([True] * 19 + [False])
    report = evaluate_gate(cand, [parse_threshold("max_regression", "accuracy=0.02")], baseline=base)
    assert report.status == "inconclusive"
    assert [flip.case_id for flip in report.flips] == ["c19"]


def test_regressions_list_before_fixes() -> None:
    base = run([True, False, True])
    cand = run([False, True, True])
    flips = flipped_cases(base, cand)
    assert [(flip.case_id, flip.regressed) for flip in flips] == [("c0", True), ("c1", False)]
    assert flips[1].reason == ""


def test_regression_pairs_cases_so_case_difficulty_cancels() -> None:
    # The candidate fails the same 5 hard cases as the baseline and 5 more: paired, the change is clear.
    base = run([True] * 45 + [False] * 5)
    cand = run([True] * 40 + [False] * 10)
    worse = regression(base, cand, "accuracy")
    assert worse.value == pytest.approx(0.1)
    assert worse.low > 0


def test_lower_is_better_metrics_regress_upwards() -> None:
    base = [result(f"c{index}", True, latency_s=0.5, cost=0.001) for index in range(40)]
    cand = [result(f"c{index}", True, latency_s=0.9, cost=0.001) for index in range(40)]
    worse = regression(base, cand, "latency_p95")
    assert worse.value == pytest.approx(0.4)
    assert regression(base, cand, "cost_per_case").value == pytest.approx(0.0)
    report = evaluate_gate(cand, [parse_threshold("max", "latency_p95=0.6")])
    assert report.status == "fail"


def test_unknown_metrics_and_missing_baselines_are_errors_that_say_what_to_type() -> None:
    results = run([True, False])
    with pytest.raises(MetricError, match="unknown metric 'acuracy'; this run has: accuracy, error_rate"):
        evaluate_gate(results, [parse_threshold("min", "acuracy=0.5")])
    with pytest.raises(MetricError, match="unsafe_rate needs an `unsafe` scorer"):
        evaluate_gate(results, [parse_threshold("max", "unsafe_rate=0.5")])
    with pytest.raises(GateError, match="give a --baseline"):
        evaluate_gate(results, [parse_threshold("max_regression", "accuracy=0.1")])
    other = [result("other", True)]
    with pytest.raises(GateError, match="share no case ids"):
        evaluate_gate(results, [parse_threshold("max_regression", "accuracy=0.1")], baseline=other)
    with pytest.raises(GateError, match="no thresholds"):
        evaluate_gate(results, [])


def test_errored_cases_fail_accuracy_and_count_in_error_rate() -> None:
    results = [*run([True] * 8), result("e1", True, error="HTTP 502: upstream"), result("e2", True, error="x")]
    assert estimate(results, "accuracy").value == pytest.approx(0.8)
    assert estimate(results, "error_rate").value == pytest.approx(0.2)
    assert estimate(results, "exact").cases == 8  # the errored cases have no exact score


def test_the_same_results_give_the_same_intervals() -> None:
    results = [result(f"c{case}", (case + repeat) % 3 != 0, repeat=repeat) for case in range(30)
               for repeat in range(3)]
    assert estimate(results, "accuracy") == estimate(list(reversed(results)), "accuracy")


def test_runs_of_one_model_rarely_fail_a_zero_regression_gate() -> None:
    """The false-alarm rate: two runs of the same model (each case passes with its own probability, drawn
    again per run) fail `--max-regression accuracy=0` at about (1 - confidence) / 2 or less, not half the
    time as a point estimate would."""
    chance = random.Random(7)
    difficulty = [chance.random() for _ in range(150)]
    threshold = [parse_threshold("max_regression", "accuracy=0")]
    failed = point_failed = 0
    for _ in range(60):
        base = run([chance.random() < p for p in difficulty])
        cand = run([chance.random() < p for p in difficulty])
        failed += evaluate_gate(cand, threshold, baseline=base).status == "fail"
        point_failed += (regression(base, cand, "accuracy").value or 0) > 0
    assert failed <= 5  # expected ~1.5 at 95 % two-sided
    assert point_failed >= 20  # what a gate on the point estimate would do


def test_compare_names_worse_better_and_unclear() -> None:
    base = [result(f"c{index}", index < 90, latency_s=0.5) for index in range(100)]
    cand = [result(f"c{index}", index < 60, latency_s=0.2) for index in range(100)]
    comparison = compare_runs(base, cand)
    verdicts = {change.metric: change.verdict for change in comparison.changes}
    assert verdicts["accuracy"] == "worse"
    assert verdicts["latency_p50"] == "better"
    assert verdicts["error_rate"] == "no clear change"
    assert "unsafe_rate" not in verdicts
    assert comparison.shared_cases == 100
    assert len(comparison.flips) == 30
