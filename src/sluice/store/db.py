"""Connections to the store: URL dialects, async and sync engines, SQLite tuning, and migrations."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine_
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sluice.errors import ConfigError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000  # a writer waits this long for another process's write lock

_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"}
_POSTGRES_DRIVERS = {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg_async"}


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"store.url: not a database URL: {url!r}") from None
    driver = parsed.drivername
    if driver in _SQLITE_DRIVERS:
        if parsed.database in (None, "", ":memory:") or parsed.database.startswith("file::memory:"):
            raise ConfigError(
                "store.url: in-memory SQLite is not supported (the gateway, migrations and CLI each open "
                "their own connection); give a file, e.g. sqlite:///sluice.db"
            )
        return parsed
    if driver in _POSTGRES_DRIVERS:
        return parsed
    raise ConfigError(
        f"store.url: unsupported database {driver!r}; use sqlite:///path.db or postgresql://user@host/db"
    )


def is_sqlite(url: str) -> bool:
    return _parse(url).drivername in _SQLITE_DRIVERS


def sqlite_path(url: str) -> str | None:
    """The database file of a SQLite URL (relative to the working directory), else `None`."""
    parsed = _parse(url)
    return parsed.database if parsed.drivername in _SQLITE_DRIVERS else None


def async_url(url: str) -> str:
    """The URL the gateway's async engine uses: `sqlite+aiosqlite` or `postgresql+psycopg`."""
    parsed = _parse(url)
    driver = "sqlite+aiosqlite" if parsed.drivername in _SQLITE_DRIVERS else "postgresql+psycopg"
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def sync_url(url: str) -> str:
    """The URL for Alembic and other blocking code: `sqlite` (pysqlite) or `postgresql+psycopg`."""
    parsed = _parse(url)
    driver = "sqlite" if parsed.drivername in _SQLITE_DRIVERS else "postgresql+psycopg"
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def display_url(url: str) -> str:
    """The URL with its password masked, for logs and error messages."""
    return _parse(url).render_as_string(hide_password=True)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the CLI and dashboards read while the gateway writes; NORMAL is durable across app
    # crashes (WAL mode) and skips an fsync per commit.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """The async engine the gateway writes and reads with; SQLite connections come tuned (WAL).

    Its errors never quote the statement's parameters: they are rows of user data (bodies, users, IPs),
    and error messages end up in logs.
    """
    if is_sqlite(url):
        engine = create_async_engine(async_url(url), echo=echo, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
        return engine
    # pre-ping: a pooled connection that died with a database restart is replaced, not handed out
    return create_async_engine(async_url(url), echo=echo, pool_pre_ping=True, hide_parameters=True)


def create_sync_engine(url: str, *, echo: bool = False) -> Engine:
    """A blocking engine (Alembic, scripts) with the same SQLite tuning; errors hide parameters too."""
    if is_sqlite(url):
        engine = create_sync_engine_(sync_url(url), echo=echo, hide_parameters=True)
        event.listen(engine, "connect", _tune_sqlite)
        return engine
    return create_sync_engine_(sync_url(url), echo=echo, pool_pre_ping=True, hide_parameters=True)


def alembic_config(url: str) -> Config:
    """An Alembic config built in code: the migrations shipped in the package, no alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    # ConfigParser interpolates '%': a percent-encoded password must be doubled.
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return config


def migrate_sync(url: str, revision: str = "head") -> None:
    """Upgrade the store's schema to `revision` (blocking); creates a SQLite file's folder if missing."""
    path = sqlite_path(url)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


async def migrate(url: str, revision: str = "head") -> None:
    """`alembic upgrade head` in a worker thread, so an event loop stays free while it runs."""
    await asyncio.to_thread(migrate_sync, url, revision)


def head_revision() -> str:
    """The newest migration shipped in the package: what `migrate` brings a store to."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head


def current_revision(url: str) -> str | None:
    """The schema revision the store is at (`None` for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    engine = create_sync_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "async_url",
    "create_engine",
    "create_sync_engine",
    "current_revision",
    "display_url",
    "head_revision",
    "is_sqlite",
    "migrate",
    "migrate_sync",
    "sqlite_path",
    "sync_url",
]
