"""Batched writing off the request path: a bounded queue one task drains into batches, and its write helpers.

The request log (telemetry/log_writer.py) and the shadow-pair writer (rollout/shadow_writer.py) are thin
wrappers over `BatchWriter`: they choose the overflow policy and own their counters, metrics and messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final, Generic, TypeVar

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

T = TypeVar("T")

_WAKE: Final = object()  # put on the queue by close() to wake a drainer waiting for items
REDACT_SLICE_S = 0.001  # redaction yields to the event loop after this much work (keeps loop lag ~1 ms)
_REASON_MAX_CHARS = 200  # of a database error's reason, in log lines


@dataclass(slots=True, frozen=True)
class HoldOverflow:
    """A full queue holds new items in an ordered overflow line, lost only past `limit`; closing still accepts."""

    limit: int = 100_000


@dataclass(slots=True, frozen=True)
class DropOverflow:
    """A full queue refuses new items, and so does a writer that is closing: for samples, where some may go."""


OverflowPolicy = HoldOverflow | DropOverflow


class Admission(Enum):
    """What `BatchWriter.submit` did with an item."""

    QUEUED = "queued"
    HELD = "held"  # the queue was full; the item waits in the overflow line
    REFUSED_FULL = "refused_full"  # the queue (and any overflow line) was full; the item is not taken
    REFUSED_CLOSED = "refused_closed"  # the writer is closed (or, dropping overflow, closing)


class BatchWriter(Generic[T]):
    """Takes items on the event loop without blocking and hands them to `write` in batches.

    One task waits for an item, then gathers up to `batch_size` or until `flush_interval_s` has passed, and
    awaits `write(batch)`; `write` owns retries. `close()` writes everything queued before it returns.
    """

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[object]],
        *,
        queue_size: int,
        batch_size: int,
        flush_interval_s: float,
        overflow: OverflowPolicy,
        on_write_crash: Callable[[int, Exception], object],
        on_queue_full: Callable[[], object] | None = None,
        task_name: str = "sluice-batch-writer",
    ) -> None:
        self._write = write
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._policy = overflow
        self._on_write_crash = on_write_crash
        self._on_queue_full = on_queue_full
        self._task_name = task_name
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=queue_size)
        self._overflow: deque[T] = deque()
        self._in_flight = 0
        self._wake_queued = False  # the close() marker sits in the queue: not an item
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False

    @property
    def queue_depth(self) -> int:
        """Items submitted and not yet written: queued, waiting in overflow, and in the current batch."""
        return self._queue.qsize() - self._wake_queued + len(self._overflow) + self._in_flight

    @property
    def closing(self) -> bool:
        """True from the start of `close()` on."""
        return self._closing

    def submit(self, item: T) -> Admission:
        """Queue an item; never blocks. A full queue calls `on_queue_full`, then the policy holds or refuses."""
        policy = self._policy
        if self._closed or (self._closing and isinstance(policy, DropOverflow)):
            return Admission.REFUSED_CLOSED
        if not self._overflow and not self._queue.full():
            self._queue.put_nowait(item)
            return Admission.QUEUED
        if self._on_queue_full is not None:
            self._on_queue_full()
        if isinstance(policy, DropOverflow) or len(self._overflow) >= policy.limit:
            return Admission.REFUSED_FULL
        self._overflow.append(item)
        return Admission.HELD

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._task_name)

    async def close(self, timeout_s: float = 30.0) -> int:
        """Write everything submitted so far, then stop; after `timeout_s` gives up and returns how many are lost."""
        if self._closed:
            return 0
        await self.start()  # items submitted before start() still get written
        assert self._task is not None
        self._closing = True
        self._wake()
        done, _ = await asyncio.wait({self._task}, timeout=timeout_s)
        abandoned = 0
        if not done:
            abandoned = self.queue_depth
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._closed = True
        return abandoned

    def _wake(self) -> None:
        # A full queue means the drainer has work and will see `_closing` anyway.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_WAKE)
            self._wake_queued = True

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            if batch:
                self._in_flight = len(batch)
                try:
                    await self._write(batch)
                except Exception as error:  # the loop must outlive any bug in a batch
                    self._on_write_crash(len(batch), error)
                finally:
                    self._in_flight = 0
            if self._closing and self._queue.empty():
                return

    async def _collect(self) -> list[T]:
        """Wait for an item, then gather up to `batch_size` or until `flush_interval_s` has passed."""
        batch: list[T] = []
        self._take(await self._queue.get(), batch)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._flush_interval_s
        while len(batch) < self._batch_size:
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

    def _take(self, item: object, batch: list[T]) -> None:
        # An item just left the queue: the oldest overflow item takes its place, keeping arrival order.
        if self._overflow:
            self._queue.put_nowait(self._overflow.popleft())
        if item is _WAKE:
            self._wake_queued = False
        else:
            batch.append(item)  # type: ignore[arg-type]


def is_permanent(error: Exception) -> bool:
    """Errors caused by the rows themselves: retrying the same rows cannot succeed."""
    if isinstance(error, IntegrityError | DataError):
        return True
    # A StatementError that is not a DBAPIError failed while binding parameters, before the database.
    return isinstance(error, StatementError) and not isinstance(error, DBAPIError)


def describe_db_error(error: Exception) -> str:
    """An error for a log line: its type and the database's one-line reason, never the statement, its
    parameters or PostgreSQL's DETAIL (`Key (…)=(…)`, `Failing row contains (…)`), which quote row contents."""
    cause = getattr(error, "orig", None) or error  # a SQLAlchemy error wraps the driver's
    lines = str(cause).strip().splitlines()
    reason = lines[0][:_REASON_MAX_CHARS] if lines else ""
    return f"{type(cause).__name__}: {reason}" if reason else type(cause).__name__


class RowsRejected(Exception):
    """The database refused the rows themselves (a duplicate key, a bad value); `cause` is its error.

    Its message is `describe_db_error(cause)`: safe to log, it holds none of the rows' contents.
    """

    def __init__(self, cause: Exception) -> None:
        super().__init__(describe_db_error(cause))
        self.cause = cause


async def insert_retrying(
    insert: Callable[[list[T]], Awaitable[object]],
    rows: list[T],
    *,
    retry_initial_s: float,
    retry_max_s: float,
    on_error: Callable[[Exception], object],
) -> None:
    """Insert `rows`, retrying other errors with jittered exponential backoff; raises `RowsRejected`."""
    delay = retry_initial_s
    while True:
        try:
            await insert(rows)
        except Exception as error:
            if is_permanent(error):
                raise RowsRejected(error) from error
            on_error(error)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # jitter: replicas retry out of step
            delay = min(delay * 2, retry_max_s)
            continue
        return


async def map_yielding(transform: Callable[[T], T], items: list[T]) -> list[T]:
    """`transform` each item on the event loop's thread, yielding to the loop every `REDACT_SLICE_S` of work."""
    # Redaction is CPU work (~30 µs per KB); yielding every millisecond keeps loop lag near 1 ms, where a
    # worker thread fighting for the GIL measured 8-12 ms.
    done: list[T] = []
    slice_start = time.perf_counter()
    for item in items:
        done.append(transform(item))
        if time.perf_counter() - slice_start > REDACT_SLICE_S:
            await asyncio.sleep(0)
            slice_start = time.perf_counter()
    return done


__all__ = [
    "REDACT_SLICE_S",
    "Admission",
    "BatchWriter",
    "DropOverflow",
    "HoldOverflow",
    "OverflowPolicy",
    "RowsRejected",
    "describe_db_error",
    "insert_retrying",
    "is_permanent",
    "map_yielding",
]
