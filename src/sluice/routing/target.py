"""Targets: a replica as the pipeline calls it (`Target`) and its run-time state (`TargetState`).

A `Target` belongs to one deployment version (its weight may change with the next one); its `TargetState`
belongs to the (backend, upstream model) pair and outlives deployment changes: outstanding requests,
latency EWMA, circuit breaker, health.
"""

from __future__ import annotations

from dataclasses import dataclass

from sluice.backends import Backend
from sluice.routing.breaker import BreakerState, CircuitBreaker, NoBreaker

EWMA_ALPHA = 0.3  # weight of the newest latency sample


class TargetState:
    """Mutable run-time state of one replica, shared by every pool that names it (one event loop, no locks)."""

    __slots__ = ("backend", "breaker", "ewma_s", "failures", "healthy", "model", "outstanding", "successes",
                 "throttled_until")

    def __init__(self, backend: str, model: str, breaker: CircuitBreaker | NoBreaker) -> None:
        self.backend = backend
        self.model = model  # upstream model name
        self.breaker = breaker
        self.outstanding = 0  # attempts running on it now (streams until their last chunk)
        self.ewma_s: float | None = None  # latency to the first output (streams) / the answer
        self.healthy = True  # active health checks' verdict (always True when they are off)
        self.throttled_until = 0.0  # after a 429: prefer other replicas until then (monotonic s)
        self.successes = 0  # attempts that got an answer (plain counts: Prometheus reads them at scrape time)
        self.failures: dict[str, int] = {}  # failure kind (or "aborted") -> attempts

    def usable(self, now: float) -> bool:
        """May take a request now: healthy and its breaker lets it through."""
        return self.healthy and (self.breaker.state is BreakerState.CLOSED or self.breaker.available(now))

    def observe_latency(self, seconds: float) -> None:
        ewma = self.ewma_s
        self.ewma_s = seconds if ewma is None else ewma + EWMA_ALPHA * (seconds - ewma)

    @property
    def key(self) -> tuple[str, str]:
        return self.backend, self.model


@dataclass(slots=True, frozen=True, eq=False)
class Target:
    """One replica of a public model, as the pipeline calls it."""

    backend: Backend
    upstream_model: str
    weight: float
    state: TargetState
    public_model: str = ""  # the model whose deployment lists it
    fallback: bool = False  # reached as another model's fallback (the response says so in a header)

    @property
    def name(self) -> str:
        return self.backend.name


__all__ = ["EWMA_ALPHA", "Target", "TargetState"]
