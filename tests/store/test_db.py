"""Store URLs, engines and migrations: the dialect mapping, SQLite tuning, and Alembic without an ini."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from sluice.errors import ConfigError
from sluice.store import (
    async_url,
    create_engine,
    current_revision,
    display_url,
    head_revision,
    migrate_sync,
    sync_url,
)
from sluice.store.db import MIGRATIONS_DIR, alembic_config, create_sync_engine, sqlite_path
from sluice.store.models import Base
from tests.support.postgres import database_url, postgres_server, postgres_url  # noqa: F401


@pytest.mark.parametrize(
    ("url", "expected_async", "expected_sync"),
    [
        ("sqlite:///sluice.db", "sqlite+aiosqlite:///sluice.db", "sqlite:///sluice.db"),
        ("sqlite:////abs/path.db", "sqlite+aiosqlite:////abs/path.db", "sqlite:////abs/path.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db", "sqlite:///x.db"),
        ("postgresql://u:pw@db:5432/sluice", "postgresql+psycopg://u:pw@db:5432/sluice",
         "postgresql+psycopg://u:pw@db:5432/sluice"),
        ("postgresql+psycopg://u@db/sluice", "postgresql+psycopg://u@db/sluice",
         "postgresql+psycopg://u@db/sluice"),
        ("postgres://u@db/sluice?sslmode=require", "postgresql+psycopg://u@db/sluice?sslmode=require",
         "postgresql+psycopg://u@db/sluice?sslmode=require"),
    ],
)
def test_user_urls_map_to_the_async_and_sync_drivers(url: str, expected_async: str, expected_sync: str) -> None:
    assert async_url(url) == expected_async
    assert sync_url(url) == expected_sync


def test_a_percent_encoded_password_survives_and_is_masked_for_display() -> None:
    url = "postgresql://sluice:p%40ss%25word@db/sluice"
    assert async_url(url) == "postgresql+psycopg://sluice:p%40ss%25word@db/sluice"
    assert "p%40ss" not in display_url(url) and "***" in display_url(url)
    assert alembic_config(url).get_main_option("sqlalchemy.url") == sync_url(url)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "mysql://u@h/db", "not a url"])
def test_unsupported_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match=r"store\.url"):
        async_url(url)


def test_sqlite_path_is_the_file_and_none_for_postgres() -> None:
    assert sqlite_path("sqlite:////var/lib/sluice.db") == "/var/lib/sluice.db"
    assert sqlite_path("sqlite:///sluice.db") == "sluice.db"
    assert sqlite_path("postgresql://u@h/db") is None


def test_migrations_ship_inside_the_package() -> None:
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert any(MIGRATIONS_DIR.glob("versions/0001_*.py"))


def test_migrate_sync_creates_the_folder_and_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'sluice.db'}"
    assert current_revision(f"sqlite:///{tmp_path / 'empty.db'}") is None
    migrate_sync(url)
    assert current_revision(url) == head_revision()


def test_the_migrations_build_exactly_the_models(database_url: str) -> None:  # noqa: F811
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    migrate_sync(database_url)
    engine = create_sync_engine(database_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


async def test_sqlite_connections_use_wal_normal_sync_and_a_busy_timeout(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'tuned.db'}")
    try:
        async with engine.connect() as connection:
            journal = (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
            synchronous = (await connection.execute(text("PRAGMA synchronous"))).scalar_one()
            busy_timeout = (await connection.execute(text("PRAGMA busy_timeout"))).scalar_one()
    finally:
        await engine.dispose()
    assert (journal, synchronous, busy_timeout) == ("wal", 1, 5000)  # synchronous 1 = NORMAL
