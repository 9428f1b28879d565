"""Helpers for cache tests: an adjustable clock, test vectors, metric samples, request-log rows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from sluice.gateway.record import RequestRecord
from tests.support.gateway import RunningGateway

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
    text = httpx.get(gw.url + "/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def records(db: Path) -> list[RequestRecord]:
    from sluice.store import create_engine, request_log

    async def read() -> list[RequestRecord]:
        engine = create_engine(f"sqlite:///{db}")
        try:
            return await request_log.recent(engine, limit=1000)
        finally:
            await engine.dispose()

    return asyncio.run(read())
