"""Arrival gaps: infinite rate sends at once; Gamma gaps keep mean 1/rate; burstiness 1 is exponential."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sluice.loadtest.arrivals import arrival_gaps_s


def draw(n: int, rate: float, **kwargs: float) -> np.ndarray:
    return np.array(list(itertools.islice(arrival_gaps_s(rate, **kwargs), n)))


def test_infinite_rate_sends_everything_at_once() -> None:
    assert draw(5, float("inf")).tolist() == [0.0] * 5


@pytest.mark.parametrize("burstiness", [0.5, 1.0, 3.0])
def test_mean_gap_is_one_over_rate(burstiness: float) -> None:
    gaps = draw(20_000, 4.0, burstiness=burstiness, seed=1)
    assert gaps.mean() == pytest.approx(0.25, rel=0.03)
    # Gamma(k, θ): variance k·θ², so the coefficient of variation is 1/sqrt(k)
    assert gaps.std() / gaps.mean() == pytest.approx(1 / np.sqrt(burstiness), rel=0.05)


def test_burstiness_one_is_exponential() -> None:
    gaps = draw(20_000, 2.0, burstiness=1.0, seed=2)
    # exponential: P(gap > mean) = e^-1
    assert (gaps > 0.5).mean() == pytest.approx(np.exp(-1), abs=0.01)


def test_same_seed_same_gaps() -> None:
    assert draw(10, 3.0, seed=7).tolist() == draw(10, 3.0, seed=7).tolist()
    assert draw(10, 3.0, seed=7).tolist() != draw(10, 3.0, seed=8).tolist()


def test_rejects_non_positive_rate_and_burstiness() -> None:
    with pytest.raises(ValueError):
        next(arrival_gaps_s(0))
    with pytest.raises(ValueError):
        next(arrival_gaps_s(1, burstiness=0))
