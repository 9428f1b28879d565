"""vLLM's structured-output extras on a request: `structured_outputs: {json | regex | choice | grammar}` (vLLM
≥ 0.10.2) and the older `guided_json`, `guided_regex`, `guided_choice`, `guided_grammar`.

They pass through untouched to servers that take them (vLLM, an unrecognised OpenAI-compatible server); the
simulator honours `json`, `regex` and `choice`; elsewhere the gateway takes them off, says what it wants in the
prompt and validates the answer like a `response_format` (structured/stage.py). A `grammar` can be neither
validated nor explained here: on a backend that does not take it, it is a 400 naming the backend.

`check_constraints(body)` runs at the edge (a 400 naming the field, before anything is sent).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from sluice.errors import InvalidRequest

try:  # the regex parser, to screen patterns: `re._parser` since 3.11
    import re._constants as _sre_constants
    import re._parser as _sre_parse
except ImportError:  # pragma: no cover
    import sre_constants as _sre_constants  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]
from sluice.structured.formats import check_schema

Kind = Literal["json", "regex", "choice", "grammar"]
_KINDS: tuple[Kind, ...] = ("json", "regex", "choice", "grammar")
_FIELD_ORDER = ("structured_outputs", *(f"guided_{kind}" for kind in _KINDS))
FIELDS = frozenset(_FIELD_ORDER)
MAX_PATTERN_CHARS = 4096
MAX_GRAMMAR_CHARS = 64 * 1024
MAX_CHOICES = 1000


@dataclass(slots=True, frozen=True)
class Constraint:
    kind: Kind
    value: Any
    param: str  # the request field it came from: `structured_outputs.regex`, `guided_choice`

    def describe(self) -> str:
        """What the prompt asks for when the backend cannot enforce it."""
        if self.kind == "choice":
            return "Answer with exactly one of these, and nothing else: " + " | ".join(map(str, self.value))
        if self.kind == "regex":
            return f"Answer with text that matches this regular expression in full, and nothing else: {self.value}"
        return ""


def constraint_of(extra: dict[str, Any] | None) -> Constraint | None:
    """The request's extra (vLLM) constraint, if it carries one (the body's fields beyond OpenAI's)."""
    if not extra:
        return None
    nested = extra.get("structured_outputs")
    if isinstance(nested, dict):
        for kind in _KINDS:
            if nested.get(kind) is not None:
                return Constraint(kind, nested[kind], f"structured_outputs.{kind}")
    for kind in _KINDS:
        value = extra.get(f"guided_{kind}")
        if value is not None:
            return Constraint(kind, value, f"guided_{kind}")
    return None


def check_constraints(body: dict[str, Any]) -> None:
    """Raise InvalidRequest (400) for a malformed or oversized vLLM constraint; several at once are refused."""
    found = [name for name in _FIELD_ORDER if body.get(name) is not None]
    if not found:
        return
    nested = body.get("structured_outputs")
    if nested is not None and not isinstance(nested, dict):
        raise InvalidRequest("structured_outputs must be an object, e.g. {\"choice\": [\"yes\", \"no\"]}",
                             param="structured_outputs", code="invalid_structured_outputs")
    kinds = [f"structured_outputs.{kind}" for kind in _KINDS if (nested or {}).get(kind) is not None]
    kinds += [name for name in found if name != "structured_outputs"]
    if len(kinds) > 1 or (kinds and body.get("response_format") not in (None, {"type": "text"})):
        named = kinds + (["response_format"] if body.get("response_format") not in (None, {"type": "text"}) else [])
        raise InvalidRequest(f"one structured-output constraint per request; got {', '.join(named)}",
                             param=named[-1], code="invalid_structured_outputs")
    constraint = constraint_of(body)
    if constraint is not None:
        _check(constraint)


def _check(constraint: Constraint) -> None:
    value, param = constraint.value, constraint.param
    if constraint.kind == "json":
        if isinstance(value, str):
            raise InvalidRequest(f"{param}: give the schema as a JSON object, not a string", param=param,
                                 code="invalid_structured_outputs")
        if not isinstance(value, dict):
            raise InvalidRequest(f"{param}: must be a JSON Schema object", param=param,
                                 code="invalid_structured_outputs")
        check_schema(value, param)
    elif constraint.kind == "choice":
        if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
            raise InvalidRequest(f"{param}: must be a non-empty list of strings", param=param,
                                 code="invalid_structured_outputs")
        if len(value) > MAX_CHOICES:
            raise InvalidRequest(f"{param}: at most {MAX_CHOICES:,} choices", param=param,
                                 code="invalid_structured_outputs")
    elif constraint.kind == "regex":
        if not isinstance(value, str) or len(value) > MAX_PATTERN_CHARS:
            raise InvalidRequest(f"{param}: must be a regular expression of at most {MAX_PATTERN_CHARS:,} "
                                 "characters", param=param, code="invalid_structured_outputs")
        try:
            parsed = _sre_parse.parse(value)
        except re.error as error:
            raise InvalidRequest(f"{param}: not a valid regular expression: {error}", param=param,
                                 code="invalid_structured_outputs") from None
        if _nested_repeat(parsed.data, inside=False):
            raise InvalidRequest(f"{param}: a variable repeat inside another (like (a+)+) can take exponential "
                                 "time to match, and the gateway checks answers against the pattern; write it "
                                 "without nesting", param=param, code="invalid_structured_outputs")
    elif not isinstance(value, str) or len(value) > MAX_GRAMMAR_CHARS:
        raise InvalidRequest(f"{param}: must be a grammar of at most {MAX_GRAMMAR_CHARS:,} characters",
                             param=param, code="invalid_structured_outputs")


_REPEATS = {_sre_constants.MAX_REPEAT, _sre_constants.MIN_REPEAT, getattr(_sre_constants, "POSSESSIVE_REPEAT", None)}


def _nested_repeat(items: Any, *, inside: bool) -> bool:
    """Whether a repeat with a variable count sits inside another repeat (the shape of catastrophic backtracking)."""
    for op, arg in items:
        if op in _REPEATS:
            low, high, body = arg
            variable = low != high
            children, nested = [body.data], inside or variable
            if variable and inside:
                return True
        elif op == _sre_constants.SUBPATTERN:
            children, nested = [arg[-1].data], inside
        elif op == _sre_constants.BRANCH:
            children, nested = [branch.data for branch in arg[1]], inside
        else:
            continue
        if any(_nested_repeat(child, inside=nested) for child in children):
            return True
    return False


__all__ = ["FIELDS", "Constraint", "check_constraints", "constraint_of"]
