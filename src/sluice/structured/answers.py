"""An answer checked against the `response_format` it was asked for: parsed, validated, repaired if it can be.

`AnswerFormat.of(response_format)` compiles the format once per schema (validators are cached by the schema's
canonical JSON); `check(text)` returns a `Verdict` — the value, the errors (each `$.path: message`, at most
`MAX_ERRORS`) and whether a repair was needed. Repair is json-repair's: code fences, prose around the JSON,
trailing commas, single quotes, an object cut off by `max_tokens`.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock
from time import perf_counter
from typing import Any, Literal

import orjson

from sluice.structured.constraints import Constraint

MAX_ERRORS = 8
_CACHE_SIZE = 256

Kind = Literal["json_object", "json_schema", "choice", "regex"]


@dataclass(slots=True, frozen=True)
class Verdict:
    """One answer against its format: `value` is what it parsed (or repaired) to, `errors` what is still wrong."""

    value: Any
    errors: tuple[str, ...]
    repaired: bool  # the text was not valid JSON as sent; `value` is json-repair's reading of it

    @property
    def valid(self) -> bool:
        return not self.errors


class AnswerFormat:
    """A request's `response_format` (json_object or json_schema), ready to check answers against."""

    __slots__ = ("_validator", "compile_s", "constraint", "kind", "name", "schema")

    def __init__(self, kind: Kind, name: str, schema: dict[str, Any] | None, validator: Any, compile_s: float,
                 constraint: Constraint | None = None) -> None:
        self.kind = kind
        self.name = name
        self.schema = schema
        self._validator = validator
        self.compile_s = compile_s  # 0.0 when the validator came from the cache
        self.constraint = constraint  # a vLLM extra it stands for (None: a response_format)

    @classmethod
    def of(cls, response_format: dict[str, Any] | None) -> AnswerFormat | None:
        """The format to hold answers to; None for `text` (or none). The format was checked at the edge."""
        if not response_format or response_format.get("type") not in ("json_object", "json_schema"):
            return None
        if response_format["type"] == "json_object":
            return cls("json_object", "json_object", None, None, 0.0)
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema")
        if not isinstance(schema, dict):
            return cls("json_schema", spec.get("name", ""), None, None, 0.0)  # a name only: any JSON object
        validator, compile_s = _validator(schema)
        return cls("json_schema", spec.get("name", ""), schema, validator, compile_s)

    @classmethod
    def of_constraint(cls, constraint: Constraint) -> AnswerFormat | None:
        """The format of a vLLM extra (`structured_outputs.json|regex|choice`); None for a grammar."""
        if constraint.kind == "json":
            validator, compile_s = _validator(constraint.value)
            return cls("json_schema", constraint.param, constraint.value, validator, compile_s, constraint)
        if constraint.kind == "choice":
            return cls("choice", constraint.param, None, tuple(constraint.value), 0.0, constraint)
        if constraint.kind == "regex":
            return cls("regex", constraint.param, None, re.compile(constraint.value), 0.0, constraint)
        return None

    def check(self, text: str, *, repair: bool) -> Verdict:
        if self.kind == "choice":
            answer = text.strip() if repair else text
            if answer in self._validator:
                return Verdict(answer, (), answer != text)
            return Verdict(None, (f"$: {_short(repr(text))} is not one of {' | '.join(self._validator)}",), False)
        if self.kind == "regex":
            answer = text.strip() if repair else text
            if self._validator.fullmatch(answer):
                return Verdict(answer, (), answer != text)
            return Verdict(None, (f"$: {_short(repr(text))} does not match {self._validator.pattern}",), False)
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            if not repair:
                return Verdict(None, (f"the answer is not JSON: {_first_line(str(error))}",), False)
            return self._repaired(text)
        return Verdict(value, self.errors(value), False)

    def errors(self, value: Any) -> tuple[str, ...]:
        if self._validator is None:
            return () if isinstance(value, dict) else (f"$: expected a JSON object, got {_kind_of(value)}",)
        found = sorted(self._validator.iter_errors(value), key=lambda error: list(map(str, error.absolute_path)))
        return tuple(f"{json_path(error.absolute_path)}: {_short(error.message)}" for error in found[:MAX_ERRORS])

    def _repaired(self, text: str) -> Verdict:
        import json_repair  # only answers that need it pay the import

        value = json_repair.repair_json(text, return_objects=True)
        if value == "" and text.strip() not in ('""', "''"):
            return Verdict(None, ("the answer is not JSON, and json-repair found none in it",), True)
        # Prose with several JSON values reads as a list of them: the first that fits wins.
        for candidate in (value, *(value if isinstance(value, list) else ())):
            errors = self.errors(candidate)
            if not errors:
                return Verdict(candidate, (), True)
        return Verdict(value, self.errors(value), True)


def json_path(parts: Any) -> str:
    """`$.items[2].price` from a jsonschema error path."""
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)


def canonical(value: Any, kind: str = "json_schema") -> str:
    """The text an answer is replaced with after a repair: JSON (compact, as models write it), or the bare
    choice / match."""
    return value if kind in ("choice", "regex") else orjson.dumps(value).decode()


_validators: OrderedDict[bytes, Any] = OrderedDict()
_lock = Lock()


def _validator(schema: dict[str, Any]) -> tuple[Any, float]:
    """A compiled validator for the schema (cached by its canonical JSON), and the seconds compiling it took."""
    key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    with _lock:
        validator = _validators.get(key)
        if validator is not None:
            _validators.move_to_end(key)
            return validator, 0.0
    from jsonschema import Draft202012Validator, FormatChecker

    started = perf_counter()
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    compile_s = perf_counter() - started
    with _lock:
        _validators[key] = validator
        if len(_validators) > _CACHE_SIZE:
            _validators.popitem(last=False)
    return validator, compile_s


def _kind_of(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _first_line(message: str) -> str:
    return message.splitlines()[0] if message else message


def _short(message: str) -> str:
    return message if len(message) <= 200 else message[:197] + "..."


__all__ = ["MAX_ERRORS", "AnswerFormat", "Verdict", "canonical", "json_path"]
