"""The shadow-pair writer: a bounded queue off the request path, drained into batched inserts.

The pattern of the request-log writer (telemetry/log_writer.py), simpler on purpose: pairs are samples for
a report, so a full queue drops the new pair (counted) instead of holding it, and nothing is retried past
`close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import replace
from typing import Final, Literal

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.rollout.shadow_metrics import ShadowMetrics
from sluice.rollout.shadow_pair import ShadowPair
from sluice.store import shadow_pairs
from sluice.telemetry.log_writer import REDACT_SLICE_S
from sluice.telemetry.redact import redact

log = logging.getLogger("sluice.shadow")

_WAKE: Final = object()  # put on the queue by close() to wake a drainer waiting for pairs
BodyMode = Literal["full", "redacted", "none"]


class ShadowPairWriter:
    """Takes `ShadowPair`s without blocking and writes them in batches; bodies follow `store.log_bodies`."""

    def __init__(self, engine: AsyncEngine, *, log_bodies: BodyMode = "redacted", queue_size: int = 1000,
                 batch_size: int = 100, flush_interval_s: float = 1.0, metrics: ShadowMetrics | None = None,
                 retry_initial_s: float = 0.05, retry_max_s: float = 5.0) -> None:
        self._engine = engine
        self._log_bodies = log_bodies
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._metrics = metrics
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self._in_batch = 0
        self._closing = False
        self._closed = False
        self._last_drop_log = 0.0
        self.pairs_written = 0
        self.pairs_dropped = 0
        self.write_errors = 0

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize() + self._in_batch

    def submit(self, pair: ShadowPair) -> None:
        """Queue a pair; never blocks, never raises. A full queue drops it (counted)."""
        if self._closed or self._closing:
            self._drop(1, "the shadow-pair writer is closed")
            return
        try:
            self._queue.put_nowait(pair)
        except asyncio.QueueFull:
            self._drop(1, "the shadow-pair queue is full (the store is slower than the mirrored traffic)")

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sluice-shadow-pair-writer")

    async def close(self, timeout_s: float = 30.0) -> None:
        """Write what was submitted, then stop; gives up (dropping the rest, counted) after `timeout_s`."""
        if self._closed:
            return
        await self.start()
        assert self._task is not None
        self._closing = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_WAKE)
        done, _ = await asyncio.wait({self._task}, timeout=timeout_s)
        if not done:
            unwritten = self.queue_depth
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._drop(unwritten, f"close() timed out after {timeout_s:.1f} s")
        self._closed = True

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            if batch:
                self._in_batch = len(batch)
                try:
                    await self._write(batch)
                except Exception:  # the loop must outlive any bug in a batch
                    log.exception("shadow pairs: %d pairs lost to an unexpected error", len(batch))
                    self._count_dropped(len(batch))
                finally:
                    self._in_batch = 0
            if self._closing and self._queue.empty():
                return

    async def _collect(self) -> list[ShadowPair]:
        """Wait for a pair, then gather up to `batch_size` or until `flush_interval_s` has passed."""
        batch: list[ShadowPair] = []
        item = await self._queue.get()
        if item is not _WAKE:
            batch.append(item)  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._flush_interval_s
        while len(batch) < self._batch_size and not self._closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    item = await self._queue.get()
            except TimeoutError:
                break
            if item is not _WAKE:
                batch.append(item)  # type: ignore[arg-type]
        while self._closing and len(batch) < self._batch_size and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not _WAKE:
                batch.append(item)  # type: ignore[arg-type]
        return batch

    async def _write(self, batch: list[ShadowPair]) -> None:
        pairs = await self._apply_body_mode(batch)
        delay = self._retry_initial_s
        while True:
            try:
                await shadow_pairs.insert_many(self._engine, pairs)
            except Exception as error:
                if _is_permanent(error):
                    await self._write_one_by_one(pairs)
                    return
                self.write_errors += 1
                if self._metrics is not None:
                    self._metrics.pair_write_errors.inc()
                log.warning("shadow pairs: writing %d pairs failed (will retry): %s", len(pairs), error)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # jitter: replicas retry out of step
                delay = min(delay * 2, self._retry_max_s)
                continue
            self._count_written(len(pairs))
            return

    async def _write_one_by_one(self, pairs: list[ShadowPair]) -> None:
        """One bad row must not sink its batch."""
        for pair in pairs:
            try:
                await shadow_pairs.insert_many(self._engine, [pair])
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
        redacted: list[ShadowPair] = []
        slice_start = time.perf_counter()
        for pair in batch:
            redacted.append(_redacted(pair))
            if time.perf_counter() - slice_start > REDACT_SLICE_S:  # keep the event loop responsive
                await asyncio.sleep(0)
                slice_start = time.perf_counter()
        return redacted

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


def _is_permanent(error: Exception) -> bool:
    """Errors caused by the rows themselves: retrying the same rows cannot succeed."""
    if isinstance(error, IntegrityError | DataError):
        return True
    return isinstance(error, StatementError) and not isinstance(error, DBAPIError)


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
