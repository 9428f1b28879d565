"""Arrivals: infinite rate sends at once; Gamma gaps keep mean 1/rate (1 is exponential, inf constant); ramp-up."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from sluice.loadtest.arrivals import (
    Arrival,
    arrival_gaps_s,
    arrival_times_s,
    offered_rate,
    ramped_time_s,
    resolve_arrival,
)


def draw(n: int, rate: float, **kwargs: float | Arrival) -> np.ndarray:
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


def test_constant_arrivals_are_exactly_one_over_rate_and_burstiness_inf_means_constant() -> None:
    assert draw(4, 8.0, arrival=Arrival.CONSTANT).tolist() == [0.125] * 4
    assert draw(4, 8.0, burstiness=math.inf).tolist() == [0.125] * 4


@pytest.mark.parametrize(("arrival", "burstiness", "expected"), [
    (None, 1.0, (Arrival.POISSON, 1.0)), (None, 0.5, (Arrival.GAMMA, 0.5)),
    (None, math.inf, (Arrival.CONSTANT, math.inf)),
    ("constant", 1.0, (Arrival.CONSTANT, math.inf)), ("Gamma", 3.0, (Arrival.GAMMA, 3.0))])
def test_the_arrival_process_follows_the_flags(arrival: str | None, burstiness: float,
                                               expected: tuple[Arrival, float]) -> None:
    assert resolve_arrival(arrival, burstiness) == expected


@pytest.mark.parametrize(("arrival", "burstiness"), [("poisson", 2.0), ("gamma", math.inf), ("uniform", 1.0),
                                                     (None, math.nan), (None, -1.0)])
def test_contradictory_arrival_flags_are_refused(arrival: str | None, burstiness: float) -> None:
    with pytest.raises(ValueError, match=r"--arrival|--burstiness"):
        resolve_arrival(arrival, burstiness)


def test_a_poisson_sample_offers_a_rate_of_its_own_and_it_is_reported() -> None:
    times = list(itertools.islice(arrival_times_s(20.0, seed=0), 200))
    assert times[0] == 0.0 and times == sorted(times)
    offered = offered_rate(times)
    assert offered == pytest.approx(199 / times[-1])
    assert abs(offered - 20.0) > 0.1  # a sample of 200 gaps is not the asked rate
    constant = list(itertools.islice(arrival_times_s(20.0, arrival=Arrival.CONSTANT), 200))
    assert offered_rate(constant) == pytest.approx(20.0)
    assert offered_rate([0.0, 0.0]) == math.inf and math.isnan(offered_rate([0.0]))


def test_ramp_up_climbs_linearly_from_zero_to_the_rate_then_holds_it() -> None:
    rate, ramp_s = 10.0, 4.0
    times = list(itertools.islice(arrival_times_s(rate, arrival=Arrival.CONSTANT, ramp_up_s=ramp_s), 60))
    # Λ(t) = rate·t²/(2T) arrivals by t < T: the k-th arrival at sqrt(2Tk/rate); after T one every 1/rate.
    for k, t in enumerate(times):
        expected = math.sqrt(2 * ramp_s * k / rate) if k / rate < ramp_s / 2 else k / rate + ramp_s / 2
        assert t == pytest.approx(expected)
    assert sum(t < ramp_s for t in times) == rate * ramp_s / 2  # half the arrivals of a full-rate start
    assert ramped_time_s(1.0, 0.0) == 1.0
    with pytest.raises(ValueError, match="ramp-up"):
        next(arrival_times_s(math.inf, ramp_up_s=1.0))
