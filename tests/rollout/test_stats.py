"""The canary statistics on hand-built samples with known answers."""

from __future__ import annotations

import math

import pytest

from sluice.rollout.stats import mann_whitney_greater, percentile, relative_increase, two_proportion_z


def test_two_proportion_z_matches_the_hand_computed_value() -> None:
    # 10/100 vs 20/100: pooled 0.15, se = sqrt(0.15 * 0.85 * (1/100 + 1/100)) = 0.050498, z = 0.1 / se
    result = two_proportion_z(10, 100, 20, 100)
    assert result.statistic == pytest.approx(1.98030, abs=1e-4)
    assert result.p_value == pytest.approx(0.023835, abs=1e-5)


def test_two_proportion_z_is_one_sided_toward_a_worse_candidate() -> None:
    better = two_proportion_z(20, 100, 10, 100)  # the candidate fails less: no evidence it is worse
    assert better.statistic < 0
    assert better.p_value == pytest.approx(1 - 0.023835, abs=1e-5)


def test_two_proportion_z_without_variance_carries_no_evidence() -> None:
    assert two_proportion_z(0, 50, 0, 70).p_value == 1.0
    assert two_proportion_z(50, 50, 70, 70).p_value == 1.0


def test_two_proportion_z_needs_requests_on_both_sides() -> None:
    with pytest.raises(ValueError):
        two_proportion_z(0, 0, 1, 10)


def test_mann_whitney_exact_p_value_for_fully_separated_samples() -> None:
    # every candidate value above every stable one: U = 9 of 9; exact P = 1 / C(6, 3) = 0.05
    result = mann_whitney_greater([4.0, 5.0, 6.0], [1.0, 2.0, 3.0])
    assert result.statistic == 9
    assert result.p_value == pytest.approx(0.05)


def test_mann_whitney_is_one_sided() -> None:
    assert mann_whitney_greater([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]).p_value == pytest.approx(1.0)


def test_mann_whitney_large_shift_is_significant_and_identical_samples_are_not() -> None:
    stable = [0.100 + 0.001 * i for i in range(60)]
    slower = [value * 1.5 for value in stable]
    assert mann_whitney_greater(slower, stable).p_value < 1e-6
    assert mann_whitney_greater(stable, stable).p_value > 0.4
    assert mann_whitney_greater([0.2] * 10, [0.2] * 10).p_value == 1.0


def test_percentile_interpolates_like_numpy() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile([3.0], 99) == 3.0


def test_relative_increase() -> None:
    assert relative_increase(0.2, 0.3) == pytest.approx(0.5)
    assert relative_increase(0.0, 0.0) == 0.0
    assert math.isinf(relative_increase(0.0, 0.1))
