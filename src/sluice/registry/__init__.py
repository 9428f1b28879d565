"""The model registry: numbered versions of each model (base model, LoRA adapter, prompt, params, serving
targets, lineage), aliases such as `production` that point at one, and the audit trail of their moves.

The repository over the store (`register`, `get_version` ...) imports SQLAlchemy, so its names load on first
use: reading a `model@ref` or diffing two versions needs no database client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluice.lazy import on_first_use
from sluice.registry.adapters import file_sha256, inspect_adapter
from sluice.registry.versions import (
    Adapter,
    AliasEvent,
    ModelVersion,
    RegistryError,
    RegistryNotFound,
    VersionSpec,
    diff,
    parse_ref,
)

if TYPE_CHECKING:
    from sluice.registry.eval_runs import (
        PROTECTED_ALIASES,
        EvalRun,
        baseline_run,
        get_eval_run,
        last_gate,
        list_eval_runs,
        record_eval_run,
    )
    from sluice.registry.store import (
        alias_history,
        delete_alias,
        get_version,
        list_models,
        list_versions,
        register,
        set_alias,
    )
    from sluice.registry.timeline import Timeline, timeline_at

_ON_FIRST_USE = {  # name -> module: these import SQLAlchemy
    **dict.fromkeys(["PROTECTED_ALIASES", "EvalRun", "baseline_run", "get_eval_run", "last_gate", "list_eval_runs",
                     "record_eval_run"], "sluice.registry.eval_runs"),
    "alias_history": "sluice.registry.store",
    "delete_alias": "sluice.registry.store",
    "get_version": "sluice.registry.store",
    "list_models": "sluice.registry.store",
    "list_versions": "sluice.registry.store",
    "register": "sluice.registry.store",
    "set_alias": "sluice.registry.store",
    "Timeline": "sluice.registry.timeline",
    "timeline_at": "sluice.registry.timeline",
}

__getattr__ = on_first_use(__name__, _ON_FIRST_USE)


__all__ = [
    "PROTECTED_ALIASES",
    "Adapter",
    "AliasEvent",
    "EvalRun",
    "ModelVersion",
    "RegistryError",
    "RegistryNotFound",
    "Timeline",
    "VersionSpec",
    "alias_history",
    "baseline_run",
    "delete_alias",
    "diff",
    "file_sha256",
    "get_eval_run",
    "get_version",
    "inspect_adapter",
    "last_gate",
    "list_eval_runs",
    "list_models",
    "list_versions",
    "parse_ref",
    "record_eval_run",
    "register",
    "set_alias",
    "timeline_at",
]
