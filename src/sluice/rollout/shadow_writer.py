"""The shadow-pair writer: a bounded queue off the request path, drained into batched inserts.

The request-log writer's `BatchWriter` (telemetry/batch_writer.py), with another policy on purpose: pairs are
samples for a report, so a full queue drops the new pair (counted) instead of holding it, and nothing is
retried past `close()`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.rollout import shadow_store
from sluice.rollout.shadow_metrics import ShadowMetrics
from sluice.rollout.shadow_pair import ShadowPair
from sluice.telemetry import (
    Admission,
    BatchWriter,
    DropOverflow,
    RowsRejected,
    insert_retrying,
    map_yielding,
    redact,
)

log = logging.getLogger("sluice.shadow")

BodyMode = Literal["full", "redacted", "none"]


class ShadowPairWriter:
    """Takes `ShadowPair`s without blocking and writes them in batches; bodies follow `store.log_bodies`."""

    def __init__(self, engine: AsyncEngine, *, log_bodies: BodyMode = "redacted", queue_size: int = 1000,
                 batch_size: int = 100, flush_interval_s: float = 1.0, metrics: ShadowMetrics | None = None,
                 retry_initial_s: float = 0.05, retry_max_s: float = 5.0) -> None:
        self._engine = engine
        self._log_bodies = log_bodies
        self._metrics = metrics
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._batches: BatchWriter[ShadowPair] = BatchWriter(
            self._write, queue_size=queue_size, batch_size=batch_size, flush_interval_s=flush_interval_s,
            overflow=DropOverflow(), on_write_crash=self._write_crashed, task_name="sluice-shadow-pair-writer",
        )
        self._last_drop_log = 0.0
        self.pairs_written = 0
        self.pairs_dropped = 0
        self.write_errors = 0

    @property
    def queue_depth(self) -> int:
        return self._batches.queue_depth

    def submit(self, pair: ShadowPair) -> None:
        """Queue a pair; never blocks, never raises. A full queue drops it (counted)."""
        admission = self._batches.submit(pair)
        if admission is Admission.REFUSED_CLOSED:
            self._drop(1, "the shadow-pair writer is closed")
        elif admission is Admission.REFUSED_FULL:
            self._drop(1, "the shadow-pair queue is full (the store is slower than the mirrored traffic)")

    async def start(self) -> None:
        await self._batches.start()

    async def close(self, timeout_s: float = 30.0) -> None:
        """Write what was submitted, then stop; gives up (dropping the rest, counted) after `timeout_s`."""
        unwritten = await self._batches.close(timeout_s)
        self._drop(unwritten, f"close() timed out after {timeout_s:.1f} s")

    def _write_crashed(self, count: int, error: Exception) -> None:
        log.error("shadow pairs: %d pairs lost to an unexpected error", count, exc_info=error)
        self._count_dropped(count)

    async def _write(self, batch: list[ShadowPair]) -> None:
        pairs = await self._apply_body_mode(batch)
        try:
            await insert_retrying(self._insert, pairs, retry_initial_s=self._retry_initial_s,
                                  retry_max_s=self._retry_max_s,
                                  on_error=lambda error: self._write_failed(error, len(pairs)))
        except RowsRejected:
            await self._write_one_by_one(pairs)
            return
        self._count_written(len(pairs))

    async def _insert(self, pairs: list[ShadowPair]) -> None:
        await shadow_store.insert_many(self._engine, pairs)

    async def _write_one_by_one(self, pairs: list[ShadowPair]) -> None:
        """One bad row must not sink its batch."""
        for pair in pairs:
            try:
                await self._insert([pair])
            except Exception as error:
                log.error("shadow pairs: dropped the pair of request %s: %s", pair.request_id, error)
                self._count_dropped(1)
            else:
                self._count_written(1)

    async def _apply_body_mode(self, batch: list[ShadowPair]) -> list[ShadowPair]:
        if self._log_bodies == "full":
            return batch
        if self._log_bodies == "none":
            return [_without_bodies(pair) for pair in batch]
        return await map_yielding(_redacted, batch)

    def _write_failed(self, error: Exception, count: int) -> None:
        self.write_errors += 1
        if self._metrics is not None:
            self._metrics.pair_write_errors.inc()
        log.warning("shadow pairs: writing %d pairs failed (will retry): %s", count, error)

    def _count_written(self, count: int) -> None:
        self.pairs_written += count
        if self._metrics is not None:
            self._metrics.pairs_written.inc(count)

    def _drop(self, count: int, reason: str) -> None:
        if not count:
            return
        self._count_dropped(count)
        now = time.monotonic()
        if now - self._last_drop_log >= 10.0:  # a flood of drops logs every 10 s
            self._last_drop_log = now
            log.warning("shadow pairs: %d dropped so far; latest because %s", self.pairs_dropped, reason)

    def _count_dropped(self, count: int) -> None:
        self.pairs_dropped += count
        if self._metrics is not None:
            self._metrics.pairs_dropped.inc(count)


def _without_bodies(pair: ShadowPair) -> ShadowPair:
    return replace(pair, request_body=None, primary_body=None, shadow_body=None)


def _redacted(pair: ShadowPair) -> ShadowPair:
    try:
        return replace(
            pair,
            request_body=None if pair.request_body is None else redact(pair.request_body),
            primary_body=None if pair.primary_body is None else redact(pair.primary_body),
            shadow_body=None if pair.shadow_body is None else redact(pair.shadow_body),
            # upstream errors often quote the offending input back
            primary_error=None if pair.primary_error is None else redact(pair.primary_error),
            shadow_error=None if pair.shadow_error is None else redact(pair.shadow_error),
        )
    except Exception:  # never store a body that failed redaction
        log.exception("shadow pairs: redaction failed for request %s; bodies not stored", pair.request_id)
        return _without_bodies(pair)


__all__ = ["ShadowPairWriter"]
