"""Routing's Prometheus series (docs/metrics.md): attempts, retries, fallbacks, breakers, health, load.

Counters here move on rare events (a retry, a breaker opening); per-target series (attempts by outcome,
breaker state, health, load) are read from the router's state when Prometheus scrapes, so the request path
never touches a Prometheus object.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sluice.routing.breaker import BreakerState
from sluice.routing.target import TargetState

if TYPE_CHECKING:
    from sluice.routing.router import Router

RETRY_WAIT_BUCKETS_S = (0.001, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
_TARGET = ["target", "upstream_model"]


class RoutingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        self.retries = Counter("sluice_retries", "Retries made, by the failure kind that caused them.",
                               ["model", "reason"], registry=r)
        self.retry_wait = Histogram("sluice_retry_wait_seconds", "Wait before each retry (backoff, or a 429's "
                                    "retry-after).", ["model"], buckets=RETRY_WAIT_BUCKETS_S, registry=r)
        self.fallbacks = Counter("sluice_fallbacks", "Requests moved on to a fallback model.",
                                 ["model", "fallback", "reason"], registry=r)
        self.breaker_transitions = Counter("sluice_circuit_breaker_transitions", "Circuit breaker state changes, "
                                           "by the state entered.", [*_TARGET, "state"], registry=r)
        self.router_decisions = Counter("sluice_router_decisions", "Cost-based routing: decisions of a router "
                                        "model (requests to it, fallbacks through it) by the side chosen (easy, "
                                        "hard).", ["model", "choice"], registry=r)
        self.stream_resumes = Counter("sluice_stream_resumes", "Streams cut after output and resumed on a new "
                                      "attempt, by outcome (ok; diverged: the new answer differed, the stream "
                                      "ended with an error event; failed: no attempt could be opened or it broke "
                                      "too).", ["model", "outcome"], registry=r)
        self.health_checks = Counter("sluice_health_checks", "Active health checks by result (ok, failed).",
                                     [*_TARGET, "result"], registry=r)

    def watch(self, router: Router) -> None:
        """Expose the router's per-target gauges at scrape time."""
        self.registry.register(_TargetGauges(router))

    def retry(self, model: str, reason: str, wait_s: float) -> None:
        self.retries.labels(model, reason).inc()
        self.retry_wait.labels(model).observe(wait_s)

    def fallback(self, model: str, fallback: str, reason: str | None) -> None:
        self.fallbacks.labels(model, fallback, reason or "unknown").inc()

    def router_decided(self, model: str, choice: str) -> None:
        self.router_decisions.labels(model, choice).inc()

    def stream_resumed(self, model: str, outcome: str) -> None:
        self.stream_resumes.labels(model, outcome).inc()

    def breaker_changed(self, backend: str, model: str, state: BreakerState) -> None:
        self.breaker_transitions.labels(backend, model, state.name.lower()).inc()

    def health_checked(self, state: TargetState, ok: bool) -> None:
        self.health_checks.labels(state.backend, state.model, "ok" if ok else "failed").inc()


class _TargetGauges(Collector):
    def __init__(self, router: Router) -> None:
        self._router = router

    def describe(self) -> list[Metric]:
        return []  # no need to collect at registration: the names are unique to this collector

    def collect(self) -> Iterator[Metric]:
        breaker = GaugeMetricFamily("sluice_circuit_breaker_state", "Circuit breaker per target: 0 closed, "
                                    "1 half-open, 2 open.", labels=_TARGET)
        healthy = GaugeMetricFamily("sluice_target_healthy", "1 when the target may get traffic by active health "
                                    "checks (always 1 when they are off), else 0.", labels=_TARGET)
        outstanding = GaugeMetricFamily("sluice_target_outstanding_requests", "Attempts running on the target "
                                        "now (streams until their last chunk).", labels=_TARGET)
        attempts = CounterMetricFamily("sluice_upstream_attempts", "Upstream attempts by target and outcome: "
                                       "success, connection, 5xx, timeout, 429, 4xx, aborted (client gone or a "
                                       "gateway fault).", labels=[*_TARGET, "outcome"])
        latency = GaugeMetricFamily("sluice_target_latency_ewma_seconds", "EWMA of the target's latency to the "
                                    "first output chunk (streams) or the whole answer.", labels=_TARGET)
        for state in self._router.states():
            labels = [state.backend, state.model]
            breaker.add_metric(labels, int(state.breaker.state))
            healthy.add_metric(labels, 1 if state.healthy else 0)
            outstanding.add_metric(labels, state.outstanding)
            if state.ewma_s is not None:
                latency.add_metric(labels, state.ewma_s)
            if state.successes:
                attempts.add_metric([*labels, "success"], state.successes)
            for outcome, count in state.failures.items():
                attempts.add_metric([*labels, outcome], count)
        yield from (breaker, healthy, outstanding, latency, attempts)


__all__ = ["RoutingMetrics"]
