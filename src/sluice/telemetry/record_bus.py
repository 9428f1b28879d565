"""The record bus: each finished `RequestRecord` fans out to subscribers, each behind its own bounded queue.

The request path only calls `publish()`, which never blocks and never raises. Each subscriber drains its
own queue in its own task (`BatchWriter`), so a slow or broken one costs only its own records:
- `hold`: a full queue keeps records in order in an overflow line and closing still writes them (the
  request log, attached as a `RecordChannel` with its own retries and counters);
- `drop`: a full queue refuses the record and counts it (analytics: drift, SLO windows, experiment stats).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from sluice.records import RequestRecord
from sluice.telemetry.batch_writer import Admission, BatchWriter, DropOverflow, HoldOverflow

log = logging.getLogger("sluice.record_bus")

Overflow = Literal["hold", "drop"]
Subscriber = Callable[[list[RequestRecord]], Awaitable[object]]  # gets records in batches, in arrival order


class RecordChannel(Protocol):
    """A subscriber that owns its bounded queue (the request log); the bus hands it records and closes it."""

    @property
    def queue_depth(self) -> int: ...

    def submit(self, record: RequestRecord) -> None: ...  # never blocks, never raises

    async def start(self) -> None: ...

    async def close(self, timeout_s: float = 30.0) -> None: ...


class RecordBusMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.queue_depth = Gauge("sluice_record_bus_queue_depth",
                                 "Records published and not yet handled, per subscriber.", ["subscriber"],
                                 registry=registry)
        self.dropped = Counter("sluice_record_bus_dropped",
                               "Records a subscriber lost: its queue was full or closed, or it raised.",
                               ["subscriber", "reason"], registry=registry)


class Subscription:
    """One subscriber behind its own `BatchWriter`: its queue, its task, its overflow policy, its counts."""

    def __init__(self, name: str, subscriber: Subscriber, *, queue_size: int, overflow: Overflow,
                 batch_size: int, flush_interval_s: float, metrics: RecordBusMetrics | None) -> None:
        self.name = name
        self.dropped = 0  # refused: the queue was full (drop) or past its overflow limit (hold), or closed
        self.failed = 0  # handed to the subscriber, which raised
        self._metrics = metrics
        policy = HoldOverflow() if overflow == "hold" else DropOverflow()
        self._batches: BatchWriter[RequestRecord] = BatchWriter(
            subscriber, queue_size=queue_size, batch_size=batch_size, flush_interval_s=flush_interval_s,
            overflow=policy, on_write_crash=self._crashed, task_name=f"sluice-record-bus-{name}")

    @property
    def queue_depth(self) -> int:
        return self._batches.queue_depth

    def submit(self, record: RequestRecord) -> None:
        admission = self._batches.submit(record)
        if admission is Admission.REFUSED_FULL:
            self._lose(1, "full")
        elif admission is Admission.REFUSED_CLOSED:
            self._lose(1, "closed")

    async def start(self) -> None:
        await self._batches.start()

    async def close(self, timeout_s: float = 30.0) -> None:
        abandoned = await self._batches.close(timeout_s)
        if abandoned:
            log.error("record bus: subscriber %s lost %d records: close() timed out after %.1f s",
                      self.name, abandoned, timeout_s)
            self._lose(abandoned, "closed")

    def _crashed(self, records: int, error: Exception) -> None:
        log.error("record bus: subscriber %s raised on %d records", self.name, records, exc_info=error)
        self.failed += records
        if self._metrics is not None:
            self._metrics.dropped.labels(self.name, "error").inc(records)

    def _lose(self, records: int, reason: str) -> None:
        self.dropped += records
        if self._metrics is not None:
            self._metrics.dropped.labels(self.name, reason).inc(records)


class RecordBus:
    """Fans finished records out to subscribers. Subscribe before `start()`; `close()` drains every queue."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._metrics = RecordBusMetrics(registry) if registry is not None else None
        self._channels: dict[str, RecordChannel] = {}
        self._fan_out: tuple[RecordChannel, ...] = ()
        self._started = False

    def subscribe(self, name: str, subscriber: Subscriber, *, queue_size: int = 1000, overflow: Overflow = "drop",
                  batch_size: int = 100, flush_interval_s: float = 0.05) -> Subscription:
        """Hand `subscriber` every published record, in batches, from its own queue of `queue_size`."""
        subscription = Subscription(name, subscriber, queue_size=queue_size, overflow=overflow,
                                    batch_size=batch_size, flush_interval_s=flush_interval_s, metrics=self._metrics)
        self.attach(name, subscription)
        return subscription

    def attach(self, name: str, channel: RecordChannel) -> None:
        """Add a subscriber that owns its queue and its overflow policy (the request log)."""
        if self._started:
            raise RuntimeError(f"record bus: subscribe {name!r} before the bus starts")
        if name in self._channels:
            raise ValueError(f"record bus: a subscriber named {name!r} already exists")
        self._channels[name] = channel
        self._fan_out = tuple(self._channels.values())
        if self._metrics is not None:
            self._metrics.queue_depth.labels(name).set_function(lambda: channel.queue_depth)

    def detach(self, name: str) -> None:
        """Remove a subscriber (a closed request log, before the store reopens with a new one)."""
        if self._started:
            raise RuntimeError(f"record bus: detach {name!r} after the bus closes")
        if self._channels.pop(name, None) is None:
            return
        self._fan_out = tuple(self._channels.values())
        if self._metrics is not None:
            self._metrics.queue_depth.remove(name)

    @property
    def subscribers(self) -> dict[str, RecordChannel]:
        return dict(self._channels)

    def publish(self, record: RequestRecord) -> None:
        """Queue the record for every subscriber; never blocks, never raises."""
        for channel in self._fan_out:
            try:
                channel.submit(record)
            except Exception:  # one broken subscriber must not cost the others their record
                log.exception("record bus: a subscriber's submit raised")

    async def start(self) -> None:
        """Start every subscriber's task, in subscription order."""
        self._started = True
        for channel in self._fan_out:
            await channel.start()

    async def close(self, timeout_s: float = 30.0) -> None:
        """Drain every subscriber's queue (all at once, each within `timeout_s`: a slow analytic one cannot
        eat the request log's time), then stop their tasks."""
        results = await asyncio.gather(*(channel.close(timeout_s) for channel in self._fan_out),
                                       return_exceptions=True)
        for name, result in zip(self._channels, results, strict=True):
            if isinstance(result, BaseException):
                log.error("record bus: closing subscriber %s failed", name, exc_info=result)
        self._started = False


__all__ = ["Overflow", "RecordBus", "RecordBusMetrics", "RecordChannel", "Subscriber", "Subscription"]
