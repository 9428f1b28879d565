"""Alembic environment: migrates the URL that `sluice.store.db.alembic_config` puts in the config."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from sluice.store.db import create_sync_engine
from sluice.store.models import Base

# Serialises replicas that start at once against one PostgreSQL database (any constant will do).
_POSTGRES_MIGRATION_LOCK = 0x51CE6A7E

target_metadata = Base.metadata


def run_migrations_offline() -> None:
    """`alembic upgrade --sql`: print the DDL instead of running it."""
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None, "alembic_config() sets sqlalchemy.url"
    engine = create_sync_engine(url)
    try:
        with engine.connect() as connection:
            postgres = connection.dialect.name == "postgresql"
            if postgres:
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _POSTGRES_MIGRATION_LOCK})
                connection.commit()
            try:
                # render_as_batch: SQLite can only ALTER a table by copying it; Alembic's batch mode does that.
                context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
                with context.begin_transaction():
                    context.run_migrations()
            finally:
                if postgres:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _POSTGRES_MIGRATION_LOCK})
                    connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
