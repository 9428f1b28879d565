"""The request-log writer: a bounded queue off the request path, drained into batched DB inserts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.config import StoreConfig
from sluice.gateway.record import RequestRecord
from sluice.store.request_log import insert_many
from sluice.telemetry.redact import redact

log = logging.getLogger("sluice.request_log")

_WAKE: Final = object()  # put on the queue by close() to wake a drainer waiting for records
REDACT_SLICE_S = 0.001  # redaction yields to the event loop after this much work (keeps loop lag ~1 ms)


def _is_permanent(error: Exception) -> bool:
    """Errors caused by the rows themselves: retrying the same rows cannot succeed."""
    if isinstance(error, IntegrityError | DataError):
        return True
    # A StatementError that is not a DBAPIError failed while binding parameters, before the database.
    return isinstance(error, StatementError) and not isinstance(error, DBAPIError)


class _RowsRejected(Exception):
    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


class RequestLogWriter:
    """Takes `RequestRecord`s on the event loop without blocking and writes them in batches.

    `submit()` puts a record on a bounded queue. When the queue is full the record waits in an overflow
    line (counted: `queue_full_events`, `on_queue_full`) that the drainer moves into the queue as it
    takes records, in arrival order; nothing is dropped unless the overflow passes `overflow_limit`
    (a database outage that outlasts memory). Failed writes are retried with backoff, holding the batch.
    `close()` writes everything submitted before it returns.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        config: StoreConfig,
        *,
        on_queue_full: Callable[[], object] | None = None,
        on_rows_written: Callable[[int], object] | None = None,
        on_write_error: Callable[[], object] | None = None,
        on_rows_dropped: Callable[[int], object] | None = None,
        overflow_limit: int = 100_000,
        retry_initial_s: float = 0.05,
        retry_max_s: float = 5.0,
    ) -> None:
        self._engine = engine
        self._config = config
        self._on_queue_full = on_queue_full
        self._on_rows_written = on_rows_written
        self._on_write_error = on_write_error
        self._on_rows_dropped = on_rows_dropped
        self._overflow_limit = overflow_limit
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=config.queue_size)
        self._overflow: deque[RequestRecord] = deque()
        self._in_flight = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._last_error_log = 0.0
        self._last_drop_log = 0.0
        self._last_full_log = 0.0
        self._drops_not_logged = 0
        self.rows_written = 0
        self.write_errors = 0
        self.queue_full_events = 0
        self.rows_dropped = 0

    @property
    def queue_depth(self) -> int:
        """Records submitted and not yet written: queued, waiting in overflow, and in the current batch."""
        return self._queue.qsize() + len(self._overflow) + self._in_flight

    def submit(self, record: RequestRecord) -> None:
        """Hand a finished request's record to the log; never blocks, never raises."""
        if self._closed:
            self._drop(1, "the request-log writer is closed")
            return
        if not self._overflow and not self._queue.full():
            self._queue.put_nowait(record)
            return
        self.queue_full_events += 1
        _notify(self._on_queue_full)
        now = time.monotonic()
        if now - self._last_full_log >= 10.0:
            self._last_full_log = now
            log.warning("request log: queue full, %d records waiting (the store is slower than the traffic)",
                        self.queue_depth + 1)
        if len(self._overflow) >= self._overflow_limit:
            self._drop(1, f"the queue and its overflow ({self._overflow_limit} records) are full")
            return
        self._overflow.append(record)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sluice-request-log-writer")

    async def close(self, timeout_s: float = 30.0) -> None:
        """Write everything submitted so far (queue and overflow), then stop; gives up after `timeout_s`."""
        if self._closed:
            return
        await self.start()  # records submitted before start() still get written
        assert self._task is not None
        self._closing = True
        self._wake()
        done, _ = await asyncio.wait({self._task}, timeout=timeout_s)
        if not done:
            unwritten = self.queue_depth
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._drop(unwritten, f"close() timed out after {timeout_s:.1f} s")
        self._closed = True

    def _wake(self) -> None:
        # A full queue means the drainer has work and will see `_closing` anyway.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_WAKE)

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            if batch:
                self._in_flight = len(batch)
                try:
                    await self._write(batch)
                except Exception:  # the loop must outlive any bug in a batch
                    log.exception("request log: %d rows lost to an unexpected error", len(batch))
                    self._count_dropped(len(batch))
                finally:
                    self._in_flight = 0
            if self._closing and self._queue.empty():
                return

    async def _collect(self) -> list[RequestRecord]:
        """Wait for a record, then gather up to `batch_size` or until `flush_interval_s` has passed."""
        batch: list[RequestRecord] = []
        self._take(await self._queue.get(), batch)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.flush_interval_s
        while len(batch) < self._config.batch_size:
            if not self._queue.empty():
                self._take(self._queue.get_nowait(), batch)
                continue
            remaining = deadline - loop.time()
            if self._closing or remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    item = await self._queue.get()
            except TimeoutError:
                break
            self._take(item, batch)
        return batch

    def _take(self, item: object, batch: list[RequestRecord]) -> None:
        # A record just left the queue: the oldest overflow record takes its place, keeping arrival order.
        if self._overflow:
            self._queue.put_nowait(self._overflow.popleft())
        if item is not _WAKE:
            batch.append(item)  # type: ignore[arg-type]

    async def _write(self, batch: list[RequestRecord]) -> None:
        records = await self._apply_body_mode(batch)
        try:
            await self._insert_retrying(records)
        except _RowsRejected:
            # One bad row (a duplicate request id, say) must not sink its batch: write rows one by one.
            for record in records:
                try:
                    await self._insert_retrying([record])
                except _RowsRejected as rejected:
                    log.error("request log: dropped request %s: %s", record.request_id, rejected.cause)
                    self._count_dropped(1)

    async def _insert_retrying(self, records: list[RequestRecord]) -> None:
        delay = self._retry_initial_s
        while True:
            try:
                await insert_many(self._engine, records)
            except Exception as error:
                if _is_permanent(error):
                    raise _RowsRejected(error) from error
                self.write_errors += 1
                _notify(self._on_write_error)
                self._log_write_error(error, len(records))
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # jitter: replicas retry out of step
                delay = min(delay * 2, self._retry_max_s)
                continue
            self.rows_written += len(records)
            _notify(self._on_rows_written, len(records))
            return

    async def _apply_body_mode(self, batch: list[RequestRecord]) -> list[RequestRecord]:
        mode = self._config.log_bodies
        if mode == "full":
            return batch
        if mode == "none":
            return [_without_bodies(record) for record in batch]
        # Redaction is CPU work (~30 µs per KB) on the event loop's thread; yielding every millisecond
        # keeps loop lag near 1 ms, where a worker thread fighting for the GIL measured 8-12 ms.
        redacted: list[RequestRecord] = []
        slice_start = time.perf_counter()
        for record in batch:
            redacted.append(_redacted(record))
            if time.perf_counter() - slice_start > REDACT_SLICE_S:
                await asyncio.sleep(0)
                slice_start = time.perf_counter()
        return redacted

    def _log_write_error(self, error: Exception, rows: int) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= 10.0:  # an outage logs every 10 s, not every retry
            self._last_error_log = now
            log.warning("request log: writing %d rows failed (will retry, %d waiting): %s",
                        rows, self.queue_depth, error)

    def _drop(self, rows: int, reason: str) -> None:
        if not rows:
            return
        self._count_dropped(rows)
        self._drops_not_logged += rows
        now = time.monotonic()
        if now - self._last_drop_log >= 10.0 or self._closing:  # a flood of drops logs every 10 s
            self._last_drop_log = now
            log.error("request log: %d rows dropped: %s", self._drops_not_logged, reason)
            self._drops_not_logged = 0

    def _count_dropped(self, rows: int) -> None:
        self.rows_dropped += rows
        _notify(self._on_rows_dropped, rows)


def _notify(callback: Callable[..., object] | None, *args: int) -> None:
    """Call a metrics callback; a broken one is logged, never raised into the request path."""
    if callback is None:
        return
    try:
        callback(*args)
    except Exception:
        log.exception("request log: metrics callback %r failed", callback)


def _without_bodies(record: RequestRecord) -> RequestRecord:
    if record.request_body is None and record.response_body is None:
        return record
    return replace(record, request_body=None, response_body=None)


def _redacted(record: RequestRecord) -> RequestRecord:
    if record.request_body is None and record.response_body is None and record.error_message is None:
        return record
    try:
        return replace(
            record,
            request_body=None if record.request_body is None else redact(record.request_body),
            response_body=None if record.response_body is None else redact(record.response_body),
            # upstream errors often quote the offending input back
            error_message=None if record.error_message is None else redact(record.error_message),
        )
    except Exception:  # never store a body that failed redaction
        log.exception("request log: redaction failed for request %s; bodies not stored", record.request_id)
        return _without_bodies(record)


__all__ = ["REDACT_SLICE_S", "RequestLogWriter"]
