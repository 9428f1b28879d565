"""Request inter-arrival gaps as vLLM `bench serve` draws them: all at once, Poisson, or Gamma bursts."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np


def arrival_gaps_s(request_rate: float, *, burstiness: float = 1.0, seed: int = 0) -> Iterator[float]:
    """Endless gaps in seconds before each request. `request_rate` inf: 0 (all at once); else Gamma with
    shape `burstiness` and scale 1/(rate·burstiness), so the mean gap is 1/rate; burstiness 1 is Poisson."""
    if request_rate <= 0:
        raise ValueError("request_rate must be positive (or inf)")
    if burstiness <= 0:
        raise ValueError("burstiness must be positive")
    if math.isinf(request_rate):
        while True:
            yield 0.0
    rng = np.random.default_rng(seed)
    theta = 1.0 / (request_rate * burstiness)
    while True:
        yield float(rng.gamma(shape=burstiness, scale=theta))
