"""Answers to a `response_format`: the JSON a model held to the format would write, as its real tokens."""

from __future__ import annotations

import codecs
import random
from functools import lru_cache

import orjson

from sluice.backends import GenerationRequest
from sluice.cost import encoding_for
from sluice.errors import InvalidRequest
from sluice.sim.errors import BadRequest
from sluice.structured import (
    Constraint,
    check_constraints,
    check_response_format,
    constraint_of,
    instance_for,
    json_object_instance,
    json_text,
    response_format_of,
)

_CHECKED_FORMATS = 64  # formats remembered as valid: a load test sends the same few, a check costs milliseconds


def structured_pieces(request: GenerationRequest, seed: int, model: str) -> list[str] | None:
    """The answer as pieces of one token each where the request asks for JSON (`json_object`, `json_schema`);
    None where it asks for text. A format that is not valid is a 400, as vLLM answers it."""
    response_format = response_format_of(request)
    if response_format is None:
        constraint = constraint_of(request.model_extra)
        if constraint is None:
            return None
        try:
            check_constraints(request.model_extra or {})
        except InvalidRequest as error:
            raise BadRequest(error.message, param=error.param) from None
        return _constrained(constraint, random.Random(seed), model)
    _check(orjson.dumps(response_format))
    kind = response_format["type"]
    if kind == "text":
        return None
    rng = random.Random(seed)
    schema = (response_format.get("json_schema") or {}).get("schema") if kind == "json_schema" else None
    value = json_object_instance(rng) if schema is None else instance_for(schema, rng)
    return token_pieces(json_text(value), model)


def _constrained(constraint: Constraint, rng: random.Random, model: str) -> list[str]:
    """vLLM's extras it honours as vLLM does: a JSON schema, a regex (matched in full), a choice. A grammar is
    refused (vLLM would decode under it; a simulator cannot write text a grammar accepts)."""
    if constraint.kind == "json":
        return token_pieces(json_text(instance_for(constraint.value, rng)), model)
    if constraint.kind == "choice":
        return token_pieces(rng.choice(constraint.value), model)
    if constraint.kind == "regex":
        return token_pieces(instance_for({"type": "string", "pattern": f"^(?:{constraint.value})$"}, rng), model)
    raise BadRequest(f"{constraint.param}: the simulator does not decode under grammars", param=constraint.param)


def token_pieces(text: str, model: str) -> list[str]:
    """`text` as the text of each of its tokens, so `"".join` gives it back. A token that ends inside a character
    gives "" and the character goes out with the token that completes it, as vLLM's detokenizer streams it."""
    encoding = encoding_for(model)
    decoder = codecs.getincrementaldecoder("utf-8")()
    return [decoder.decode(encoding.decode_single_token_bytes(token)) for token in encoding.encode_ordinary(text)]


@lru_cache(maxsize=_CHECKED_FORMATS)
def _check(format_json: bytes) -> None:
    try:
        check_response_format(orjson.loads(format_json))
    except InvalidRequest as error:
        raise BadRequest(error.message, param=error.param) from None
