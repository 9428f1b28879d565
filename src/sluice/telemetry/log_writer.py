"""The request-log writer: a bounded queue off the request path, drained into batched DB inserts."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.config import StoreConfig
from sluice.records import RequestRecord
from sluice.store import insert_many
from sluice.telemetry.batch_writer import (
    REDACT_SLICE_S,
    Admission,
    BatchWriter,
    HoldOverflow,
    RowsRejected,
    describe_db_error,
    insert_retrying,
    map_yielding,
)
from sluice.telemetry.redact import redact

log = logging.getLogger("sluice.request_log")


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
        self._batches: BatchWriter[RequestRecord] = BatchWriter(
            self._write, queue_size=config.queue_size, batch_size=config.batch_size,
            flush_interval_s=config.flush_interval_s, overflow=HoldOverflow(overflow_limit),
            on_write_crash=self._write_crashed, on_queue_full=self._queue_was_full,
            task_name="sluice-request-log-writer",
        )
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
        return self._batches.queue_depth

    def submit(self, record: RequestRecord) -> None:
        """Hand a finished request's record to the log; never blocks, never raises."""
        admission = self._batches.submit(record)
        if admission is Admission.REFUSED_CLOSED:
            self._drop(1, "the request-log writer is closed")
        elif admission is Admission.REFUSED_FULL:
            self._drop(1, f"the queue and its overflow ({self._overflow_limit} records) are full")

    async def start(self) -> None:
        await self._batches.start()

    async def close(self, timeout_s: float = 30.0) -> None:
        """Write everything submitted so far (queue and overflow), then stop; gives up after `timeout_s`."""
        unwritten = await self._batches.close(timeout_s)
        self._drop(unwritten, f"close() timed out after {timeout_s:.1f} s")

    def _queue_was_full(self) -> None:
        # Called before the record is held (or refused), so the count includes it.
        self.queue_full_events += 1
        _notify(self._on_queue_full)
        now = time.monotonic()
        if now - self._last_full_log >= 10.0:
            self._last_full_log = now
            log.warning("request log: queue full, %d records waiting (the store is slower than the traffic)",
                        self.queue_depth + 1)

    def _write_crashed(self, rows: int, error: Exception) -> None:
        log.error("request log: %d rows lost to an unexpected error", rows, exc_info=error)
        self._count_dropped(rows)

    async def _write(self, batch: list[RequestRecord]) -> None:
        records = await self._apply_body_mode(batch)
        try:
            await self._insert_retrying(records)
        except RowsRejected:
            # One bad row (a value the database refuses, say) must not sink its batch: write rows one by one.
            for record in records:
                try:
                    await self._insert_retrying([record])
                except RowsRejected as rejected:
                    # the gateway's id and the database's reason only: row contents are user data
                    log.error("request log: dropped request %s: %s", record.request_id, rejected)
                    self._count_dropped(1)

    async def _insert_retrying(self, records: list[RequestRecord]) -> None:
        await insert_retrying(self._insert, records, retry_initial_s=self._retry_initial_s,
                              retry_max_s=self._retry_max_s,
                              on_error=lambda error: self._write_failed(error, len(records)))
        self.rows_written += len(records)
        _notify(self._on_rows_written, len(records))

    async def _insert(self, records: list[RequestRecord]) -> None:
        await insert_many(self._engine, records)

    async def _apply_body_mode(self, batch: list[RequestRecord]) -> list[RequestRecord]:
        mode = self._config.log_bodies
        if mode == "full":
            return batch
        if mode == "none":
            return [_without_bodies(record) for record in batch]
        return await map_yielding(_redacted, batch)

    def _write_failed(self, error: Exception, rows: int) -> None:
        self.write_errors += 1
        _notify(self._on_write_error)
        now = time.monotonic()
        if now - self._last_error_log >= 10.0:  # an outage logs every 10 s, not every retry
            self._last_error_log = now
            log.warning("request log: writing %d rows failed (will retry, %d waiting): %s",
                        rows, self.queue_depth, describe_db_error(error))

    def _drop(self, rows: int, reason: str) -> None:
        if not rows:
            return
        self._count_dropped(rows)
        self._drops_not_logged += rows
        now = time.monotonic()
        if now - self._last_drop_log >= 10.0 or self._batches.closing:  # a flood of drops logs every 10 s
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
    texts = (record.request_body, record.response_body, record.error_message, record.user)
    if all(text is None for text in texts):
        return record
    try:
        return replace(
            record,
            request_body=_redact_or_none(record.request_body),
            response_body=_redact_or_none(record.response_body),
            # upstream errors often quote the offending input back
            error_message=_redact_or_none(record.error_message),
            user=_redact_or_none(record.user),  # the OpenAI `user` field: often an email address
        )
    except Exception:  # never store text that failed redaction
        log.exception("request log: redaction failed for request %s; bodies, error message and user not stored",
                      record.request_id)
        return replace(record, request_body=None, response_body=None, error_message=None, user=None)


def _redact_or_none(text: str | None) -> str | None:
    return None if text is None else redact(text)


__all__ = ["REDACT_SLICE_S", "RequestLogWriter"]
