"""Sweep decisions on hand-built results: step values, the SLO verdict of a step, and where a sweep broke."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.loadtest.datasets import DatasetSpec
from sluice.loadtest.failures import FailureKind
from sluice.loadtest.runner import LoadSettings
from sluice.loadtest.sweep import (
    StepVerdict,
    SweepDimension,
    SweepStep,
    judge_step,
    parse_values,
    step_load,
    sweep_outcome,
)
from sluice.loadtest.tables import sweep_headline

CONTEXT_400 = "This model's maximum context length is 512 tokens. However, your request has 600 input tokens."


def result(*, requests: int = 100, failed: int = 0, p99_ttft: float = 100.0, p99_tpot: float = 10.0,
           errors: dict[str, int] | None = None, kinds: dict[str, int] | None = None,
           examples: dict[str, str] | None = None) -> dict[str, Any]:
    return {"num_prompts": requests, "completed": requests - failed, "failed": failed, "p99_ttft_ms": p99_ttft,
            "p99_tpot_ms": p99_tpot, "p99_e2el_ms": 1000.0, "errors_by_class": errors or {},
            "errors_by_kind": kinds or {}, "error_examples": examples or {}}


@pytest.mark.parametrize(("text", "dimension", "values"), [
    ("1,2,4,8", SweepDimension.CONCURRENCY, [1, 2, 4, 8]),
    ("1..64*2", SweepDimension.CONCURRENCY, [1, 2, 4, 8, 16, 32, 64]),
    ("1..50x2", SweepDimension.CONCURRENCY, [1, 2, 4, 8, 16, 32]),
    ("512..2048+512", SweepDimension.INPUT_LEN, [512, 1024, 1536, 2048]),
    ("0.5,1.5,4", SweepDimension.RATE, [0.5, 1.5, 4.0]),
    ("0.5..2*2", SweepDimension.RATE, [0.5, 1.0, 2.0]),
])
def test_values_as_lists_and_ranges(text: str, dimension: SweepDimension, values: list[float]) -> None:
    assert parse_values(text, dimension) == values


@pytest.mark.parametrize("text", ["", "4,2", "1,1", "0,1", "1..8*1", "8..1*2", "1.5,2", "a,b", "1..10000000*1.01"])
def test_bad_values_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_values(text, SweepDimension.CONCURRENCY)


def test_each_dimension_changes_its_own_knob() -> None:
    settings, spec = LoadSettings(num_prompts=10, request_rate=5.0), DatasetSpec(input_len=100)
    assert step_load(SweepDimension.CONCURRENCY, 8, settings, spec)[0].max_concurrency == 8
    assert step_load(SweepDimension.RATE, 2.5, settings, spec)[0].request_rate == 2.5
    assert step_load(SweepDimension.INPUT_LEN, 2048, settings, spec) == (settings, DatasetSpec(input_len=2048))


def test_a_step_passes_when_every_slo_holds_at_the_percentile() -> None:
    verdict = judge_step(result(p99_ttft=499.9, p99_tpot=50.0), slos_ms={"ttft": 500, "tpot": 50}, percentile=99,
                         max_error_rate=0.01)
    assert verdict == StepVerdict(passed=True)


def test_latency_failure_names_the_metric_its_value_and_the_slo() -> None:
    verdict = judge_step(result(p99_ttft=812.34, p99_tpot=60.0), slos_ms={"ttft": 500, "tpot": 50}, percentile=99,
                         max_error_rate=0.01)
    assert not verdict.passed and verdict.kind is FailureKind.LATENCY
    assert verdict.reasons == ("P99 TTFT 812.3 ms > SLO 500 ms", "P99 TPOT 60.0 ms > SLO 50 ms")


def test_error_rate_at_the_threshold_passes_and_above_it_fails() -> None:
    errors = {"errors": {"http_500": 1}, "kinds": {"5xx": 1}}
    assert judge_step(result(failed=1, **errors), slos_ms={}, percentile=99, max_error_rate=0.01).passed
    verdict = judge_step(result(failed=2, errors={"http_500": 2}, kinds={"5xx": 2}), slos_ms={}, percentile=99,
                         max_error_rate=0.01)
    assert not verdict.passed and verdict.kind is FailureKind.SERVER_ERROR
    assert verdict.reasons == ("error rate 2.0% > 1.0% (2 × http_500)",)


def test_errors_outrank_latency_and_the_dominant_kind_wins() -> None:
    verdict = judge_step(result(failed=30, p99_ttft=900.0, errors={"http_400": 20, "timeout": 10},
                                kinds={"capacity": 20, "timeout": 10}, examples={"http_400": CONTEXT_400}),
                         slos_ms={"ttft": 500}, percentile=99, max_error_rate=0.05)
    assert verdict.kind is FailureKind.CAPACITY
    assert verdict.reasons[0] == ("error rate 30.0% > 5.0% (20 × http_400: context length exceeded (server max 512 "
                                  "tokens); 10 × timeout)")
    assert verdict.reasons[1] == "P99 TTFT 900.0 ms > SLO 500 ms"


def test_a_step_with_nothing_completed_fails_even_with_a_generous_error_budget() -> None:
    verdict = judge_step(result(failed=100, p99_ttft=0.0, errors={"ClientOSError": 100}, kinds={"connection": 100}),
                         slos_ms={"ttft": 500}, percentile=99, max_error_rate=1.0)
    assert not verdict.passed and verdict.kind is FailureKind.CONNECTION


def test_the_slo_percentile_picks_the_field() -> None:
    step = {**result(), "p90_ttft_ms": 400.0}
    assert judge_step(step, slos_ms={"ttft": 450}, percentile=90, max_error_rate=0.0).passed
    assert not judge_step(step, slos_ms={"ttft": 350}, percentile=90, max_error_rate=0.0).passed


def step(value: float, passed: bool, kind: FailureKind | None = None, reason: str = "") -> SweepStep:
    return SweepStep(value, {}, StepVerdict(passed, kind, (reason,) if reason else ()))


def test_outcome_is_the_first_failure_and_the_largest_pass_below_it() -> None:
    outcome = sweep_outcome([step(1, True), step(2, True), step(4, False, FailureKind.LATENCY, "P99 TTFT"),
                             step(8, True)])
    assert (outcome.holding, outcome.broke_at, outcome.kind, outcome.reason) == (2, 4, FailureKind.LATENCY, "P99 TTFT")
    assert outcome.to_dict() == {"largest_passing": 2, "broke_at": 4, "broke_kind": "latency",
                                 "broke_reason": "P99 TTFT"}


def test_outcome_when_nothing_or_everything_holds() -> None:
    assert sweep_outcome([step(1, False, FailureKind.SERVER_ERROR, "x")]).holding is None
    everything = sweep_outcome([step(1, True), step(2, True)])
    assert (everything.holding, everything.broke_at, everything.kind) == (2, None, None)


def test_headline_says_what_held_and_why_it_broke() -> None:
    document: dict[str, Any] = {"sweep": {"dimension": "rate", "largest_passing": 2.5, "broke_at": 5,
                                          "broke_kind": "5xx", "broke_reason": "error rate 4.0% > 1.0%"},
                                "steps": [{"sweep_value": 2.5}, {"sweep_value": 5}]}
    assert sweep_headline(document) == ["largest rate holding the SLO: 2.5",
                                        "broke at rate 5 because 5xx: error rate 4.0% > 1.0%"]
    document["sweep"] |= {"largest_passing": 5, "broke_at": None}
    assert sweep_headline(document) == ["largest rate holding the SLO: 5", "every step held the SLO (up to rate 5)"]
