"""A JSON value for a JSON Schema (Draft 2020-12), as a model held to the schema would write one: valid, made of
words, of realistic length, the same for the same seed — what the simulator answers to a `response_format`.

Covered: `type` (lists and `null` too), `const`, `enum`; objects (`properties`, `required` plus a random share of
the optional ones, `additionalProperties`, `patternProperties`, `propertyNames`, `minProperties`/`maxProperties`,
`dependentRequired`); arrays (`items`, `prefixItems`, `minItems`/`maxItems`, `uniqueItems`, `contains`/
`minContains`); strings (`minLength`/`maxLength`, the common formats, `pattern` — see `_regex`); numbers
(bounds, exclusive ones, `multipleOf`); `anyOf`, `oneOf` (a value that matches one branch only, checked), `allOf`
(merged); `$ref` into the schema (`#`, `#/$defs/…`, `#/definitions/…`), recursion included: from
`SHALLOW_DEPTH` on, the shortest way out (required properties only, fewest items, branches without a `$ref`).
Not covered, so the value may fail them: `not`, `if`/`then`/`else`, `dependentSchemas`, `maxContains`,
`unevaluated*` beyond what the rest fixes, `$ref` to another document or an `$anchor`, patterns the walk cannot
meet in a few draws (lookarounds, a pattern at odds with length limits), a `format` together with length limits
it misses, schemas nothing satisfies, and sizes past the caps below (`_MAX_ITEMS`, `_MAX_CHARS`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from sluice.structured._scalars import number_value, string_value
from sluice.structured._schema_merge import listed_types, merge_schemas

_WORDS = """
account action address answer area batch budget cache card case check city cluster code cost country data date
delivery detail engine event field file flight gateway group hotel issue item label level limit line list
market memory message metric model network node note number offer order owner page payment plan point policy
price product queue rate record region report request result review room route rule sample server service
signal size source stage status step store summary system table task team test ticket time token topic
total track type update user value window worker zone
"""
DEFAULT_WORDS = tuple(_WORDS.split())  # what strings are made of where the caller gives no words
SHALLOW_DEPTH = 4  # nesting from which a value takes the shortest way out (recursive schemas end there)
_MAX_DEPTH = 32  # past this, a schema whose recursion is all required has no finite value: give up (null)
_MAX_RESOLVE = 32  # `$ref` / `allOf` steps for one subschema (a `$ref` cycle with no nesting ends here)
_OPTIONAL_SHARE = 0.6  # optional properties a model fills in
_NULL_SHARE = 0.2  # nullable values that come out null
_ITEMS = (1, 5)  # array lengths where the schema sets none
# Size caps, whatever minItems / minProperties say: past them max_tokens would have cut a real model long before.
_MAX_ITEMS = 10_000  # items or extra properties
_MAX_CHARS = 1_000_000  # about the JSON's characters
_ONE_OF_TRIES = 6
_UNIQUE_TRIES = 20
_KIND_KEYS = (
    ("object", ("properties", "required", "additionalProperties", "patternProperties", "minProperties",
                "maxProperties", "propertyNames", "dependentRequired")),
    ("array", ("items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains")),
    ("string", ("minLength", "maxLength", "pattern", "format")),
    ("number", ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")),
)
_SCALARS = ("string", "integer", "number", "boolean")
# JSON mode (`json_object`, no schema): a few of these fields, as a model asked for "JSON" tends to answer.
_JSON_OBJECT_FIELDS: dict[str, Any] = {
    "name": {"type": "string"}, "summary": {"type": "string"}, "category": {"type": "string"},
    "count": {"type": "integer"}, "score": {"type": "number"}, "created": {"type": "string", "format": "date"},
    "tags": {"type": "array", "items": {"type": "string"}}, "verified": {"type": "boolean"},
}


def instance_for(schema: Any, rng: random.Random, words: Sequence[str] = DEFAULT_WORDS) -> Any:
    """A value valid against `schema` (see the module's notes for what may fail), drawn from `rng`."""
    return _Instances(schema, rng, words).value(schema, 0, None)


def json_object_instance(rng: random.Random, words: Sequence[str] = DEFAULT_WORDS) -> dict[str, Any]:
    """A small object of typical fields: an answer in JSON mode, where no schema says what to write."""
    names = sorted(rng.sample(list(_JSON_OBJECT_FIELDS), rng.randint(2, 5)), key=list(_JSON_OBJECT_FIELDS).index)
    schema = {"type": "object", "properties": {name: _JSON_OBJECT_FIELDS[name] for name in names}, "required": names}
    return instance_for(schema, rng, words)  # type: ignore[no-any-return]


def json_text(value: Any) -> str:
    """The value as a model writes it: one line, a space after `,` and `:`, non-ASCII as is."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


class _Instances:
    """One draw: the root schema (for `$ref`), the random source and the words strings are made of."""

    def __init__(self, root: Any, rng: random.Random, words: Sequence[str]) -> None:
        self.root, self.rng, self.words = root, rng, tuple(words)
        self._validator: Any = None
        self.room = _MAX_CHARS  # about the characters left before arrays stop growing

    def value(self, schema: Any, depth: int, name: str | None) -> Any:
        self.room -= 4  # a short scalar and its punctuation
        schema = self.resolve(schema, [_MAX_RESOLVE])
        if schema is False or depth > _MAX_DEPTH:
            return None  # nothing is valid
        if not isinstance(schema, dict):
            schema = {}
        if "const" in schema:
            return copy.deepcopy(schema["const"])
        if schema.get("enum"):
            return copy.deepcopy(self.rng.choice(schema["enum"]))
        if "oneOf" in schema or "anyOf" in schema:
            return self.branch_value(schema, depth, name)
        kind = self.kind(schema, depth)
        if kind == "object":
            return self.object_value(schema, depth)
        if kind == "array":
            return self.array_value(schema, depth, name)
        if kind == "string":
            text = string_value(schema, self.rng, self.words, name)
            self.room -= len(text)
            return text
        if kind in ("integer", "number"):
            return number_value(schema, self.rng, integer=kind == "integer", name=name)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self.any_value(depth, name)

    def resolve(self, schema: Any, budget: list[int]) -> Any:
        """`schema` with its `$ref` and `allOf` merged in (siblings of a `$ref` apply too, as in 2020-12); `budget`
        (shared by the nested calls) ends a cycle of them that never nests a value."""
        while _unresolved(schema) and budget[0] > 0:
            budget[0] -= 1
            if "$ref" in schema:
                rest = {key: value for key, value in schema.items() if key != "$ref"}
                schema = merge_schemas(self.pointer(schema["$ref"]), rest)
            else:
                merged: Any = {key: value for key, value in schema.items() if key != "allOf"}
                for part in schema["allOf"]:
                    merged = merge_schemas(merged, self.resolve(part, budget))
                schema = merged
        return {} if _unresolved(schema) else schema

    def pointer(self, ref: str) -> Any:
        """The subschema a local `$ref` names (`#`, `#/$defs/node`); anything else is taken as `true`."""
        if not ref.startswith("#"):
            return True
        node = self.root
        for part in filter(None, ref[1:].split("/")):
            part = unquote(part).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return True
        return node

    def kind(self, schema: dict[str, Any], depth: int) -> str | None:
        types = listed_types(schema.get("type")) or [next((kind for kind, keys in _KIND_KEYS
                                                      if any(key in schema for key in keys)), None)]
        if len(types) == 1:
            return types[0]
        if depth >= SHALLOW_DEPTH:
            return next((kind for kind in ("null", *_SCALARS) if kind in types), types[0])
        others = [kind for kind in types if kind != "null"]
        if "null" in types and (not others or self.rng.random() < _NULL_SHARE):
            return "null"
        return self.rng.choice(others)

    def branch_value(self, schema: dict[str, Any], depth: int, name: str | None) -> Any:
        """A value for one branch of `oneOf` / `anyOf` (with the schema's other keywords); for `oneOf`, one that
        no other branch accepts too."""
        key = "oneOf" if "oneOf" in schema else "anyOf"
        branches = schema[key]
        rest = {other: value for other, value in schema.items() if other != key}
        candidate = None
        for index in (self.branch_order(branches, depth) * _ONE_OF_TRIES)[:_ONE_OF_TRIES]:
            candidate = self.value(merge_schemas(rest, branches[index]), depth + 1, name)  # +1: recursions end
            if key == "anyOf" or not any(self.valid(candidate, branch) for other, branch in enumerate(branches)
                                         if other != index):
                return candidate
        return candidate

    def branch_order(self, branches: list[Any], depth: int) -> list[int]:
        order = list(range(len(branches)))
        self.rng.shuffle(order)
        nulls = [index for index in order if _is_null(branches[index])]
        others = [index for index in order if index not in nulls]
        if depth >= SHALLOW_DEPTH:  # the way out of a recursion: null, then branches that name no `$ref`
            return nulls + sorted(others, key=lambda index: _mentions_ref(branches[index]))
        return nulls + others if nulls and self.rng.random() < _NULL_SHARE else others + nulls

    def valid(self, value: Any, schema: Any) -> bool:
        if self._validator is None:
            from jsonschema import Draft202012Validator  # ~0.1 s to import: only schemas with a oneOf pay

            self._validator = Draft202012Validator(self.root if isinstance(self.root, dict) else {})
        try:
            return bool(self._validator.evolve(schema=schema).is_valid(value))
        except RecursionError:  # a branch that is a `$ref` to its own oneOf: no validator ends it either
            return False

    def object_value(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        required = list(schema.get("required") or [])
        shallow = depth >= SHALLOW_DEPTH
        names = [name for name in properties
                 if name in required or (not shallow and self.rng.random() < _OPTIONAL_SHARE)]
        names += [name for name in required if name not in names]
        for name in list(names):
            names += [needed for needed in (schema.get("dependentRequired") or {}).get(name, ()) if needed not in names]
        low, high = schema.get("minProperties", 0), schema.get("maxProperties")
        if high is not None and len(names) > high:  # drop optional ones, the last first
            optional = [name for name in names if name not in required]
            dropped = set(optional[max(0, len(optional) - (len(names) - high)):])
            names = [name for name in names if name not in dropped]
        names += [name for name in properties if name not in names][:max(0, low - len(names))]
        out = {name: self.value(properties[name] if name in properties else self.extra_schema(schema, name),
                                depth + 1, name) for name in names}
        for _ in range(4 * min(low, _MAX_ITEMS)):  # extra names may clash with declared ones: a few draws
            if len(out) >= low or (extra := self.extra_property(schema, depth)) is None:
                break
            if extra[0] not in out and extra[0] not in properties:
                out[extra[0]] = extra[1]
        return out

    def extra_schema(self, schema: dict[str, Any], name: str) -> Any:
        """The schema a property outside `properties` must meet (`patternProperties`, else `additionalProperties`)."""
        for pattern, sub in (schema.get("patternProperties") or {}).items():
            with contextlib.suppress(re.error):
                if re.search(pattern, name):
                    return sub
        return schema.get("additionalProperties", True)

    def extra_property(self, schema: dict[str, Any], depth: int) -> tuple[str, Any] | None:
        """A name and value beyond `properties`, where `minProperties` asks for more than those."""
        patterns = schema.get("patternProperties") or {}
        if patterns:
            pattern, sub = self.rng.choice(list(patterns.items()))
            name = string_value({"pattern": pattern}, self.rng, self.words, None)
            return name, self.value(sub, depth + 1, name)
        if schema.get("additionalProperties", True) is False or schema.get("unevaluatedProperties", True) is False:
            return None
        rule = schema.get("propertyNames")
        name = self.value(merge_schemas({"type": "string"}, rule), depth + 1, "name") if rule else None
        name = name if isinstance(name, str) else self.rng.choice(self.words)
        return name, self.value(schema.get("additionalProperties", True), depth + 1, name)

    def array_value(self, schema: dict[str, Any], depth: int, name: str | None) -> list[Any]:
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", True)
        low, high = schema.get("minItems", 0), schema.get("maxItems")
        if items is False:
            high = len(prefix) if high is None else min(high, len(prefix))
        contains = schema.get("contains")
        wanted = schema.get("minContains", 1) if contains is not None else 0
        count = low if depth >= SHALLOW_DEPTH else len(prefix) or self.rng.randint(*_ITEMS)
        count = max(count, low, wanted)
        count = min(count if high is None else min(count, high), _MAX_ITEMS)
        unique = schema.get("uniqueItems") is True
        out: list[Any] = []
        seen: set[str] = set()
        for index in range(count):
            if self.room <= 0:
                break  # far past any max_tokens: a real model would have been cut long before
            sub = prefix[index] if index < len(prefix) else items
            if index >= max(len(prefix), count - wanted):  # the last ones meet `contains`
                sub = merge_schemas(sub, contains)
            value = self.value(sub, depth + 1, name)
            for _ in range(_UNIQUE_TRIES if unique else 0):
                if _unique_key(value) not in seen:
                    break
                value = self.value(sub, depth + 1, name)
            if unique and _unique_key(value) in seen and len(out) >= low:
                break  # no new value to be had: a shorter array
            seen.add(_unique_key(value) if unique else "")
            out.append(value)
        return out

    def any_value(self, depth: int, name: str | None) -> Any:
        """A value where the schema allows anything: an object at the top, a short scalar below."""
        if depth == 0:
            return json_object_instance(self.rng, self.words)
        kind = self.rng.choices(_SCALARS, weights=(6, 2, 1, 1))[0]
        return self.value({"type": kind, "maxLength": 40}, depth, name)


def _unresolved(schema: Any) -> bool:
    return isinstance(schema, dict) and ("$ref" in schema or "allOf" in schema)


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null"


def _mentions_ref(schema: Any) -> bool:
    if isinstance(schema, dict):
        return "$ref" in schema or any(_mentions_ref(value) for value in schema.values())
    return isinstance(schema, list) and any(_mentions_ref(value) for value in schema)


def _unique_key(value: Any) -> str:
    """Equal as `uniqueItems` compares (1 == 1.0, but true != 1)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, list):
        return "[" + ",".join(_unique_key(item) for item in value) + "]"
    elif isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(key)}:{_unique_key(item)}" for key, item in sorted(value.items())) + "}"
    return json.dumps(value)
