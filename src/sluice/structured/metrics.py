"""Structured-output metrics (docs/metrics.md#structured-output): how answers came out, attempts, compile time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

MODES = ("guided", "validated", "repaired", "reasked", "failed")


class StructuredMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.answers = Counter("sluice_structured_answers",
                               "Answers to a response_format, by model and how they came out: guided (the backend "
                               "decoded under the format), validated (valid as sent), repaired, reasked (valid after "
                               "a re-ask), failed (invalid after every attempt).", ["model", "mode"],
                               registry=registry)
        self.attempts = Histogram("sluice_structured_attempts", "Answers asked for per request with a "
                                  "response_format (1: no re-ask).", ["model"],
                                  buckets=(1, 2, 3, 4, 5, 6, 8, 10), registry=registry)
        self.compile_seconds = Histogram("sluice_structured_compile_seconds",
                                         "Compiling a schema's validator (once per distinct schema; cached after).",
                                         buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                  0.05, 0.1, 0.25, 1.0), registry=registry)

    def settled(self, model: str, mode: str, attempts: int) -> None:
        self.answers.labels(model, mode).inc()
        self.attempts.labels(model).observe(attempts)


__all__ = ["MODES", "StructuredMetrics"]
