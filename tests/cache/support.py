"""Helpers for cache tests: an adjustable clock, test vectors, metric samples, request-log rows."""

from __future__ import annotations

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from tests.support.gateway import RunningGateway
from tests.support.gateway import records as records  # re-exported: the cache tests read rows through here

DIM = 32  # test vectors: random unit vectors and noisy copies of them


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def near(vector: np.ndarray, seed: int, noise: float = 0.05) -> np.ndarray:
    moved = vector + noise * np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return moved / np.linalg.norm(moved)


class FakeClock:
    """The cache's clock (wall seconds), moved by tests instead of sleeping."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def metric(gw: RunningGateway, name: str, **labels: str) -> float:
    text = gw.metrics_text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0
