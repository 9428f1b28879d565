"""Canary analysis on hand-built windows: pass, fail (and why), inconclusive, skipped checks."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sluice.config import CanaryThresholds
from sluice.rollout import Deployment, TargetRef
from sluice.rollout.analysis import SideSample, analyze, side_targets, split_by_role

THRESHOLDS = CanaryThresholds()  # alpha 0.05, +1 pp errors, +25 % P99, +10 % cost


@dataclass
class Row:
    route_role: str | None
    error_class: str | None = None
    target: str | None = None
    upstream_model: str | None = None
    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None
    cost_usd: float | None = None


def side(n: int, *, failures: int = 0, ttft_s: float = 0.1, tpot_s: float = 0.01, cost: float | None = None,
         spread: float = 0.02) -> SideSample:
    """n requests, `failures` of them 5xx; the rest with latencies spread evenly around the given values."""
    ok = n - failures
    ramp = [1 + spread * (i / max(ok - 1, 1) - 0.5) for i in range(ok)]
    return SideSample(requests=n, failures=failures, ttft_s=tuple(ttft_s * r for r in ramp),
                      tpot_s=tuple(tpot_s * r for r in ramp), e2e_s=tuple((ttft_s + 0.5) * r for r in ramp),
                      cost_usd=() if cost is None else tuple(cost * r for r in ramp))


def check(verdict, name):  # type: ignore[no-untyped-def]
    return next(c for c in verdict.checks if c.name == name)


def test_a_healthy_candidate_passes_with_every_check_recorded() -> None:
    verdict = analyze(side(200, failures=2), side(200, failures=2), THRESHOLDS, min_requests=50)
    assert verdict.outcome == "pass"
    assert {c.name: c.outcome for c in verdict.checks} == {
        "error_rate": "pass", "ttft": "pass", "tpot": "pass", "e2e": "pass", "cost": "skipped"}
    evidence = verdict.evidence()
    assert evidence["stable"]["requests"] == 200 and evidence["candidate"]["failures"] == 2
    assert evidence["checks"][0]["p_value"] == pytest.approx(0.5)
    assert evidence["stable"]["ttft_p99_s"] == pytest.approx(0.101, abs=1e-3)


def test_a_significantly_higher_error_rate_fails() -> None:
    verdict = analyze(side(200, failures=2), side(200, failures=14), THRESHOLDS, min_requests=50)
    assert verdict.outcome == "fail"
    errors = check(verdict, "error_rate")
    assert errors.outcome == "fail"
    assert errors.candidate == pytest.approx(0.07)
    assert errors.p_value is not None and errors.p_value < 0.01
    assert "error rate 7.00% vs 1.00%" in verdict.reasons[0]


def test_a_significant_error_increase_within_the_margin_passes() -> None:
    # 0/5000 vs 25/5000: p < 1e-6, but +0.5 pp is within the 1 pp margin
    verdict = analyze(side(5000), side(5000, failures=25), THRESHOLDS, min_requests=50)
    assert check(verdict, "error_rate").p_value < 1e-6
    assert verdict.outcome == "pass"


def test_a_large_error_increase_on_a_small_sample_is_not_significant_enough_to_fail() -> None:
    verdict = analyze(side(50), side(50, failures=2), THRESHOLDS, min_requests=50)
    assert check(verdict, "error_rate").p_value > 0.05  # 4 % vs 0 % on 50 each: p ~ 0.08
    assert verdict.outcome == "pass"


def test_slower_tpot_fails_on_p99_and_distribution() -> None:
    verdict = analyze(side(100), side(100, tpot_s=0.02), THRESHOLDS, min_requests=50)
    tpot = check(verdict, "tpot")
    assert verdict.outcome == "fail"
    assert tpot.outcome == "fail" and tpot.increase == pytest.approx(1.0, abs=0.01)
    assert tpot.p_value is not None and tpot.p_value < 1e-10
    assert check(verdict, "ttft").outcome == "pass"


def test_a_small_latency_shift_below_the_margin_passes() -> None:
    verdict = analyze(side(100), side(100, ttft_s=0.11), THRESHOLDS, min_requests=50)
    ttft = check(verdict, "ttft")
    assert ttft.p_value is not None and ttft.p_value < 0.05  # significant: +10 % on every request
    assert ttft.outcome == "pass"  # but below the +25 % P99 margin


def test_one_slow_outlier_does_not_fail_a_canary() -> None:
    stable = side(100)
    outlier = SideSample(100, 0, (*side(100).ttft_s[:-1], 5.0), side(100).tpot_s, side(100).e2e_s)
    verdict = analyze(stable, outlier, THRESHOLDS, min_requests=50)
    ttft = check(verdict, "ttft")
    assert ttft.increase is not None and ttft.increase > 0.25  # the P99 moved a lot...
    assert ttft.outcome == "pass"  # ...but the distribution did not


def test_a_costlier_candidate_fails_when_both_sides_are_priced() -> None:
    verdict = analyze(side(100, cost=0.001), side(100, cost=0.0013), THRESHOLDS, min_requests=50)
    assert check(verdict, "cost").outcome == "fail"
    assert check(verdict, "cost").increase == pytest.approx(0.3, abs=0.01)
    assert verdict.outcome == "fail"


def test_too_few_requests_is_inconclusive_not_pass() -> None:
    verdict = analyze(side(200), side(12), THRESHOLDS, min_requests=50)
    assert verdict.outcome == "inconclusive"
    assert verdict.reasons == ("candidate has 12 requests (< 50)",)
    assert check(verdict, "ttft").outcome == "skipped"


def test_no_candidate_traffic_at_all_is_inconclusive() -> None:
    verdict = analyze(side(200), SideSample(), THRESHOLDS, min_requests=50)
    assert verdict.outcome == "inconclusive"
    assert [c.name for c in verdict.checks if c.outcome != "skipped"] == []


def test_rows_split_by_role_and_only_version_failures_count() -> None:
    rows = [Row("stable", ttft_s=0.1, e2e_s=1.0), Row("stable", "5xx"), Row("stable", "4xx"),
            Row("candidate", "timeout"), Row("candidate", "client_disconnect"), Row("candidate", e2e_s=2.0),
            Row("candidate", "upstream_rejected"), Row(None, e2e_s=9.0)]
    stable, candidate = split_by_role(rows)
    assert (stable.requests, stable.failures, stable.ttft_s, stable.e2e_s) == (2, 1, (0.1,), (1.0,))
    assert (candidate.requests, candidate.failures, candidate.e2e_s) == (3, 2, (2.0,))


def test_an_answer_from_a_fallback_model_is_a_failure_of_the_side_that_gave_up() -> None:
    deployment = Deployment("chat", stable=(TargetRef("blue", "v1"),), candidate=(TargetRef("green", "v2"),),
                            candidate_weight=50)
    rows = [Row("stable", target="blue", upstream_model="v1", e2e_s=1.0),
            Row("candidate", target="green", upstream_model="v2", e2e_s=1.1),
            Row("candidate", target="spare", upstream_model="claude", e2e_s=3.0),  # green failed, spare answered
            Row("candidate", target="blue", upstream_model="v1", e2e_s=1.0)]  # answered by another side's target
    stable, candidate = split_by_role(rows, side_targets([deployment]))
    assert (stable.requests, stable.failures, stable.fallbacks) == (1, 0, 0)
    assert (candidate.requests, candidate.failures, candidate.fallbacks, candidate.e2e_s) == (3, 2, 2, (1.1,))
    assert candidate.summary()["fallbacks"] == 2
    without = split_by_role(rows)[1]  # without the deployment nothing tells a fallback apart
    assert (without.failures, len(without.e2e_s)) == (0, 3)


def test_a_candidate_hidden_behind_a_fallback_still_fails_on_error_rate() -> None:
    deployment = Deployment("chat", stable=(TargetRef("blue", "v1"),), candidate=(TargetRef("green", "v2"),),
                            candidate_weight=50)
    rows = ([Row("stable", target="blue", upstream_model="v1", e2e_s=1.0)] * 200
            + [Row("candidate", target="green", upstream_model="v2", e2e_s=1.0)] * 160
            + [Row("candidate", target="spare", upstream_model="claude", e2e_s=1.0)] * 40)
    verdict = analyze(*split_by_role(rows, side_targets([deployment])), THRESHOLDS, min_requests=50)
    assert verdict.outcome == "fail" and check(verdict, "error_rate").candidate == pytest.approx(0.2)
