"""The request-log repository against a SQLite file and a real PostgreSQL."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.records import RequestRecord
from sluice.store import create_engine, current_revision, head_revision, migrate, request_log
from tests.support.postgres import database_url, postgres_server, postgres_url  # noqa: F401


def make_record(request_id: str, created_at: float = 1_750_000_000.0, **overrides: object) -> RequestRecord:
    values: dict[str, object] = dict(
        request_id=request_id, created_at=created_at, endpoint="chat", model="chat-model", target="vllm-a",
        backend_type="openai", upstream_model="meta-llama/Llama-3.1-8B-Instruct", stream=True,
        status_code=200,
    )
    values.update(overrides)
    return RequestRecord(**values)  # type: ignore[arg-type]


def full_record(request_id: str = "req-full") -> RequestRecord:
    return make_record(
        request_id, created_at=1_750_000_123.456789, stream=True, status_code=502, error_class="5xx",
        error_type="UpstreamError", error_message="upstream closed the stream", prompt_tokens=1234,
        completion_tokens=567, cached_tokens=1024, reasoning_tokens=89, tokens_estimated=True,
        finish_reason="length", ttft_s=0.123456789, tpot_s=0.0123456, itl_s=(0.0100004, 0.0200006, 0.0307),
        e2e_s=7.25, queue_s=0.5, upstream_s=6.5, overhead_s=0.25, user="user-42", client_ip="203.0.113.9",
        client_request_id="client-trace-1",
        request_body='{"model":"chat-model","messages":[{"role":"user","content":"héllo 👋\\nworld"}]}',
        response_body="Bonjour — 你好 👋\n" + "x" * 100_000,
    )


async def test_migrate_creates_the_table_and_is_idempotent(database_url: str) -> None:  # noqa: F811
    await migrate(database_url)
    await migrate(database_url)
    assert current_revision(database_url) == head_revision()
    engine = create_engine(database_url)
    try:
        assert await request_log.count(engine) == 0
    finally:
        await engine.dispose()


async def test_every_field_round_trips(engine: AsyncEngine) -> None:
    record = full_record()
    minimal = make_record("req-minimal", stream=False)
    assert await request_log.insert_many(engine, [record, minimal]) == 2

    stored = await request_log.get(engine, "req-full")
    assert stored == dataclasses.replace(record, itl_s=(0.01, 0.020001, 0.0307))  # µs precision
    assert stored is not None and stored.stream is True and stored.tokens_estimated is True
    assert await request_log.get(engine, "req-minimal") == minimal
    assert await request_log.get(engine, "missing") is None


async def test_floats_keep_their_precision(engine: AsyncEngine) -> None:
    record = make_record("req-float", created_at=1_761_234_567.123456, ttft_s=1e-6, tpot_s=0.1 + 0.2,
                         e2e_s=123456.789012, overhead_s=3.5e-5)
    await request_log.insert_many(engine, [record])
    assert await request_log.get(engine, "req-float") == record


async def test_a_batch_is_one_transaction(engine: AsyncEngine) -> None:
    commits: list[int] = []
    event.listen(engine.sync_engine, "commit", lambda connection: commits.append(1))
    await request_log.insert_many(engine, [make_record(f"req-{i}") for i in range(300)])
    assert len(commits) == 1
    assert await request_log.count(engine) == 300


async def test_a_duplicate_request_id_rejects_the_whole_batch(engine: AsyncEngine) -> None:
    await request_log.insert_many(engine, [make_record("req-1")])
    with pytest.raises(IntegrityError):
        await request_log.insert_many(engine, [make_record("req-2"), make_record("req-1")])
    assert await request_log.count(engine) == 1
    assert await request_log.get(engine, "req-2") is None


async def test_a_client_request_id_may_repeat_across_requests_and_batches(engine: AsyncEngine) -> None:
    await request_log.insert_many(engine, [make_record("gw-1", client_request_id="dup")])
    await request_log.insert_many(engine, [make_record("gw-2", client_request_id="dup"),
                                           make_record("gw-3", client_request_id="dup")])
    assert await request_log.count(engine) == 3


async def test_find_looks_a_request_up_by_its_gateway_id_or_its_client_id(engine: AsyncEngine) -> None:
    await request_log.insert_many(engine, [
        make_record("gw-1", created_at=1000.0, client_request_id="dup"),
        make_record("gw-2", created_at=1002.0, client_request_id="dup"),
        make_record("gw-3", created_at=1001.0),
        make_record("gw-4", created_at=1003.0, client_request_id="gw-3"),  # a client sent another's gateway id
        make_record("gw-5", created_at=1004.0, client_request_id="gw-5"),  # ... or its own, by chance
    ])

    async def found(any_id: str) -> list[str]:
        return [record.request_id for record in await request_log.find(engine, any_id)]

    assert await found("dup") == ["gw-2", "gw-1"]  # newest first
    assert await found("gw-3") == ["gw-3", "gw-4"]  # the gateway id's own row first
    assert await found("gw-5") == ["gw-5"]  # one row, listed once
    assert await found("gw-1") == ["gw-1"]
    assert await found("missing") == []
    assert await found("x" * 300) == []


async def test_recent_is_newest_first_and_filters_by_model_and_time(engine: AsyncEngine) -> None:
    records = [make_record(f"req-{i}", created_at=1000.0 + i, model="a" if i % 2 else "b") for i in range(10)]
    await request_log.insert_many(engine, list(reversed(records)))  # insertion order must not matter

    assert [r.request_id for r in await request_log.recent(engine, 3)] == ["req-9", "req-8", "req-7"]
    assert [r.request_id for r in await request_log.recent(engine, 2, model="b")] == ["req-8", "req-6"]
    since = await request_log.recent(engine, 100, since=1007.0)
    assert [r.request_id for r in since] == ["req-9", "req-8", "req-7"]
    assert await request_log.count(engine, model="a") == 5
    assert await request_log.count(engine, since=1005.0) == 5


async def test_rows_after_pages_through_new_rows_in_write_order(engine: AsyncEngine) -> None:
    assert await request_log.newest_row_id(engine) == 0
    await request_log.insert_many(engine, [make_record("req-a"), make_record("req-b", model="other")])
    cursor = await request_log.newest_row_id(engine)
    await request_log.insert_many(engine, [make_record("req-c"), make_record("req-d", model="other")])

    rows = await request_log.rows_after(engine, cursor)
    assert [record.request_id for _, record in rows] == ["req-c", "req-d"]
    assert rows[0][0] > cursor and rows[1][0] > rows[0][0]
    assert [r.request_id for _, r in await request_log.rows_after(engine, cursor, model="other")] == ["req-d"]
    assert await request_log.rows_after(engine, rows[-1][0]) == []


async def test_text_the_database_would_refuse_is_made_storable(engine: AsyncEngine) -> None:
    record = make_record("req-odd", request_body="nul\x00byte", response_body="lone \ud800 surrogate",
                         user="x\x00y")
    await request_log.insert_many(engine, [record])
    stored = await request_log.get(engine, "req-odd")
    assert stored is not None
    assert stored.request_body == "nul\ufffdbyte"
    assert stored.response_body == "lone ? surrogate"
    assert stored.user == "x\ufffdy"


async def test_overlong_request_ids_and_models_are_cut_to_the_column(engine: AsyncEngine) -> None:
    await request_log.insert_many(engine, [make_record("r" * 400, model="m" * 400)])
    stored = await request_log.get(engine, "r" * 400)  # the lookup cuts the same way
    assert stored is not None
    assert stored.request_id == "r" * 255 and stored.model == "m" * 255


async def test_empty_itl_is_stored_as_null(engine: AsyncEngine) -> None:
    await request_log.insert_many(engine, [make_record("req-no-itl", itl_s=())])
    async with engine.connect() as connection:
        value = (await connection.execute(text("SELECT itl_s FROM request_log"))).scalar_one()
    assert value is None
    assert request_log.encode_itl([0.1234564, 0.5]) == "[0.123456,0.5]"
    assert request_log.decode_itl("[0.123456,0.5]") == (0.123456, 0.5)


async def insert_row_as_an_older_version_would(engine: AsyncEngine, request_id: str) -> None:
    """A row with only the columns every schema version has, written with plain SQL."""
    async with engine.begin() as connection:
        await connection.execute(text(
            "INSERT INTO request_log (request_id, created_at, endpoint, model, stream, status_code,"
            " tokens_estimated, queue_s, upstream_s, overhead_s)"
            " VALUES (:request_id, 1.0, 'chat', 'm', false, 200, false, 0, 0, 0)"), {"request_id": request_id})


async def test_the_client_request_id_migration_keeps_older_rows_and_reverts(database_url: str) -> None:  # noqa: F811
    from alembic import command

    from sluice.store.db import alembic_config

    await migrate(database_url, "0005_shadow_pairs")
    engine = create_engine(database_url)
    try:
        await insert_row_as_an_older_version_would(engine, "old-client-id")
        await migrate(database_url)
        old = await request_log.get(engine, "old-client-id")
        assert old is not None and old.client_request_id is None
        await request_log.insert_many(engine, [make_record("gw-new", client_request_id="old-client-id")])
        assert [r.request_id for r in await request_log.find(engine, "old-client-id")] == ["old-client-id", "gw-new"]
    finally:
        await engine.dispose()
    command.downgrade(alembic_config(database_url), "0005_shadow_pairs")
    assert current_revision(database_url) == "0005_shadow_pairs"


async def test_annotations_round_trip_and_none_is_stored_as_null(engine: AsyncEngine) -> None:
    annotations = {"router.choice": "hard", "router.model": "strong", "router.score": 0.8125,
                   "guard.verdicts": [{"layer": "pii", "action": "redact", "hits": 2}], "cache.semantic": None,
                   "prompt.version": "1.2.0 — ünïcode 👋"}
    await request_log.insert_many(engine, [make_record("req-annotated", annotations=annotations),
                                           make_record("req-plain")])
    annotated, plain = await request_log.get(engine, "req-annotated"), await request_log.get(engine, "req-plain")
    assert annotated is not None and annotated.annotations == annotations
    assert plain is not None and plain.annotations == {}
    assert [r.annotations for r in await request_log.recent(engine)] == [{}, annotations]  # newest first
    async with engine.connect() as connection:
        stored = (await connection.execute(text(
            "SELECT annotations FROM request_log WHERE request_id = 'req-plain'"))).scalar_one()
    assert stored is None  # SQL NULL, not the JSON text 'null' or '{}'


async def test_the_annotations_migration_keeps_older_rows_and_reverts(database_url: str) -> None:  # noqa: F811
    from alembic import command

    from sluice.store.db import alembic_config

    await migrate(database_url, "0006_client_request_id")
    engine = create_engine(database_url)
    try:
        await insert_row_as_an_older_version_would(engine, "before-0007")
        await migrate(database_url, "0007_request_log_annotations")  # not head: later migrations follow
        assert current_revision(database_url) == "0007_request_log_annotations"
        old = await request_log.get(engine, "before-0007")
        assert old is not None and old.annotations == {}
        await request_log.insert_many(engine, [make_record("after-0007", annotations={"router.choice": "easy"})])
    finally:
        await engine.dispose()
    command.downgrade(alembic_config(database_url), "0006_client_request_id")
    assert current_revision(database_url) == "0006_client_request_id"
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            ids = (await connection.execute(text("SELECT request_id FROM request_log ORDER BY id"))).scalars().all()
    finally:
        await engine.dispose()
    assert ids == ["before-0007", "after-0007"]  # the column goes, the rows stay
