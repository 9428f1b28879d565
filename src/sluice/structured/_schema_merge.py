"""Two JSON Schemas as one, for what `allOf` and a `$ref` with sibling keywords hold in practice: properties and
`required` joined, bounds tightened, types and enums intersected, `anyOf` / `oneOf` crossed; any other keyword
the first schema sets wins."""

from __future__ import annotations

from typing import Any

_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties", "minContains")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", "maxContains")


def merge_schemas(first: Any, second: Any) -> Any:
    """A schema that asks what both ask (`true`, `{}` and None ask nothing; `false`, everything)."""
    if first is True or first == {} or first is None:
        return second
    if second is True or second == {} or second is None:
        return first
    if first is False or second is False:
        return False
    out = dict(first)
    for key, value in second.items():
        if key not in out:
            out[key] = value
        elif key == "properties":
            out[key] = {**out[key], **{name: merge_schemas(out[key].get(name), sub) for name, sub in value.items()}}
        elif key == "required":
            out[key] = list(dict.fromkeys([*out[key], *value]))
        elif key in _LOWER_BOUNDS:
            out[key] = max(out[key], value)
        elif key in _UPPER_BOUNDS:
            out[key] = min(out[key], value)
        elif key == "type":
            out[key] = _common_types(listed_types(out[key]), listed_types(value))
        elif key == "enum":
            out[key] = [item for item in out[key] if item in value] or out[key]
        elif key in ("items", "additionalProperties", "contains", "propertyNames"):
            out[key] = merge_schemas(out[key], value)
        elif key in ("anyOf", "oneOf") and len(out[key]) * len(value) <= 64:
            out[key] = [merge_schemas(one, other) for one in out[key] for other in value]
    return out


def listed_types(types: Any) -> list[str]:
    """`type` as a list (`"string"` -> `["string"]`, absent -> `[]`)."""
    return [types] if isinstance(types, str) else list(types or [])


def _common_types(first: list[str], second: list[str]) -> list[str]:
    common = [kind for kind in first if kind in second or (kind == "integer" and "number" in second)]
    common += [kind for kind in second if kind == "integer" and "number" in first and kind not in common]
    return common or first
