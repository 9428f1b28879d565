"""Guard metrics (docs/metrics.md#safety): every check's latency per guard, and what they found."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from sluice.safety.guards import Verdict

# Rule layers take microseconds, model layers milliseconds to a second.
GUARD_BUCKETS_S = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                   0.1, 0.25, 0.5, 1.0, 2.5)


class SafetyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.check_seconds = Histogram("sluice_guard_check_seconds", "One guard's check of one text.",
                                       ["guard", "direction"], buckets=GUARD_BUCKETS_S, registry=registry)
        self.verdicts = Counter("sluice_guard_verdicts",
                                "What guards found, by guard, direction, category, action and mode (monitor: "
                                "would have acted).", ["guard", "direction", "category", "action", "mode"],
                                registry=registry)
        self.checked = Counter("sluice_guard_checked", "Requests (input) and answers (output) that guards checked.",
                               ["model", "direction"], registry=registry)
        self.blocked = Counter("sluice_guard_blocked",
                               "Requests refused (input) and answers cut (output) by an enforcing guard; over "
                               "sluice_guard_checked_total it is the rejection rate.", ["model", "direction"],
                               registry=registry)
        self.failed = Counter("sluice_guard_errors",
                              "Called guards that could not decide (timeout, error, an answer that made no sense), "
                              "by outcome: allowed (fail open) or blocked (fail closed).",
                              ["guard", "direction", "outcome"], registry=registry)
        self._timers: dict[tuple[str, str], Histogram] = {}
        self._checked: dict[tuple[str, str], Counter] = {}

    def timed(self, guard: str, direction: str, seconds: float) -> None:
        child = self._timers.get((guard, direction))
        if child is None:
            child = self._timers[(guard, direction)] = self.check_seconds.labels(guard, direction)
        child.observe(seconds)

    def count_checked(self, model: str, direction: str) -> None:
        child = self._checked.get((model, direction))
        if child is None:
            child = self._checked[(model, direction)] = self.checked.labels(model, direction)
        child.inc()

    def found(self, verdict: Verdict) -> None:
        self.verdicts.labels(verdict.guard, verdict.direction, verdict.category, verdict.action, verdict.mode).inc()


__all__ = ["GUARD_BUCKETS_S", "SafetyMetrics"]
