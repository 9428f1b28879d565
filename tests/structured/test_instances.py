"""Values for a JSON Schema, as the simulator answers a `response_format`: valid against the schema (checked by
jsonschema, formats included), made of words, of realistic length, the same for the same seed."""

from __future__ import annotations

import random
import re
from datetime import datetime, time
from typing import Any
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from sluice.structured.instances import (
    DEFAULT_WORDS,
    SHALLOW_DEPTH,
    instance_for,
    json_object_instance,
    json_text,
)

SEEDS = range(25)
_RFC3339_TIME = r"\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})"
FORMATS = FormatChecker()  # jsonschema's own checks (date, email, ipv4, ipv6, uuid…) and the ones it needs extras for


@FORMATS.checks("date-time")
def _date_time(value: object) -> bool:
    return not isinstance(value, str) or bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}T" + _RFC3339_TIME, value)
                                               and datetime.fromisoformat(value))


@FORMATS.checks("time")
def _time(value: object) -> bool:
    return not isinstance(value, str) or bool(re.fullmatch(_RFC3339_TIME, value) and time.fromisoformat(value))


@FORMATS.checks("uri")
def _uri(value: object) -> bool:
    return not isinstance(value, str) or bool(urlsplit(value).scheme and urlsplit(value).netloc)


@FORMATS.checks("hostname")
def _hostname(value: object) -> bool:
    return not isinstance(value, str) or bool(re.fullmatch(r"([a-z0-9-]{1,63}\.)*[a-z0-9-]{1,63}", value))


TREE = {"$defs": {"node": {"type": "object", "additionalProperties": False, "required": ["label", "children"],
                           "properties": {"label": {"type": "string"},
                                          "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
        "$ref": "#/$defs/node"}
PERSON = {"type": "object", "additionalProperties": False, "required": ["name", "age"],
          "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0, "maximum": 130},
                         "email": {"type": "string", "format": "email"}, "nickname": {"type": ["string", "null"]},
                         "bio": {"type": "string"}}}
SCHEMAS: dict[str, Any] = {
    "true": True,
    "empty": {},
    "string": {"type": "string"},
    "short string": {"type": "string", "maxLength": 5},
    "long string": {"type": "string", "minLength": 200, "maxLength": 220},
    "exact length": {"type": "string", "minLength": 7, "maxLength": 7},
    "integer range": {"type": "integer", "minimum": -5, "maximum": 5},
    "exclusive integer": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 3},
    "exclusive number": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.01},
    "big minimum": {"type": "integer", "minimum": 1_000_000},
    "negative maximum": {"type": "number", "maximum": -1000},
    "multipleOf integer": {"type": "integer", "multipleOf": 7, "minimum": 10, "maximum": 100},
    "multipleOf float": {"type": "number", "multipleOf": 0.01, "minimum": 0, "maximum": 10},
    "multipleOf quarter": {"type": "number", "multipleOf": 0.25},
    "boolean or null": {"type": ["boolean", "null"]},
    "null": {"type": "null"},
    "enum": {"enum": ["red", "green", "blue", 3, None]},
    "const": {"const": {"version": 2, "tags": ["a"]}},
    "formats": {"type": "object", "required": ["day", "at", "clock", "mail", "link", "id", "v4", "v6", "host"],
                "properties": {"day": {"type": "string", "format": "date"},
                               "at": {"type": "string", "format": "date-time"},
                               "clock": {"type": "string", "format": "time"},
                               "mail": {"type": "string", "format": "email"},
                               "link": {"type": "string", "format": "uri"},
                               "id": {"type": "string", "format": "uuid"},
                               "v4": {"type": "string", "format": "ipv4"},
                               "v6": {"type": "string", "format": "ipv6"},
                               "host": {"type": "string", "format": "hostname"}}},
    "code pattern": {"type": "string", "pattern": r"^[A-Z]{3}-\d{4}$"},
    "slug pattern": {"type": "string", "pattern": r"^[a-z]+(-[a-z]+)*$"},
    "alternation pattern": {"type": "string", "pattern": r"^(low|medium|high)$"},
    "unanchored pattern": {"type": "string", "pattern": r"\d{2,3}"},
    "phone pattern": {"type": "string", "pattern": r"^\+?[0-9]{1,3}[ -]?\(?\d{3}\)?[ -]?\d{3}-\d{4}$"},
    "pattern with length": {"type": "string", "pattern": r"^[a-z0-9_]+$", "minLength": 3, "maxLength": 8},
    "lookahead pattern": {"type": "string", "pattern": r"^(?=.*\d)[a-z\d]{8}$"},
    "person": PERSON,
    "strict object": {"type": "object", "additionalProperties": False, "required": ["title", "year", "rating"],
                      "properties": {"title": {"type": "string"}, "year": {"type": "integer"},
                                     "rating": {"type": ["number", "null"], "minimum": 0, "maximum": 10}}},
    "nested objects": {"type": "object", "required": ["order"],
                       "properties": {"order": {"type": "object", "required": ["id", "customer", "total"],
                                                "properties": {"id": {"type": "string", "format": "uuid"},
                                                               "customer": PERSON,
                                                               "total": {"type": "number", "minimum": 0}}}}},
    "array of objects": {"type": "array", "minItems": 2, "maxItems": 6, "items": PERSON},
    "array of enums unique": {"type": "array", "uniqueItems": True, "minItems": 3,
                              "items": {"enum": ["a", "b", "c", "d"]}},
    "unique integers": {"type": "array", "uniqueItems": True, "minItems": 5, "maxItems": 5,
                        "items": {"type": "integer", "minimum": 1, "maximum": 6}},
    "prefixItems": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"},
                                                     {"enum": ["km", "mi"]}], "items": False, "minItems": 2},
    "contains": {"type": "array", "items": {"type": "integer"}, "contains": {"const": 42}, "minContains": 2},
    "anyOf with null": {"type": "object", "required": ["value"],
                        "properties": {"value": {"anyOf": [{"type": "string", "maxLength": 10}, {"type": "null"}]}}},
    "oneOf shapes": {"oneOf": [
        {"type": "object", "required": ["kind", "radius"], "additionalProperties": False,
         "properties": {"kind": {"const": "circle"}, "radius": {"type": "number", "exclusiveMinimum": 0}}},
        {"type": "object", "required": ["kind", "width", "height"], "additionalProperties": False,
         "properties": {"kind": {"const": "rect"}, "width": {"type": "number"}, "height": {"type": "number"}}}]},
    "oneOf overlapping": {"oneOf": [{"type": "number"}, {"type": "integer"}]},
    "allOf": {"allOf": [{"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}},
                        {"required": ["b"], "properties": {"b": {"type": "string", "minLength": 3}}},
                        {"properties": {"a": {"minimum": 10, "maximum": 12}}}]},
    "ref with siblings": {"$defs": {"base": {"type": "object", "properties": {"id": {"type": "integer"}}}},
                          "$ref": "#/$defs/base", "required": ["id", "name"],
                          "properties": {"name": {"type": "string"}}},
    "definitions": {"definitions": {"money": {"type": "object", "required": ["amount", "currency"],
                                              "properties": {"amount": {"type": "number", "multipleOf": 0.01},
                                                             "currency": {"enum": ["USD", "EUR"]}}}},
                    "type": "array", "items": {"$ref": "#/definitions/money"}},
    "tree": TREE,
    "linked list": {"$defs": {"node": {"type": "object", "required": ["value", "next"],
                                       "properties": {"value": {"type": "integer"},
                                                      "next": {"anyOf": [{"$ref": "#/$defs/node"},
                                                                         {"type": "null"}]}}}},
                    "$ref": "#/$defs/node"},
    "recursive root": {"type": "object", "properties": {"name": {"type": "string"},
                                                        "parts": {"type": "array", "items": {"$ref": "#"}}}},
    "min and max properties": {"type": "object", "minProperties": 4, "maxProperties": 5,
                               "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                               "additionalProperties": {"type": "string"}},
    "max properties": {"type": "object", "maxProperties": 1, "required": ["a"],
                       "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "c": {"type": "integer"}}},
    "patternProperties": {"type": "object", "minProperties": 2, "additionalProperties": False,
                          "patternProperties": {r"^x-[a-z]+$": {"type": "string"}}},
    "propertyNames": {"type": "object", "minProperties": 3, "propertyNames": {"pattern": "^[A-Z][a-z]+$"},
                      "additionalProperties": {"type": "integer"}},
    "dependentRequired": {"type": "object", "properties": {"card": {"type": "string"}, "billing": {"type": "string"}},
                          "required": ["card"], "dependentRequired": {"card": ["billing"]}},
    "type list": {"type": ["string", "integer", "array"], "items": {"type": "boolean"}},
    "untyped keywords": {"properties": {"a": {"minimum": 3}}, "required": ["a"]},
}


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_every_value_is_valid_against_its_schema(name: str) -> None:
    schema = SCHEMAS[name]
    validator = Draft202012Validator(schema, format_checker=FORMATS)
    for seed in SEEDS:
        value = instance_for(schema, random.Random(seed))
        errors = [error.message for error in validator.iter_errors(value)]
        assert not errors, f"seed {seed}: {json_text(value)}: {errors}"


def test_the_same_seed_gives_the_same_value_and_other_seeds_others() -> None:
    for schema in (PERSON, TREE, SCHEMAS["formats"], SCHEMAS["array of objects"]):
        values = [json_text(instance_for(schema, random.Random(seed))) for seed in range(10)]
        assert values == [json_text(instance_for(schema, random.Random(seed))) for seed in range(10)]
        assert len(set(values)) == 10


def test_optional_properties_come_and_go_and_required_ones_are_always_there() -> None:
    seen: dict[str, int] = {}
    for seed in range(200):
        value = instance_for(PERSON, random.Random(seed))
        assert {"name", "age"} <= value.keys() <= PERSON["properties"].keys()
        for key in value:
            seen[key] = seen.get(key, 0) + 1
    assert seen["name"] == seen["age"] == 200
    for optional in ("email", "nickname", "bio"):
        assert 60 < seen[optional] < 180  # about 60 % of answers fill one in


def test_nullable_values_are_mostly_not_null() -> None:
    nulls = sum(instance_for({"type": ["string", "null"]}, random.Random(seed)) is None for seed in range(200))
    assert 10 < nulls < 80


def test_strings_are_words_and_their_length_follows_the_property_name() -> None:
    schema = {"type": "object", "required": ["title", "description", "city"],
              "properties": {"title": {"type": "string"}, "description": {"type": "string"},
                             "city": {"type": "string"}}}
    words = ("alpha", "beta", "gamma", "delta")
    for seed in SEEDS:
        value = instance_for(schema, random.Random(seed), words)
        for text in value.values():
            assert {word.strip(".").lower() for word in text.split()} <= set(words)
        assert 1 <= len(value["title"].split()) <= 3 and value["title"].istitle()
        assert 8 <= len(value["description"].split()) <= 30 and value["description"].endswith(".")
    assert all(word.isalpha() and word.islower() for word in DEFAULT_WORDS)


def test_numbers_fall_in_a_range_their_name_suggests() -> None:
    schema = {"type": "object", "required": ["year", "age", "rating"],
              "properties": {"year": {"type": "integer"}, "age": {"type": "integer"}, "rating": {"type": "number"}}}
    for seed in SEEDS:
        value = instance_for(schema, random.Random(seed))
        assert 1990 <= value["year"] <= 2025 and 18 <= value["age"] <= 80 and 1 <= value["rating"] <= 5


def test_a_recursive_schema_ends_soon_after_the_shallow_depth() -> None:
    def depth(node: dict[str, Any]) -> int:
        return 1 + max((depth(child) for child in node["children"]), default=0)

    for seed in SEEDS:  # each level of the tree nests two values: an object and its array
        assert depth(instance_for(TREE, random.Random(seed))) <= SHALLOW_DEPTH // 2 + 1


def test_one_of_values_match_exactly_one_branch() -> None:
    values = [instance_for(SCHEMAS["oneOf overlapping"], random.Random(seed)) for seed in SEEDS]
    assert all(isinstance(value, float) and not value.is_integer() for value in values)


def test_json_mode_gives_a_small_object_of_typical_fields() -> None:
    for seed in SEEDS:
        value = json_object_instance(random.Random(seed))
        assert isinstance(value, dict) and 2 <= len(value) <= 5
    assert json_object_instance(random.Random(3)) == json_object_instance(random.Random(3))


def test_json_text_is_one_line_as_a_model_writes_it() -> None:
    assert json_text({"a": [1, 2], "b": "café"}) == '{"a": [1, 2], "b": "café"}'


@pytest.mark.parametrize("schema", [
    {"type": "object", "required": ["next"], "properties": {"next": {"$ref": "#"}}},  # no finite value
    {"allOf": [{"$ref": "#"}, {"$ref": "#"}]},  # a `$ref` cycle that never nests a value
    {"$defs": {"a": {"oneOf": [{"$ref": "#/$defs/a"}, {"type": "null"}]}}, "$ref": "#/$defs/a"},
    {"type": "array", "minItems": 10**9, "items": {"type": "string", "minLength": 10**9}},
])
def test_schemas_with_no_small_value_still_end_soon(schema: Any) -> None:
    value = instance_for(schema, random.Random(0))
    assert len(json_text(value)) < 2_000_000
