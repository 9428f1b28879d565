"""Prometheus series of shadow mode (docs/metrics.md, "Shadow mode"), on the gateway's registry."""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sluice.telemetry import E2E_BUCKETS_S

Outcome = Literal["sent", "skipped_full", "skipped_sampled", "error"]


class ShadowMetrics:
    """Mirrored requests by outcome, shadow latency and in-flight calls, and the pair writer's counters."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.requests = Counter("sluice_shadow_requests",
                                "Requests of models with a shadow target, by outcome: sent, skipped_full "
                                "(max concurrency reached), skipped_sampled (not in the sample), error "
                                "(a sent call that failed, or a mirror fault).",
                                ["model", "outcome"], registry=r)
        self.latency = Histogram("sluice_shadow_latency_seconds",
                                 "Duration of successful shadow calls (non-streaming, dispatch to answer).",
                                 ["model", "target"], buckets=E2E_BUCKETS_S, registry=r)
        self.in_flight = Gauge("sluice_shadow_in_flight", "Shadow calls running now.", ["model"], registry=r)
        self.pairs_written = Counter("sluice_shadow_pairs_written", "Shadow pairs written to the store.",
                                     registry=r)
        self.pairs_dropped = Counter("sluice_shadow_pairs_dropped",
                                     "Shadow pairs lost: writer queue full, store down at shutdown, or a row "
                                     "the database rejected.", registry=r)
        self.pair_write_errors = Counter("sluice_shadow_pair_write_errors",
                                         "Failed shadow-pair batch writes (retried).", registry=r)
        self._outcomes: dict[tuple[str, str], Counter] = {}

    def outcome(self, model: str, outcome: Outcome) -> None:
        key = (model, outcome)
        child = self._outcomes.get(key)
        if child is None:
            child = self._outcomes[key] = self.requests.labels(model, outcome)
        child.inc()


__all__ = ["Outcome", "ShadowMetrics"]
