"""The `structured` section: what the gateway does with an answer to a `response_format` (docs/structured-output.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sluice.config._base import _Strict

# What a backend enforces itself: `json_schema` (schemas and JSON mode), `json_object` (JSON mode only), `none`
# (the gateway takes response_format off and puts the schema in the prompt), `auto` (OpenAI-compatible: detected).
StructuredSupport = Literal["auto", "json_schema", "json_object", "none"]


class StructuredConfig(_Strict):
    """Defaults for every model; a model's `structured` section overrides the keys it sets."""

    enforce: bool = True  # validate each answer against its format (then repair, re-ask); off: pass answers as sent
    repair: bool = True  # fix near-JSON (code fences, prose around it, trailing commas, cut-off objects) first
    max_attempts: int = Field(3, ge=1, le=10)  # answers asked for in all: the first, then re-asks with the errors
    retry_token_budget: int = Field(4096, ge=0)  # completion tokens the re-asks may spend together
    on_failure: Literal["error", "return"] = "error"  # past the attempts: a 502, or the last answer with its verdict


def merge_structured_config(base: StructuredConfig, override: StructuredConfig | None) -> StructuredConfig:
    """`base` with the keys `override` sets, as a model's `structured` section reads."""
    if override is None:
        return base
    return base.model_copy(update={name: getattr(override, name) for name in override.model_fields_set})


__all__ = ["StructuredConfig", "StructuredSupport", "merge_structured_config"]
