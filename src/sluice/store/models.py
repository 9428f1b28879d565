"""The store's tables as SQLAlchemy declarative models; `Base.metadata` is what Alembic migrates."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Double, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so later migrations can drop or alter them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

REQUEST_ID_MAX_CHARS = 255  # longer ids are cut to fit the unique index (PostgreSQL b-tree rows are bounded)
MODEL_MAX_CHARS = 255


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RequestLog(Base):
    """One row per request the gateway answered: a `RequestRecord` with its bodies after `log_bodies`."""

    __tablename__ = "request_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(REQUEST_ID_MAX_CHARS))
    created_at: Mapped[float] = mapped_column(Double)  # unix seconds when the gateway received it
    endpoint: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(MODEL_MAX_CHARS))
    target: Mapped[str | None] = mapped_column(Text)
    backend_type: Mapped[str | None] = mapped_column(Text)
    upstream_model: Mapped[str | None] = mapped_column(Text)
    stream: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int] = mapped_column(Integer)
    error_class: Mapped[str | None] = mapped_column(Text)
    error_type: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    cached_tokens: Mapped[int | None] = mapped_column(Integer)
    reasoning_tokens: Mapped[int | None] = mapped_column(Integer)
    tokens_estimated: Mapped[bool] = mapped_column(Boolean)
    finish_reason: Mapped[str | None] = mapped_column(Text)
    ttft_s: Mapped[float | None] = mapped_column(Double)
    tpot_s: Mapped[float | None] = mapped_column(Double)
    itl_s: Mapped[str | None] = mapped_column(Text)  # JSON list of seconds, µs precision; NULL when empty
    e2e_s: Mapped[float | None] = mapped_column(Double)
    queue_s: Mapped[float] = mapped_column(Double)
    upstream_s: Mapped[float] = mapped_column(Double)
    overhead_s: Mapped[float] = mapped_column(Double)
    user: Mapped[str | None] = mapped_column(Text)
    client_ip: Mapped[str | None] = mapped_column(Text)
    request_body: Mapped[str | None] = mapped_column(Text)
    response_body: Mapped[str | None] = mapped_column(Text)
    key_id: Mapped[str | None] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(Text)
    cost_usd: Mapped[float | None] = mapped_column(Double)
    cache_hit: Mapped[str | None] = mapped_column(String(16))
    route_role: Mapped[str | None] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")

    __table_args__ = (
        Index("ix_request_log_created_at", "created_at"),
        Index("ix_request_log_model_created_at", "model", "created_at"),
        Index("ux_request_log_request_id", "request_id", unique=True),
        Index("ix_request_log_key_id_created_at", "key_id", "created_at"),
    )


__all__ = ["MODEL_MAX_CHARS", "NAMING_CONVENTION", "REQUEST_ID_MAX_CHARS", "Base", "RequestLog"]
