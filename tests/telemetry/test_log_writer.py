"""The request-log writer: batching, body modes, back-pressure without loss, retries, and shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.config import StoreConfig
from sluice.records import RequestRecord
from sluice.store import create_engine, migrate, request_log
from sluice.telemetry.log_writer import RequestLogWriter
from tests.support.postgres import database_url, postgres_server, postgres_url  # noqa: F401

PII_BODY = '{"messages":[{"role":"user","content":"I am jane@example.com, card 4111 1111 1111 1111"}]}'
REDACTED_BODY = '{"messages":[{"role":"user","content":"I am [EMAIL], card [CARD]"}]}'


def record(index: int, **overrides: object) -> RequestRecord:
    values: dict[str, object] = dict(
        request_id=f"req-{index:05d}", created_at=1_750_000_000.0 + index, endpoint="chat", model="m",
        target="t", backend_type="openai", upstream_model="u", stream=False, status_code=200,
    )
    values.update(overrides)
    return RequestRecord(**values)  # type: ignore[arg-type]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'log.db'}"


@pytest.fixture
async def engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    await migrate(sqlite_url)
    engine = create_engine(sqlite_url)
    try:
        yield engine
    finally:
        await engine.dispose()


def count_commits(engine: AsyncEngine) -> list[int]:
    commits: list[int] = []
    event.listen(engine.sync_engine, "commit", lambda connection: commits.append(1))
    return commits


async def test_records_are_written_in_fewer_transactions_than_records(engine: AsyncEngine) -> None:
    commits = count_commits(engine)
    writer = RequestLogWriter(engine, StoreConfig(batch_size=100, flush_interval_s=0.05))
    await writer.start()
    for index in range(250):
        writer.submit(record(index))
    await writer.close(timeout_s=10)

    assert await request_log.count(engine) == 250
    assert writer.rows_written == 250
    assert 3 <= len(commits) <= 5  # 100 + 100 + 50, give or take a flush-interval split


async def test_a_lone_record_is_written_after_the_flush_interval(engine: AsyncEngine) -> None:
    writer = RequestLogWriter(engine, StoreConfig(batch_size=500, flush_interval_s=0.05))
    await writer.start()
    writer.submit(record(1))
    deadline = time.monotonic() + 5
    while writer.rows_written < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert writer.rows_written == 1 and writer.queue_depth == 0
    await writer.close()


@pytest.mark.parametrize(
    ("mode", "request_body", "response_body", "error_message", "user"),
    [
        ("full", PII_BODY, "mail me at bob@example.org", "bad value jane@example.com", "john.doe@example.com"),
        ("redacted", REDACTED_BODY, "mail me at [EMAIL]", "bad value [EMAIL]", "[EMAIL]"),
        ("none", None, None, "bad value jane@example.com", "john.doe@example.com"),
    ],
)
async def test_body_modes_store_bodies_and_user_as_configured(
    engine: AsyncEngine, mode: str, request_body: str | None, response_body: str | None, error_message: str,
    user: str,
) -> None:
    writer = RequestLogWriter(engine, StoreConfig(log_bodies=mode, flush_interval_s=0.01))  # type: ignore[arg-type]
    await writer.start()
    writer.submit(record(1, request_body=PII_BODY, response_body="mail me at bob@example.org",
                         error_message="bad value jane@example.com", user="john.doe@example.com"))
    writer.submit(record(2))  # no bodies at all
    writer.submit(record(3, user="john.doe@example.com"))  # a user and nothing else to redact
    await writer.close()

    stored = await request_log.get(engine, "req-00001")
    assert stored is not None
    assert (stored.request_body, stored.response_body, stored.error_message, stored.user) == (
        request_body, response_body, error_message, user)
    assert await request_log.get(engine, "req-00002") == record(2)
    alone = await request_log.get(engine, "req-00003")
    assert alone is not None and alone.user == user


async def test_a_full_queue_loses_nothing_and_keeps_arrival_order(engine: AsyncEngine) -> None:
    full_events: list[int] = []
    written: list[int] = []
    writer = RequestLogWriter(engine, StoreConfig(queue_size=2, batch_size=50, flush_interval_s=0.01),
                              on_queue_full=lambda: full_events.append(1), on_rows_written=written.append)
    await writer.start()
    for index in range(500):  # no await in between: the drainer cannot run, the queue overflows
        writer.submit(record(index))
    assert writer.queue_depth == 500
    assert writer.queue_full_events == len(full_events) == 498
    await writer.close(timeout_s=30)

    assert await request_log.count(engine) == 500 and sum(written) == 500
    assert writer.rows_dropped == 0 and writer.queue_depth == 0
    rows = await request_log.rows_after(engine, 0, limit=1000)
    assert [r.request_id for _, r in rows] == [f"req-{i:05d}" for i in range(500)]


async def test_close_flushes_everything_without_waiting_for_the_interval(engine: AsyncEngine) -> None:
    writer = RequestLogWriter(engine, StoreConfig(batch_size=10_000, flush_interval_s=60))
    await writer.start()
    for index in range(30):
        writer.submit(record(index))
    await asyncio.sleep(0.05)  # the drainer is now waiting out its 60 s interval
    started = time.monotonic()
    await writer.close(timeout_s=10)
    assert time.monotonic() - started < 2
    assert await request_log.count(engine) == 30


async def test_records_submitted_before_start_are_written_by_close(engine: AsyncEngine) -> None:
    writer = RequestLogWriter(engine, StoreConfig(queue_size=4))
    for index in range(10):
        writer.submit(record(index))
    await writer.close()
    assert await request_log.count(engine) == 10


async def test_a_failing_database_is_retried_until_it_recovers(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)  # not migrated yet: every insert fails with "no such table"
    errors: list[int] = []
    writer = RequestLogWriter(engine, StoreConfig(flush_interval_s=0.01), on_write_error=lambda: errors.append(1),
                              retry_initial_s=0.01, retry_max_s=0.05)
    await writer.start()
    for index in range(20):
        writer.submit(record(index))
    deadline = time.monotonic() + 5
    while writer.write_errors < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert writer.write_errors >= 3 and len(errors) == writer.write_errors
    assert writer.queue_depth == 20 and writer.rows_written == 0

    await migrate(sqlite_url)  # the database comes back
    await writer.close(timeout_s=10)
    assert writer.rows_written == 20 and writer.rows_dropped == 0
    assert await request_log.count(engine) == 20
    await engine.dispose()


async def test_close_gives_up_after_its_timeout_when_the_database_stays_down(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)  # never migrated
    writer = RequestLogWriter(engine, StoreConfig(flush_interval_s=0.01), retry_initial_s=0.01)
    await writer.start()
    for index in range(5):
        writer.submit(record(index))
    started = time.monotonic()
    await writer.close(timeout_s=0.3)
    assert 0.25 < time.monotonic() - started < 3
    assert writer.rows_written == 0 and writer.rows_dropped == 5
    await engine.dispose()


async def test_a_row_the_database_rejects_is_dropped_alone(engine: AsyncEngine) -> None:
    writer = RequestLogWriter(engine, StoreConfig(batch_size=100, flush_interval_s=0.05))
    await writer.start()
    for index in range(10):
        writer.submit(record(index))
    writer.submit(record(3, model="duplicate id"))
    await writer.close()
    assert await request_log.count(engine) == 10
    assert writer.rows_dropped == 1 and writer.rows_written == 10
    stored = await request_log.get(engine, "req-00003")
    assert stored is not None and stored.model == "m"


async def test_a_rejected_row_drops_alone_and_its_log_line_holds_none_of_its_contents(
    database_url: str, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    await migrate(database_url)
    engine = create_engine(database_url)
    writer = RequestLogWriter(engine, StoreConfig(log_bodies="full", batch_size=100, flush_interval_s=0.05))
    await writer.start()
    writer.submit(record(1))
    writer.submit(record(1, user="john.doe@example.com", client_ip="203.0.113.7", request_body=PII_BODY,
                         client_request_id="client-secret-id"))  # the same gateway id: the database refuses it
    writer.submit(record(2))
    with caplog.at_level(logging.DEBUG, logger="sluice"):
        await writer.close()
    try:
        assert await request_log.count(engine) == 2
    finally:
        await engine.dispose()
    assert writer.rows_dropped == 1 and writer.rows_written == 2
    (line,) = [r.getMessage() for r in caplog.records if "dropped request" in r.getMessage()]
    assert line.startswith("request log: dropped request req-00001: ") and "unique" in line.lower()
    # PostgreSQL's DETAIL quotes the key (`Key (request_id)=(req-00001)`) and SQLAlchemy the parameters
    for secret in ("john.doe", "203.0.113.7", "jane@example.com", "4111", "client-secret-id", "DETAIL",
                   "parameters"):
        assert secret not in caplog.text, secret


async def test_the_overflow_is_bounded_and_drops_are_counted(engine: AsyncEngine) -> None:
    dropped: list[int] = []
    writer = RequestLogWriter(engine, StoreConfig(queue_size=2), overflow_limit=10,
                              on_rows_dropped=dropped.append)
    for index in range(20):
        writer.submit(record(index))
    assert writer.queue_depth == 12 and writer.rows_dropped == 8 and sum(dropped) == 8
    await writer.close()
    assert await request_log.count(engine) == 12


async def test_submit_after_close_is_counted_as_dropped(engine: AsyncEngine) -> None:
    writer = RequestLogWriter(engine, StoreConfig())
    await writer.start()
    await writer.close()
    writer.submit(record(1))
    assert writer.rows_dropped == 1
    assert await request_log.count(engine) == 0


async def test_writes_to_postgres_and_sqlite_alike(database_url: str) -> None:  # noqa: F811
    await migrate(database_url)
    engine = create_engine(database_url)
    writer = RequestLogWriter(engine, StoreConfig(queue_size=8, batch_size=64, flush_interval_s=0.01))
    await writer.start()
    for index in range(200):
        writer.submit(record(index, request_body=PII_BODY, itl_s=(0.01, 0.02)))
        if index % 50 == 0:
            await asyncio.sleep(0)
    await writer.close(timeout_s=30)
    assert await request_log.count(engine) == 200
    stored = await request_log.get(engine, "req-00199")
    assert stored is not None and stored.request_body == REDACTED_BODY and stored.itl_s == (0.01, 0.02)
    await engine.dispose()


async def test_a_broken_metrics_callback_never_reaches_the_request_path(engine: AsyncEngine) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("metrics backend down")

    writer = RequestLogWriter(engine, StoreConfig(queue_size=1, flush_interval_s=0.01), on_queue_full=broken,
                              on_rows_written=broken)
    for index in range(5):
        writer.submit(record(index))  # overflows: on_queue_full raises inside, submit must not
    await writer.close()
    assert await request_log.count(engine) == 5 and writer.queue_full_events == 4
