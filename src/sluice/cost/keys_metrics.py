"""Prometheus series of admission (keys, limits, budgets); none is labelled per key (docs/metrics.md).

Spend by key and team is `sluice_cost_usd_total` (cost/metrics.py); per-key budget standing is in the
admin API (`sluice keys show`). Here: refusals by reason, and how close admitted requests' keys are to
their budgets, as a histogram rather than one gauge per key.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Where in its tightest budget window an admitted request's key stands after its reservation.
BUDGET_RATIO_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)

REFUSAL_REASONS = ("auth", "model_not_allowed", "rate_limited", "budget", "unavailable")


class KeyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.refused = Counter("sluice_admission_refused", "Requests refused by admission, by reason and limit.",
                               ["reason", "limit"], registry=registry)
        self.budget_used = Histogram("sluice_key_budget_used_ratio",
                                     "Admitted requests by (spent + reserved) / limit of the key's tightest "
                                     "budget window, this request's reservation included.",
                                     buckets=BUDGET_RATIO_BUCKETS, registry=registry)
        self.lookups = Counter("sluice_key_lookups", "Virtual-key lookups by result: hit (cache), miss (store "
                               "read), unknown (no such key).", ["result"], registry=registry)
        self.state_errors = Counter("sluice_state_errors", "Failed shared-state (Redis) operations.",
                                    ["operation"], registry=registry)
        self.failed_open = Counter("sluice_admission_failed_open",
                                   "Requests admitted without limits because the shared state was unreachable "
                                   "(keys.fail_open).", registry=registry)
        # Children cached: one dict lookup per observation.
        self._refused = {(reason, limit): self.refused.labels(reason, limit) for reason, limit in (
            ("auth", ""), ("model_not_allowed", ""), ("rate_limited", "rpm"), ("rate_limited", "tpm"),
            ("budget", "day"), ("budget", "month"), ("budget", "total"), ("unavailable", ""))}
        self._lookups = {result: self.lookups.labels(result) for result in ("hit", "miss", "unknown")}

    def refuse(self, reason: str, limit: str = "") -> None:
        self._refused[(reason, limit)].inc()

    def lookup(self, result: str) -> None:
        self._lookups[result].inc()

__all__ = ["BUDGET_RATIO_BUCKETS", "REFUSAL_REASONS", "KeyMetrics"]
