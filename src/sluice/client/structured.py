"""Typed answers over the official `openai` SDK: a pydantic model in, an instance out, with every call's usage.

The gateway holds the answer to the model's JSON schema (validate, repair, re-ask, each attempt billed); what a
schema cannot say — a `field_validator`, a cross-field check — is checked here with pydantic, and re-asked here
with pydantic's errors as Instructor does. `openai` is the caller's client: it is never imported at run time.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:
    from openai import AsyncOpenAI, OpenAI
    from openai._legacy_response import LegacyAPIResponse
    from openai.types.chat import ChatCompletion

T = TypeVar("T", bound=BaseModel)

ATTEMPTS_HEADER = "x-sluice-structured-attempts"  # the gateway's answer attempts, on a 502 as on a 200
COST_HEADER = "x-sluice-cost-usd"  # a whole answer's price, when the gateway prices the model
VERDICT_FIELD = "structured_output"  # the gateway's verdict on the chat.completion
GAVE_UP_CODE = "invalid_structured_output"  # the gateway's 502 past its attempts
_REASK = "Your answer did not pass validation:\n{errors}\nReply with only the corrected JSON."
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMAS = ("items", "additionalProperties", "not", "if", "then", "else", "contains")


@dataclass(slots=True, frozen=True)
class Usage:
    """Tokens summed over calls; `cost_usd` when the gateway prices them (None: no call was priced)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float | None = None

    def plus(self, usage: Any, cost_usd: float | None) -> Usage:
        """This plus a completion's `usage` (the SDK's object, or None when the answer had none) and price."""
        return Usage(self.prompt_tokens + (getattr(usage, "prompt_tokens", 0) or 0),
                     self.completion_tokens + (getattr(usage, "completion_tokens", 0) or 0),
                     self.total_tokens + (getattr(usage, "total_tokens", 0) or 0),
                     self.cost_usd if cost_usd is None else (self.cost_usd or 0.0) + cost_usd)


@dataclass(slots=True, frozen=True)
class Structured(Generic[T]):
    """A validated instance and what it took."""

    value: T
    usage: Usage  # every call's tokens (the gateway's usage already sums its own attempts)
    attempts: int  # answers the model gave in all: the gateway's attempts summed over the calls
    calls: int  # chat.completions.create calls made here (1 + client-side re-asks)
    modes: tuple[str | None, ...]  # each call's `structured_output.mode` (None: the server gave no verdict)
    completions: tuple[ChatCompletion, ...]  # the SDK's answers, oldest first


class StructuredOutputError(Exception):
    """No valid instance: the gateway gave up (502 `invalid_structured_output`) or the client-side re-asks ran
    out. Carries what was spent; `usage` counts the answered calls (a 502 carries no usage)."""

    def __init__(self, message: str, *, attempts: int, calls: int, usage: Usage, errors: tuple[str, ...],
                 completions: tuple[ChatCompletion, ...]) -> None:
        super().__init__(message)
        self.attempts, self.calls, self.usage, self.errors = attempts, calls, usage, errors
        self.completions = completions


def response_format_for(response_model: type[BaseModel], *, strict: bool | None = None) -> dict[str, Any]:
    """The `json_schema` response_format for a pydantic model. Strict (OpenAI's rules) when the schema can be
    made strict without changing what validates: every object closed and every property required, an optional
    field (`x: T | None = None`) becoming a required nullable one. A field with another default, a field with a
    default factory or an open dict (`dict[str, X]`, `extra="allow"`) keeps it loose. `strict=True` makes every
    property required anyway (the model must give each value); open dicts then get the gateway's 400."""
    schema = response_model.model_json_schema()
    strict_schema = copy.deepcopy(schema)
    obstacles: list[str] = []
    if strict_schema.get("type") != "object" and "$ref" not in strict_schema:
        obstacles.append("$: strict mode needs an object at the root")  # a RootModel of a list, say
    _make_strict(strict_schema, "$", obstacles, force=bool(strict))
    if strict is None:
        strict = not obstacles
    name = re.sub(r"[^A-Za-z0-9_-]", "_", response_model.__name__)[:64]
    return {"type": "json_schema",
            "json_schema": {"name": name, "schema": strict_schema if strict else schema, "strict": strict}}


def _make_strict(node: Any, path: str, obstacles: list[str], *, force: bool) -> None:
    if not isinstance(node, dict):
        return
    properties = node.get("properties")
    if node.get("type") == "object" or isinstance(properties, dict):
        extra = node.setdefault("additionalProperties", False)  # pydantic's default `extra="ignore"` drops extras
        if extra is not False:
            obstacles.append(f"{path}.additionalProperties: an open object")
        required = node.setdefault("required", [])
        for name, prop in (properties or {}).items():
            if name in required:
                continue
            if not (_nullable(prop) and prop.get("default") is None):
                obstacles.append(f"{path}.properties.{name}: not required and not `T | None = None`")
                if not force:
                    continue
            if isinstance(prop, dict) and "default" in prop and prop["default"] is None:
                del prop["default"]  # strict mode asks for the null; the default no longer applies
            required.append(name)
    for key in _SUBSCHEMA_MAPS:
        for name, child in (node.get(key) or {}).items():
            _make_strict(child, f"{path}.{key}.{name}", obstacles, force=force)
    for key in _SUBSCHEMA_LISTS:
        for index, child in enumerate(node.get(key) or []):
            _make_strict(child, f"{path}.{key}[{index}]", obstacles, force=force)
    for key in _SUBSCHEMAS:
        if isinstance(node.get(key), dict):
            _make_strict(node[key], f"{path}.{key}", obstacles, force=force)


def _nullable(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    kinds = schema.get("type")
    return kinds == "null" or (isinstance(kinds, list) and "null" in kinds) or any(
        _nullable(option) for option in schema.get("anyOf") or schema.get("oneOf") or [])


class _Exchange(Generic[T]):
    """One structured() call's state between its create calls: the messages, the answers, what they cost."""

    def __init__(self, model: str, messages: Iterable[Mapping[str, Any]], response_model: type[T],
                 max_retries: int, strict: bool | None, create_kwargs: dict[str, Any]) -> None:
        for name in ("response_format", "stream"):
            if create_kwargs.get(name):
                raise ValueError(f"structured() sets `{name}` itself (one whole answer to the model's schema)")
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, not {max_retries}")
        self.response_model = response_model
        self.calls_allowed = 1 + max_retries
        self.messages = [dict(message) for message in messages]
        self.static = {"model": model, "response_format": response_format_for(response_model, strict=strict),
                       **create_kwargs}
        self.usage = Usage()
        self.attempts = 0
        self.modes: list[str | None] = []
        self.completions: list[ChatCompletion] = []
        self.errors: tuple[str, ...] = ()

    def request(self) -> dict[str, Any]:
        return {**self.static, "messages": list(self.messages)}

    def take(self, raw: LegacyAPIResponse[ChatCompletion]) -> T | None:
        """The instance in the answer, or None after adding the re-ask to the messages."""
        completion = raw.parse()
        verdict = getattr(completion, VERDICT_FIELD, None)  # the SDK keeps unknown fields as sent: a dict
        verdict = verdict if isinstance(verdict, dict) else {}
        self.completions.append(completion)
        cost = raw.headers.get(COST_HEADER) or getattr(completion.usage, "cost_usd", None)  # whole; streamed
        self.usage = self.usage.plus(completion.usage, None if cost is None else float(cost))
        self.attempts += int(verdict.get("attempts") or 1)
        self.modes.append(verdict.get("mode"))
        message = completion.choices[0].message
        if message.content is None:  # a refusal or a tool call: nothing to validate, nothing to re-ask
            refusal = getattr(message, "refusal", None)
            raise self.error("the model gave no JSON answer", (refusal or "no content",))
        try:
            return self.response_model.model_validate_json(message.content)
        except ValidationError as invalid:
            self.errors = tuple(_error_line(error) for error in invalid.errors(include_url=False))
        self.messages += [{"role": "assistant", "content": message.content},
                          {"role": "user", "content": _REASK.format(errors="\n".join(f"- {e}" for e in self.errors))}]
        return None

    def gave_up(self, error: Exception) -> StructuredOutputError | None:
        """The gateway's 502 past its attempts as a StructuredOutputError; None for any other error."""
        if getattr(error, "status_code", None) != 502 or getattr(error, "code", None) != GAVE_UP_CODE:
            return None
        response = getattr(error, "response", None)
        answered = response.headers.get(ATTEMPTS_HEADER, "") if response is not None else ""
        self.attempts += int(answered) if answered.isdigit() else 1
        body = getattr(error, "body", None)  # the SDK's `error` object: {"message", "type", "param", "code"}
        self.errors = (str(body.get("message") if isinstance(body, dict) else error),)
        return self.error("the gateway found no valid answer", self.errors, calls=len(self.completions) + 1)

    def result(self, value: T) -> Structured[T]:
        return Structured(value, self.usage, self.attempts, len(self.completions), tuple(self.modes),
                          tuple(self.completions))

    def exhausted(self) -> StructuredOutputError:
        return self.error(f"{self.response_model.__name__} did not validate", self.errors)

    def error(self, why: str, errors: tuple[str, ...], *, calls: int | None = None) -> StructuredOutputError:
        calls = len(self.completions) if calls is None else calls
        return StructuredOutputError(f"{why} after {calls} call(s), {self.attempts} attempt(s): "
                                     f"{'; '.join(errors[:3])}", attempts=self.attempts, calls=calls,
                                     usage=self.usage, errors=errors, completions=tuple(self.completions))


def _error_line(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "$"
    return f"{where}: {error['msg']}"


def structured(client: OpenAI, *, model: str, messages: Iterable[Mapping[str, Any]], response_model: type[T],
               max_retries: int = 1, strict: bool | None = None, **create_kwargs: Any) -> Structured[T]:
    """Ask `model` for a `response_model` instance; re-ask up to `max_retries` times with pydantic's errors.
    `create_kwargs` go to `client.chat.completions.create` as they are (temperature, max_tokens, extra_headers…)."""
    exchange = _Exchange(model, messages, response_model, max_retries, strict, create_kwargs)
    while len(exchange.completions) < exchange.calls_allowed:
        try:
            raw = client.chat.completions.with_raw_response.create(**exchange.request())
        except Exception as error:
            gave_up = exchange.gave_up(error)
            if gave_up is None:
                raise
            raise gave_up from error
        value = exchange.take(raw)
        if value is not None:
            return exchange.result(value)
    raise exchange.exhausted()


async def astructured(client: AsyncOpenAI, *, model: str, messages: Iterable[Mapping[str, Any]],
                      response_model: type[T], max_retries: int = 1, strict: bool | None = None,
                      **create_kwargs: Any) -> Structured[T]:
    """`structured` for `openai.AsyncOpenAI`."""
    exchange = _Exchange(model, messages, response_model, max_retries, strict, create_kwargs)
    while len(exchange.completions) < exchange.calls_allowed:
        try:
            raw = await client.chat.completions.with_raw_response.create(**exchange.request())
        except Exception as error:
            gave_up = exchange.gave_up(error)
            if gave_up is None:
                raise
            raise gave_up from error
        value = exchange.take(raw)
        if value is not None:
            return exchange.result(value)
    raise exchange.exhausted()
