"""The canary state machine: what each verdict does to a run."""

from __future__ import annotations

import pytest

from sluice.config import CanaryConfig
from sluice.rollout.canary import CanaryRun, decide


def run(**settings: object) -> CanaryRun:
    config = CanaryConfig.model_validate({"steps": [5, 25, 50, 100], "interval_s": 60, "max_extensions": 2,
                                          **settings})
    return CanaryRun(model="chat", settings=config, started_at=1000.0, step_started_at=1000.0, actor="ops")


def test_windows_and_due_times_follow_interval_extensions_and_grace() -> None:
    first = run(log_grace_s=1.5)
    assert (first.weight, first.window_end, first.due_at) == (5.0, 1060.0, 1061.5)
    extended = decide(first, "inconclusive", 1062.0).run
    assert (extended.extensions, extended.step_started_at, extended.window_end) == (1, 1000.0, 1120.0)


def test_pass_advances_step_by_step_then_promotes() -> None:
    current = run()
    seen = []
    for now in (1061.0, 1122.0, 1183.0):
        transition = decide(current, "pass", now)
        assert transition.kind == "advance" and transition.event == "canary.step"
        current = transition.run
        seen.append((current.weight, transition.weight, current.step_started_at))
    assert seen == [(25.0, 25.0, 1061.0), (50.0, 50.0, 1122.0), (100.0, 100.0, 1183.0)]
    last = decide(current, "pass", 1244.0)
    assert last.kind == "promote" and last.run.state == "promoted" and last.run.finished_at == 1244.0
    assert last.weight is None


def test_fail_rolls_back_at_any_step() -> None:
    transition = decide(decide(run(), "pass", 1061.0).run, "fail", 1122.0)
    assert transition.kind == "rollback" and transition.weight == 0.0
    assert transition.run.state == "rolled_back" and transition.event == "canary.rolled_back"


@pytest.mark.parametrize(("on_exhausted", "kind", "state", "weight"), [
    ("rollback", "rollback", "rolled_back", 0.0), ("advance", "advance", "running", 25.0),
    ("hold", "hold", "held", None)])
def test_inconclusive_extends_up_to_the_limit_then_does_on_exhausted(on_exhausted: str, kind: str, state: str,
                                                                     weight: float | None) -> None:
    current = run(on_exhausted=on_exhausted)
    for expected in (1, 2):
        transition = decide(current, "inconclusive", 2000.0)
        assert transition.kind == "extend" and transition.weight is None
        current = transition.run
        assert current.extensions == expected and current.step_index == 0
    final = decide(current, "inconclusive", 2000.0)
    assert (final.kind, final.run.state, final.weight) == (kind, state, weight)


def test_at_100_percent_the_baseline_is_stable_traffic_earlier_in_the_canary() -> None:
    current = run(steps=[50, 100])
    assert current.baseline_window() == (1000.0, 1060.0)
    at_full = decide(current, "pass", 1061.0).run
    assert at_full.baseline_window() == (1000.0, 1061.0)


def test_only_a_running_canary_takes_verdicts() -> None:
    done = decide(run(), "fail", 1061.0).run
    with pytest.raises(ValueError, match="rolled_back"):
        decide(done, "pass", 1100.0)


@pytest.mark.parametrize("steps", [[], [0, 50], [50, 25], [25, 25], [50, 120]])
def test_steps_must_be_increasing_percentages(steps: list[float]) -> None:
    with pytest.raises(ValueError):
        CanaryConfig.model_validate({"steps": steps})
