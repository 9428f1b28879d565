"""The store's tables as SQLAlchemy declarative models; `Base.metadata` is what Alembic migrates (the prompt
registry's tables live in prompt_tables.py and are re-exported here)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Double, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from sluice.records import CLIENT_REQUEST_ID_MAX_CHARS
from sluice.store.base import MODEL_MAX_CHARS, NAMING_CONVENTION, Base
from sluice.store.prompt_tables import PromptLabelEventRow, PromptLabelRow, PromptVersionRow

REQUEST_ID_MAX_CHARS = 255  # longer ids are cut to fit the unique index (PostgreSQL b-tree rows are bounded)


class RequestLog(Base):
    """One row per request the gateway answered: a `RequestRecord` with its bodies after `log_bodies`."""

    __tablename__ = "request_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(REQUEST_ID_MAX_CHARS))  # the gateway's own id: unique
    # the client's x-request-id: a correlation field that any caller may repeat, so never unique
    client_request_id: Mapped[str | None] = mapped_column(String(CLIENT_REQUEST_ID_MAX_CHARS))
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
    # what stages added, `<concern>.<name>` -> JSON value (docs/request-log.md); NULL when none did
    annotations: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))

    __table_args__ = (
        Index("ix_request_log_created_at", "created_at"),
        Index("ix_request_log_model_created_at", "model", "created_at"),
        Index("ux_request_log_request_id", "request_id", unique=True),
        Index("ix_request_log_key_id_created_at", "key_id", "created_at"),
        Index("ix_request_log_client_request_id", "client_request_id",  # partial: most rows have none
              sqlite_where=text("client_request_id IS NOT NULL"),
              postgresql_where=text("client_request_id IS NOT NULL")),
    )


# --- rollout/: deployments, their audit trail, canary runs and verdicts, the canary driver's lease ------------


class DeploymentRow(Base):
    """The current deployment of a public model as changed at run time (wins over the config's)."""

    __tablename__ = "deployments"

    model: Mapped[str] = mapped_column(String(MODEL_MAX_CHARS), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)  # +1 per change; updates compare-and-set on it
    spec: Mapped[str] = mapped_column(Text)  # JSON: targets, weights, strategy (rollout/spec.py)
    updated_at: Mapped[float] = mapped_column(Double)
    updated_by: Mapped[str] = mapped_column(Text)


class DeploymentEvent(Base):
    """The audit trail: one row per change of a deployment, with who, why, and the spec before and after."""

    __tablename__ = "deployment_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    model: Mapped[str] = mapped_column(String(MODEL_MAX_CHARS))
    version: Mapped[int] = mapped_column(Integer)  # the version the change produced
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Double)
    before: Mapped[str | None] = mapped_column(Text)  # JSON spec; NULL when the config's was in force
    after: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_deployment_events_model_id", "model", "id"),)


class CanaryRunRow(Base):
    """One progressive canary of a model: its settings, where it is, and how it ended."""

    __tablename__ = "canary_runs"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    model: Mapped[str] = mapped_column(String(MODEL_MAX_CHARS))
    state: Mapped[str] = mapped_column(String(16))  # running | held | promoted | rolled_back
    settings: Mapped[str] = mapped_column(Text)  # JSON: steps, interval_s, thresholds, webhooks ...
    step_index: Mapped[int] = mapped_column(Integer)
    step_started_at: Mapped[float] = mapped_column(Double)
    extensions: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[float] = mapped_column(Double)
    finished_at: Mapped[float | None] = mapped_column(Double)
    actor: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer)  # +1 per update; updates compare-and-set on it

    __table_args__ = (Index("ix_canary_runs_model_id", "model", "id"), Index("ix_canary_runs_state", "state"))


class CanaryVerdictRow(Base):
    """One analysis of a canary window: the verdict and its evidence (counts, rates, p-values, percentiles)."""

    __tablename__ = "canary_verdicts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    model: Mapped[str] = mapped_column(String(MODEL_MAX_CHARS))
    step_index: Mapped[int] = mapped_column(Integer)
    weight: Mapped[float] = mapped_column(Double)
    verdict: Mapped[str] = mapped_column(String(16))  # pass | fail | inconclusive
    action: Mapped[str] = mapped_column(String(16))  # what the controller did: advance, promote, rollback ...
    window_start: Mapped[float] = mapped_column(Double)
    window_end: Mapped[float] = mapped_column(Double)
    evidence: Mapped[str] = mapped_column(Text)  # JSON
    created_at: Mapped[float] = mapped_column(Double)

    __table_args__ = (Index("ix_canary_verdicts_run_id_id", "run_id", "id"),)


class RolloutLease(Base):
    """A named lease with expiry: the replica holding `canary-driver` drives every running canary."""

    __tablename__ = "rollout_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[float] = mapped_column(Double)


# --- shadow mode (rollout/shadow.py) ----------------------------------------------------------------------


class ShadowPairRow(Base):
    """One mirrored request: the primary's and the shadow's answers side by side (`rollout.ShadowPair`)."""

    __tablename__ = "shadow_pairs"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(REQUEST_ID_MAX_CHARS))  # joins request_log.request_id
    created_at: Mapped[float] = mapped_column(Double)
    model: Mapped[str] = mapped_column(String(MODEL_MAX_CHARS))
    endpoint: Mapped[str] = mapped_column(String(32))
    primary_target: Mapped[str | None] = mapped_column(Text)
    primary_model: Mapped[str | None] = mapped_column(Text)
    shadow_target: Mapped[str] = mapped_column(Text)
    shadow_model: Mapped[str] = mapped_column(Text)
    primary_stream: Mapped[bool] = mapped_column(Boolean)
    primary_status: Mapped[int] = mapped_column(Integer)
    shadow_status: Mapped[int] = mapped_column(Integer)
    primary_error_type: Mapped[str | None] = mapped_column(Text)
    primary_error: Mapped[str | None] = mapped_column(Text)
    shadow_error_type: Mapped[str | None] = mapped_column(Text)
    shadow_error: Mapped[str | None] = mapped_column(Text)
    primary_e2e_s: Mapped[float | None] = mapped_column(Double)
    primary_ttft_s: Mapped[float | None] = mapped_column(Double)
    shadow_e2e_s: Mapped[float | None] = mapped_column(Double)
    primary_prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    primary_completion_tokens: Mapped[int | None] = mapped_column(Integer)
    shadow_prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    shadow_completion_tokens: Mapped[int | None] = mapped_column(Integer)
    tokens_estimated: Mapped[bool] = mapped_column(Boolean)
    primary_cost_usd: Mapped[float | None] = mapped_column(Double)
    shadow_cost_usd: Mapped[float | None] = mapped_column(Double)
    exact_match: Mapped[bool | None] = mapped_column(Boolean)
    length_ratio: Mapped[float | None] = mapped_column(Double)
    similarity: Mapped[float | None] = mapped_column(Double)
    request_body: Mapped[str | None] = mapped_column(Text)
    primary_body: Mapped[str | None] = mapped_column(Text)
    shadow_body: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_shadow_pairs_model_created_at", "model", "created_at"),
        Index("ix_shadow_pairs_request_id", "request_id"),
    )


# --- virtual keys (cost/keys.py) ---------------------------------------------------------------------------


class VirtualKeyRow(Base):
    """A virtual key: who it belongs to, what it may call and spend; only its secret's SHA-256 is kept."""

    __tablename__ = "virtual_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # public id, part of the secret
    secret_hash: Mapped[str] = mapped_column(String(64))  # hex SHA-256 of the whole secret
    previous_hash: Mapped[str | None] = mapped_column(String(64))  # the secret before the last rotation
    previous_valid_until: Mapped[float | None] = mapped_column(Double)  # ... accepted until then
    name: Mapped[str] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(Text)
    team: Mapped[str | None] = mapped_column(String(255))
    models: Mapped[str | None] = mapped_column(Text)  # JSON list of glob patterns; NULL: every model
    budget_day_usd: Mapped[float | None] = mapped_column(Double)
    budget_month_usd: Mapped[float | None] = mapped_column(Double)
    budget_total_usd: Mapped[float | None] = mapped_column(Double)
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(BigInteger)
    expires_at: Mapped[float | None] = mapped_column(Double)
    metadata_json: Mapped[str | None] = mapped_column(Text)  # JSON object
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)
    last_used_at: Mapped[float | None] = mapped_column(Double)
    revoked_at: Mapped[float | None] = mapped_column(Double)

    __table_args__ = (Index("ix_virtual_keys_team", "team"),)


# --- the model registry (registry/): versions, aliases, alias moves -----------------------------------------


class RegistryVersionRow(Base):
    """One numbered version of a registered model: base model, adapter, prompt, params, serving targets."""

    __tablename__ = "registry_versions"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    model: Mapped[str] = mapped_column(String(MODEL_MAX_CHARS))
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, 3 ... per model; the unique index settles races
    base_model: Mapped[str] = mapped_column(Text)
    base_revision: Mapped[str | None] = mapped_column(Text)
    adapter_uri: Mapped[str | None] = mapped_column(Text)  # NULL: no LoRA adapter (and the adapter_* are NULL)
    adapter_sha256: Mapped[str | None] = mapped_column(String(64))
    adapter_rank: Mapped[int | None] = mapped_column(Integer)
    adapter_alpha: Mapped[float | None] = mapped_column(Double)
    adapter_base_model: Mapped[str | None] = mapped_column(Text)
    prompt: Mapped[str | None] = mapped_column(Text)  # a prompt reference, `support-prompt@3`
    params: Mapped[dict[str, Any]] = mapped_column(JSON)  # generation params
    targets: Mapped[list[dict[str, str]]] = mapped_column(JSON)  # [{backend, model}]
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON)  # dataset_sha256, parent_version ...
    metadata_json: Mapped[dict[str, Any]] = mapped_column(JSON)  # free metadata (`metadata` is SQLAlchemy's)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Double)
    created_by: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ux_registry_versions_model_version", "model", "version", unique=True),)


class RegistryAliasRow(Base):
    """Where an alias of a model (`production`, `staging` ...) points now."""

    __tablename__ = "registry_aliases"

    model: Mapped[str] = mapped_column(String(MODEL_MAX_CHARS), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[float] = mapped_column(Double)


class RegistryAliasEventRow(Base):
    """The audit trail of aliases: one row per move, from a version (NULL: new) to a version (NULL: deleted)."""

    __tablename__ = "registry_alias_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    model: Mapped[str] = mapped_column(String(MODEL_MAX_CHARS))
    alias: Mapped[str] = mapped_column(String(64))
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[float] = mapped_column(Double)
    actor: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_registry_alias_events_model_at", "model", "at"),)


class EvalRunRow(Base):
    """An eval run of a registry version: its suite (and hash), summary, gate verdict and compact case results."""

    __tablename__ = "eval_runs"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    model: Mapped[str] = mapped_column(String(MODEL_MAX_CHARS))  # the registered model
    version: Mapped[int] = mapped_column(Integer)  # its version, resolved when the run was recorded
    suite: Mapped[str] = mapped_column(Text)
    suite_hash: Mapped[str] = mapped_column(String(64))  # a baseline is only ever a run of the same hash
    target: Mapped[str] = mapped_column(Text)  # what was called: `chat (candidate side)`, a raw URL ...
    repeats: Mapped[int] = mapped_column(Integer)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)  # pass rates, errors, latency, cost
    gate_status: Mapped[str | None] = mapped_column(String(16))  # pass | fail | inconclusive; NULL: no gate
    gate: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the gate's report: checks, flips
    cases: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # case results, answers cut short
    created_at: Mapped[float] = mapped_column(Double)
    created_by: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_eval_runs_model_version_created_at", "model", "version", "created_at"),)


__all__ = [
    "MODEL_MAX_CHARS",
    "NAMING_CONVENTION",
    "REQUEST_ID_MAX_CHARS",
    "Base",
    "CanaryRunRow",
    "CanaryVerdictRow",
    "DeploymentEvent",
    "DeploymentRow",
    "EvalRunRow",
    "PromptLabelEventRow",
    "PromptLabelRow",
    "PromptVersionRow",
    "RegistryAliasEventRow",
    "RegistryAliasRow",
    "RegistryVersionRow",
    "RequestLog",
    "RolloutLease",
    "ShadowPairRow",
    "VirtualKeyRow",
]
