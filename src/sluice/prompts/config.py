"""A prompt version's config: the generation parameters that version together with its template and are applied
to the request that uses it (the request's own values win where the stage says so)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sluice.prompts.versions import PromptError, validation_detail


class _ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _named_schema(self) -> _ResponseFormat:
        schema = self.json_schema
        if self.type != "json_schema":
            if schema is not None:
                raise ValueError(f"json_schema goes with type json_schema, not {self.type}")
        elif schema is None or not (isinstance(schema.get("name"), str) and isinstance(schema.get("schema"), dict)):
            raise ValueError("type json_schema needs json_schema: {name, schema} (as OpenAI's response_format)")
        return self


class PromptConfig(BaseModel):
    """The keys a config may hold, with the ranges the OpenAI API accepts."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, min_length=1, max_length=512)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    response_format: _ResponseFormat | None = None

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and not 1 <= len(value) <= 4:
            raise ValueError("give 1 to 4 stop sequences")
        return value


CONFIG_KEYS = tuple(PromptConfig.model_fields)


def check_config(config: object) -> dict[str, Any]:
    """The config, checked as given (nothing added or dropped), or PromptError naming the key at fault."""
    if not isinstance(config, dict):
        raise PromptError(f"config: a mapping of settings, not {type(config).__name__} "
                          f"(keys: {', '.join(CONFIG_KEYS)})", param="config", code="invalid_config")
    unset = [key for key, value in config.items() if value is None]
    if unset:
        raise PromptError(f"config.{unset[0]}: null; leave the key out instead", param=f"config.{unset[0]}",
                          code="invalid_config")
    unknown = [key for key in config if key not in CONFIG_KEYS]
    if unknown:
        raise PromptError(f"config: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                          f"a config may set {', '.join(CONFIG_KEYS)}", param=f"config.{unknown[0]}",
                          code="unknown_config_key")
    try:
        PromptConfig.model_validate(config)
    except ValidationError as exc:
        path, message = validation_detail(exc)
        raise PromptError(f"config.{path}: {message}", param=f"config.{path}", code="invalid_config") from None
    return config


__all__ = ["CONFIG_KEYS", "PromptConfig", "check_config"]
