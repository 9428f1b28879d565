"""The record bus: fan-out to subscribers behind their own queues, drop-and-count vs hold-in-order, isolation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.config import StoreConfig
from sluice.records import RequestRecord
from sluice.store import create_engine, migrate, request_log
from sluice.telemetry.log_writer import RequestLogWriter
from sluice.telemetry.record_bus import RecordBus


def record(index: int) -> RequestRecord:
    return RequestRecord(request_id=f"req-{index:05d}", created_at=1_750_000_000.0 + index, endpoint="chat",
                         model="m", target="t", backend_type="openai", upstream_model="u", stream=False,
                         status_code=200)


class Collected:
    """A subscriber that keeps what it is given; `gate`, when set, holds every batch until it opens."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.records: list[RequestRecord] = []
        self.gate = gate

    async def __call__(self, batch: list[RequestRecord]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.records.extend(batch)

    @property
    def ids(self) -> list[str]:
        return [r.request_id for r in self.records]


async def broken(batch: list[RequestRecord]) -> None:
    raise RuntimeError("bug in a subscriber")


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    await migrate(url)
    engine = create_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_a_slow_analytic_subscriber_drops_and_counts_while_the_request_log_keeps_every_row(
        engine: AsyncEngine) -> None:
    registry = CollectorRegistry()
    bus = RecordBus(registry)
    writer = RequestLogWriter(engine, StoreConfig(queue_size=4, batch_size=8, flush_interval_s=0.01))
    bus.attach("request_log", writer)
    gate = asyncio.Event()
    slow = Collected(gate)
    analytics = bus.subscribe("drift", slow, queue_size=2, batch_size=1, overflow="drop")
    await bus.start()

    for index in range(50):  # no await between publishes: neither drainer runs, both queues fill
        bus.publish(record(index))
    assert analytics.dropped == 48 and analytics.queue_depth == 2
    assert sample(registry, "sluice_record_bus_dropped_total", subscriber="drift", reason="full") == 48
    assert sample(registry, "sluice_record_bus_queue_depth", subscriber="drift") == 2
    assert sample(registry, "sluice_record_bus_queue_depth", subscriber="request_log") == 50  # 4 queued, 46 held

    gate.set()
    await bus.close(timeout_s=10)
    assert slow.ids == ["req-00000", "req-00001"]
    assert writer.rows_dropped == 0 and await request_log.count(engine) == 50
    stored = await request_log.rows_after(engine, 0, limit=100)
    assert [r.request_id for _, r in stored] == [f"req-{i:05d}" for i in range(50)]  # in arrival order


async def test_close_drains_a_hold_subscriber_in_order() -> None:
    bus = RecordBus()
    gate = asyncio.Event()
    held = Collected(gate)
    subscription = bus.subscribe("feedback", held, queue_size=2, batch_size=3, overflow="hold")
    await bus.start()
    for index in range(20):
        bus.publish(record(index))
    assert subscription.queue_depth == 20 and subscription.dropped == 0  # 2 queued, 18 held in order
    gate.set()
    await bus.close(timeout_s=10)
    assert held.ids == [f"req-{i:05d}" for i in range(20)] and subscription.dropped == 0


async def test_a_drop_subscriber_refuses_records_once_closed_and_counts_them() -> None:
    registry = CollectorRegistry()
    bus = RecordBus(registry)
    late = Collected()
    subscription = bus.subscribe("slo", late, overflow="drop")
    await bus.start()
    bus.publish(record(0))
    await bus.close(timeout_s=10)
    bus.publish(record(1))
    assert late.ids == ["req-00000"] and subscription.dropped == 1
    assert sample(registry, "sluice_record_bus_dropped_total", subscriber="slo", reason="closed") == 1


async def test_a_subscriber_that_raises_does_not_break_the_others() -> None:
    registry = CollectorRegistry()
    bus = RecordBus(registry)

    class RefusesEverything:  # a channel whose submit itself raises (a bug), ahead of the others
        queue_depth = 0

        def submit(self, record: RequestRecord) -> None:
            raise RuntimeError("bug in submit")

        async def start(self) -> None: ...

        async def close(self, timeout_s: float = 30.0) -> None: ...

    bus.attach("refuses", RefusesEverything())
    failing = bus.subscribe("experiments", broken, batch_size=2)
    healthy = Collected()
    bus.subscribe("rollups", healthy, batch_size=2)
    await bus.start()
    for index in range(5):
        bus.publish(record(index))
    await bus.close(timeout_s=10)
    assert healthy.ids == [f"req-{i:05d}" for i in range(5)]
    assert failing.failed == 5 and failing.dropped == 0
    assert sample(registry, "sluice_record_bus_dropped_total", subscriber="experiments", reason="error") == 5


async def test_subscribers_join_before_the_bus_starts_under_unique_names() -> None:
    bus = RecordBus()
    bus.subscribe("drift", Collected())
    with pytest.raises(ValueError, match="drift"):
        bus.subscribe("drift", Collected())
    await bus.start()
    with pytest.raises(RuntimeError, match="before the bus starts"):
        bus.subscribe("late", Collected())
    await bus.close(timeout_s=10)
    bus.detach("drift")
    assert bus.subscribers == {}
