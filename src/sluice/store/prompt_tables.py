"""The prompt registry's tables (prompts/): immutable numbered versions, labels that point at one, label moves."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Double, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from sluice.store.base import MODEL_MAX_CHARS, Base


class PromptVersionRow(Base):
    """One version of a prompt: its template (text) or messages (chat), declared variables and config."""

    __tablename__ = "prompt_versions"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    name: Mapped[str] = mapped_column(String(MODEL_MAX_CHARS))
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, 3 ... per prompt; the unique index settles races
    semver: Mapped[str | None] = mapped_column(String(64))  # optional, unique per prompt (NULLs never collide)
    kind: Mapped[str] = mapped_column(String(8))  # text | chat
    template: Mapped[str | None] = mapped_column(Text)  # kind text
    messages: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)  # kind chat: [{role, content}]
    variables: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # [{name, description?, default?}]
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # model, temperature, max_tokens, response_format ...
    content_hash: Mapped[str] = mapped_column(String(64))  # sha256 of kind, template/messages, variables, config
    message: Mapped[str | None] = mapped_column(Text)  # the commit message
    author: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Double)

    __table_args__ = (Index("ux_prompt_versions_name_version", "name", "version", unique=True),
                      Index("ux_prompt_versions_name_semver", "name", "semver", unique=True))


class PromptLabelRow(Base):
    """Where a label of a prompt (`production`, `staging` ...) points now; `latest` is never stored."""

    __tablename__ = "prompt_labels"

    name: Mapped[str] = mapped_column(String(MODEL_MAX_CHARS), primary_key=True)
    label: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[float] = mapped_column(Double)


class PromptLabelEventRow(Base):
    """The audit trail of labels: one row per move (`move`, `delete`, `rollback`), from a version (NULL: the label
    was new) to a version (NULL: deleted)."""

    __tablename__ = "prompt_label_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    name: Mapped[str] = mapped_column(String(MODEL_MAX_CHARS))
    label: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[float] = mapped_column(Double)
    actor: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_prompt_label_events_name_label_id", "name", "label", "id"),)


__all__ = ["PromptLabelEventRow", "PromptLabelRow", "PromptVersionRow"]
