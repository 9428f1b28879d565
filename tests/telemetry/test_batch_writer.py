"""The generic batched writer: batching by size and interval, both overflow policies, shutdown, write helpers."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from sluice.telemetry.batch_writer import (
    Admission,
    BatchWriter,
    DropOverflow,
    HoldOverflow,
    OverflowPolicy,
    RowsRejected,
    insert_retrying,
    map_yielding,
)


class Sink:
    """A write function that records each batch it was given."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.crashes: list[tuple[int, Exception]] = []

    async def write(self, batch: list[int]) -> None:
        self.batches.append(list(batch))

    def crashed(self, count: int, error: Exception) -> None:
        self.crashes.append((count, error))

    @property
    def items(self) -> list[int]:
        return [item for batch in self.batches for item in batch]


def writer_for(sink: Sink, *, overflow: OverflowPolicy, queue_size: int = 100, batch_size: int = 10,
               flush_interval_s: float = 0.01) -> BatchWriter[int]:
    return BatchWriter(sink.write, queue_size=queue_size, batch_size=batch_size, flush_interval_s=flush_interval_s,
                       overflow=overflow, on_write_crash=sink.crashed)


async def test_items_are_written_in_batches_of_at_most_batch_size() -> None:
    sink = Sink()
    writer = writer_for(sink, overflow=HoldOverflow(), batch_size=10)
    await writer.start()
    for item in range(35):
        assert writer.submit(item) is Admission.QUEUED
    assert await writer.close(timeout_s=5) == 0
    assert sink.items == list(range(35))
    assert max(len(batch) for batch in sink.batches) == 10 and len(sink.batches) >= 4


async def test_a_lone_item_is_written_after_the_flush_interval() -> None:
    sink = Sink()
    writer = writer_for(sink, overflow=HoldOverflow(), batch_size=500, flush_interval_s=0.02)
    await writer.start()
    writer.submit(7)
    deadline = time.monotonic() + 5
    while not sink.batches and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    assert sink.batches == [[7]] and writer.queue_depth == 0
    await writer.close()


async def test_hold_overflow_keeps_arrival_order_and_refuses_only_past_its_limit() -> None:
    sink = Sink()
    full_events: list[int] = []
    writer = BatchWriter(sink.write, queue_size=2, batch_size=50, flush_interval_s=0.01,
                         overflow=HoldOverflow(limit=5), on_write_crash=sink.crashed,
                         on_queue_full=lambda: full_events.append(1))
    admissions = [writer.submit(item) for item in range(10)]
    assert admissions == [Admission.QUEUED] * 2 + [Admission.HELD] * 5 + [Admission.REFUSED_FULL] * 3
    assert len(full_events) == 8 and writer.queue_depth == 7
    await writer.close(timeout_s=5)
    assert sink.items == list(range(7)) and writer.queue_depth == 0


async def test_hold_overflow_accepts_items_while_closing() -> None:
    sink = Sink()
    writer = writer_for(sink, overflow=HoldOverflow())
    await writer.start()
    writer.submit(1)
    closing = asyncio.create_task(writer.close(timeout_s=5))
    await asyncio.sleep(0)
    assert writer.closing and writer.submit(2) is Admission.QUEUED
    await closing
    assert sink.items == [1, 2]
    assert writer.submit(3) is Admission.REFUSED_CLOSED


async def test_drop_overflow_refuses_when_full_and_while_closing() -> None:
    sink = Sink()
    writer = writer_for(sink, overflow=DropOverflow(), queue_size=3)
    admissions = [writer.submit(item) for item in range(5)]
    assert admissions == [Admission.QUEUED] * 3 + [Admission.REFUSED_FULL] * 2
    closing = asyncio.create_task(writer.close(timeout_s=5))
    await asyncio.sleep(0)
    assert writer.submit(9) is Admission.REFUSED_CLOSED
    await closing
    assert sink.items == [0, 1, 2]


async def test_close_flushes_without_waiting_out_the_interval() -> None:
    sink = Sink()
    writer = writer_for(sink, overflow=HoldOverflow(), batch_size=10_000, flush_interval_s=60)
    await writer.start()
    for item in range(30):
        writer.submit(item)
    await asyncio.sleep(0.02)  # the drainer is now waiting out its 60 s interval
    started = time.monotonic()
    await writer.close(timeout_s=5)
    assert time.monotonic() - started < 2 and sink.items == list(range(30))


async def test_close_returns_what_it_abandoned_after_its_timeout() -> None:
    async def stuck(batch: list[int]) -> None:
        await asyncio.sleep(60)

    writer = BatchWriter(stuck, queue_size=10, batch_size=10, flush_interval_s=0.01, overflow=HoldOverflow(),
                         on_write_crash=lambda count, error: None)
    for item in range(5):
        writer.submit(item)
    assert await writer.close(timeout_s=0.1) == 5
    assert await writer.close() == 0  # closing twice is harmless


async def test_a_crashing_write_is_reported_and_the_loop_goes_on() -> None:
    sink = Sink()

    async def flaky(batch: list[int]) -> None:
        if 0 in batch:
            raise RuntimeError("bug in the write")
        await sink.write(batch)

    writer = BatchWriter(flaky, queue_size=10, batch_size=1, flush_interval_s=0.01, overflow=HoldOverflow(),
                         on_write_crash=sink.crashed)
    for item in range(3):
        writer.submit(item)
    await writer.close(timeout_s=5)
    assert sink.items == [1, 2]
    assert [(count, str(error)) for count, error in sink.crashes] == [(1, "bug in the write")]


async def test_insert_retrying_retries_transient_errors_until_the_insert_succeeds() -> None:
    calls: list[list[int]] = []
    errors: list[Exception] = []

    async def insert(rows: list[int]) -> None:
        calls.append(rows)
        if len(calls) < 3:
            raise OperationalError("INSERT", {}, Exception("database is locked"))

    await insert_retrying(insert, [1, 2], retry_initial_s=0.001, retry_max_s=0.002, on_error=errors.append)
    assert len(calls) == 3 and len(errors) == 2


async def test_insert_retrying_does_not_retry_rows_the_database_rejects() -> None:
    errors: list[Exception] = []

    async def insert(rows: list[int]) -> None:
        raise IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))

    with pytest.raises(RowsRejected) as rejected:
        await insert_retrying(insert, [1], retry_initial_s=0.001, retry_max_s=0.002, on_error=errors.append)
    assert isinstance(rejected.value.cause, IntegrityError) and errors == []


async def test_map_yielding_transforms_every_item_in_order() -> None:
    assert await map_yielding(lambda item: item * 2, list(range(1000))) == [item * 2 for item in range(1000)]
