"""When requests are sent: all at once, constant-rate, Poisson or Gamma arrivals, with an optional linear ramp-up."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from enum import StrEnum

import numpy as np


class Arrival(StrEnum):
    """The arrival process of a finite request rate (`--arrival`)."""

    CONSTANT = "constant"  # a gap of exactly 1/rate: Gamma with infinite shape
    POISSON = "poisson"  # exponential gaps: Gamma with shape 1 (vLLM's default)
    GAMMA = "gamma"  # Gamma gaps of shape --burstiness, mean 1/rate


def resolve_arrival(arrival: str | None, burstiness: float) -> tuple[Arrival, float]:
    """The process and Gamma shape from `--arrival` and `--burstiness`. Without `--arrival`, burstiness 1 is
    Poisson, inf is constant (the limit of Gamma gaps as the shape grows), anything else Gamma."""
    if math.isnan(burstiness) or burstiness <= 0:
        raise ValueError("--burstiness must be positive (inf: constant-rate arrivals)")
    if arrival is None:
        if math.isinf(burstiness):
            return Arrival.CONSTANT, burstiness
        return (Arrival.POISSON if burstiness == 1 else Arrival.GAMMA), burstiness
    try:
        chosen = Arrival(arrival.lower())
    except ValueError:
        raise ValueError(f"--arrival must be one of {', '.join(a.value for a in Arrival)}, not {arrival!r}") from None
    if chosen is Arrival.POISSON and burstiness != 1:
        raise ValueError("--arrival poisson has burstiness 1; use --arrival gamma to set --burstiness")
    if chosen is Arrival.GAMMA and math.isinf(burstiness):
        raise ValueError("--arrival gamma needs a finite --burstiness (inf is --arrival constant)")
    return chosen, math.inf if chosen is Arrival.CONSTANT else burstiness


def arrival_gaps_s(request_rate: float, *, burstiness: float = 1.0, seed: int = 0,
                   arrival: Arrival | None = None) -> Iterator[float]:
    """Endless gaps in seconds between requests. `request_rate` inf: 0 (all at once); else Gamma with shape
    `burstiness` and scale 1/(rate·burstiness), so the mean gap is 1/rate (burstiness 1 is Poisson); constant
    arrivals (or burstiness inf) give exactly 1/rate."""
    if math.isnan(request_rate) or request_rate <= 0:
        raise ValueError("request_rate must be positive (or inf)")
    process, shape = resolve_arrival(arrival.value if arrival else None, burstiness)
    if math.isinf(request_rate):
        while True:
            yield 0.0
    if process is Arrival.CONSTANT:
        while True:
            yield 1.0 / request_rate
    rng = np.random.default_rng(seed)
    theta = 1.0 / (request_rate * shape)
    while True:
        yield float(rng.gamma(shape=shape, scale=theta))


def ramped_time_s(operational_s: float, ramp_up_s: float) -> float:
    """The wall time at which a process running at the full rate would have reached `operational_s`, when the
    rate instead climbs linearly from 0 to full over `ramp_up_s`: the inverse of Λ(t) = t²/(2T) for t < T,
    t − T/2 after (Λ is the integral of rate(t)/rate)."""
    if ramp_up_s <= 0:
        return operational_s
    if operational_s < ramp_up_s / 2:
        return math.sqrt(2.0 * ramp_up_s * operational_s)
    return operational_s + ramp_up_s / 2


def arrival_times_s(request_rate: float, *, burstiness: float = 1.0, seed: int = 0, arrival: Arrival | None = None,
                    ramp_up_s: float = 0.0) -> Iterator[float]:
    """Endless send times in seconds from the run's start, the first at 0: the gaps of `arrival_gaps_s`
    accumulated, then stretched so that the rate ramps linearly from 0 to `request_rate` over `ramp_up_s`."""
    if ramp_up_s < 0 or math.isnan(ramp_up_s) or (ramp_up_s > 0 and math.isinf(request_rate)):
        raise ValueError("--ramp-up-s must be non-negative and needs a finite --request-rate")
    operational = 0.0
    for gap in arrival_gaps_s(request_rate, burstiness=burstiness, seed=seed, arrival=arrival):
        yield ramped_time_s(operational, ramp_up_s)
        operational += gap


def offered_rate(send_times_s: Sequence[float]) -> float:
    """Requests per second the schedule offered: (n − 1) arrivals over the span from the first to the last
    (inf when they all go at once, nan with fewer than two)."""
    if len(send_times_s) < 2:
        return math.nan
    span = send_times_s[-1] - send_times_s[0]
    return math.inf if span <= 0 else (len(send_times_s) - 1) / span
