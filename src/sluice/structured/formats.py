"""`response_format` as a request sends it, checked up front: a 400 naming the path of what is wrong, before the
cache, a guard or an upstream sees the request.

- `type`: `text`, `json_object` or `json_schema`;
- `json_schema`: a `name` (letters, digits, `_` and `-`, at most 64), an optional `description`, `schema` (an
  object) and `strict`;
- the schema: valid JSON Schema (Draft 2020-12's meta-schema, jsonschema);
- limits, before anything compiles it: size, nesting, enum values, properties, and nesting of `anyOf` / `oneOf`
  / `allOf` (deep combinators and huge enums are how a schema stalls a grammar compiler: vLLM #54003);
- `strict: true`: OpenAI's rules — every object lists all its properties in `required` and sets
  `additionalProperties: false`, and the root is an object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from sluice.errors import InvalidRequest

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TYPES = ("text", "json_object", "json_schema")
_COMBINATORS = ("anyOf", "oneOf", "allOf")
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
              "unevaluatedItems", "unevaluatedProperties")


@dataclass(slots=True, frozen=True)
class FormatLimits:
    """What a schema may hold (OpenAI's structured-output limits where it publishes them)."""

    max_bytes: int = 256 * 1024  # the schema as JSON
    max_depth: int = 32  # nested subschemas
    max_properties: int = 5000  # object properties, all objects together (OpenAI: 5,000)
    max_enum_values: int = 10_000  # enum and const values, all together
    max_combinator_depth: int = 8  # anyOf / oneOf / allOf inside one another


LIMITS = FormatLimits()


class ResponseFormatError(InvalidRequest):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}", param=path, code="invalid_response_format")


def check_response_format(value: Any, *, limits: FormatLimits = LIMITS, where: str = "response_format") -> None:
    """Raise ResponseFormatError (a 400) naming the path of the first problem; return when the format is usable."""
    if not isinstance(value, dict):
        raise ResponseFormatError(where, "must be an object, e.g. {\"type\": \"json_object\"}")
    kind = value.get("type")
    if kind not in _TYPES:
        raise ResponseFormatError(f"{where}.type", f"{kind!r} is not one of {', '.join(_TYPES)}")
    if kind != "json_schema":
        return
    spec = value.get("json_schema")
    path = f"{where}.json_schema"
    if not isinstance(spec, dict):
        raise ResponseFormatError(path, "required with type json_schema: {\"name\": ..., \"schema\": {...}}")
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ResponseFormatError(f"{path}.name", "required: letters, digits, _ and -, at most 64 characters")
    if "description" in spec and not isinstance(spec["description"], str):
        raise ResponseFormatError(f"{path}.description", "must be a string")
    if spec.get("strict") is not None and not isinstance(spec["strict"], bool):
        raise ResponseFormatError(f"{path}.strict", "must be true or false")
    schema = spec.get("schema")
    if schema is None:
        return
    if not isinstance(schema, dict):
        raise ResponseFormatError(f"{path}.schema", "must be a JSON Schema object")
    check_schema(schema, f"{path}.schema", limits=limits, strict=spec.get("strict") is True)


def check_schema(schema: dict[str, Any], where: str, *, limits: FormatLimits = LIMITS, strict: bool = False) -> None:
    size = len(orjson.dumps(schema))
    if size > limits.max_bytes:
        raise ResponseFormatError(where, f"{size:,} bytes as JSON; at most {limits.max_bytes:,}")
    _Walk(where, limits, strict).schema(schema, where, 0, 0)  # limits first: the meta-schema check is slow on bombs
    from jsonschema import Draft202012Validator, SchemaError  # ~0.1 s to import: only requests with a schema pay

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        at = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.path)
        raise ResponseFormatError(where + at, error.message[:300]) from None


class _Walk:
    """Every subschema once: the limits, and in strict mode OpenAI's object rules."""

    def __init__(self, root: str, limits: FormatLimits, strict: bool) -> None:
        self.root, self.limits, self.strict = root, limits, strict
        self.properties = 0
        self.enum_values = 0

    def schema(self, node: Any, path: str, depth: int, combinators: int) -> None:
        if not isinstance(node, dict):
            return  # booleans are schemas too; anything else the meta-schema check reports
        limits = self.limits
        if depth > limits.max_depth:
            raise ResponseFormatError(path, f"nested deeper than {limits.max_depth} subschemas")
        for key in ("enum", "const"):
            if key in node:
                self.enum_values += len(node[key]) if key == "enum" and isinstance(node[key], list) else 1
                if self.enum_values > limits.max_enum_values:
                    raise ResponseFormatError(f"{path}.{key}", f"more than {limits.max_enum_values:,} enum values in "
                                              "the schema")
        properties = node.get("properties")
        if isinstance(properties, dict):
            self.properties += len(properties)
            if self.properties > limits.max_properties:
                raise ResponseFormatError(f"{path}.properties", f"more than {limits.max_properties:,} properties in "
                                          "the schema")
        if self.strict:
            self._strict_object(node, path, depth)
        for key in _SUBSCHEMA_MAPS:
            children = node.get(key)
            if isinstance(children, dict):
                for name, child in children.items():
                    self.schema(child, f"{path}.{key}.{name}", depth + 1, combinators)
        for key in _SUBSCHEMA_LISTS:
            children = node.get(key)
            if isinstance(children, list):
                nested = combinators + (key in _COMBINATORS)
                if nested > limits.max_combinator_depth:
                    raise ResponseFormatError(f"{path}.{key}", f"anyOf / oneOf / allOf nested deeper than "
                                              f"{limits.max_combinator_depth}")
                for index, child in enumerate(children):
                    self.schema(child, f"{path}.{key}[{index}]", depth + 1, nested)
        for key in _SUBSCHEMA:
            if key in node:
                self.schema(node[key], f"{path}.{key}", depth + 1, combinators)

    def _strict_object(self, node: dict[str, Any], path: str, depth: int) -> None:
        kinds = node.get("type")
        is_object = kinds == "object" or (isinstance(kinds, list) and "object" in kinds) or "properties" in node
        if depth == 0 and not is_object and "$ref" not in node:
            raise ResponseFormatError(f"{path}.type", "strict mode needs an object at the root")
        if not is_object:
            return
        if node.get("additionalProperties") is not False:
            raise ResponseFormatError(f"{path}.additionalProperties", "strict mode needs false on every object")
        names = list((node.get("properties") or {}).keys())
        required = node.get("required") or []
        missing = [name for name in names if name not in required]
        if missing:
            raise ResponseFormatError(f"{path}.required", f"strict mode needs every property listed; missing "
                                      f"{', '.join(missing[:10])} (make one optional with a null type instead)")


__all__ = ["LIMITS", "FormatLimits", "ResponseFormatError", "check_response_format", "check_schema"]
