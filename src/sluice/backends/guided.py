"""Guided decoding for local runtimes: a JSON `response_format` (or a request's tools, backends/_local_tools.py)
compiled to an llguidance grammar, enforced per token.

llguidance (docs/structured-local.md) compiles a schema in about a millisecond and bounds its own work with fuel
and size limits; we add a wall-clock deadline on compilation. A schema it cannot compile is a 400 naming the path
of the offending keyword where the message lets us find it, else the schema's root. Keywords it cannot enforce
(`uniqueItems`, `not`, `if`, unknown formats…) are ignored (lenient mode) and listed: the gateway validates after.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from sluice.backends.types import ChatCompletionRequest, CompletionRequest, response_format_of
from sluice.errors import InvalidRequest

log = logging.getLogger("sluice.backends.guided")

TEXT_ONLY = frozenset({"text"})
JSON_FORMATS = frozenset({"json_object", "json_schema"})
COMPILE_DEADLINE_S = 1.0  # bombs within llguidance's limits are refused in ~20-100 ms; a normal schema takes ~1 ms
SCHEMA_PARAM = "response_format.json_schema.schema"
# JSON Schema keywords llguidance does not enforce (lenient: ignored and reported; docs/structured-local.md), besides
# formats it does not know and the exclusivity of `oneOf` (read as `anyOf`). The gateway validates them after.
UNENFORCED_KEYWORDS = frozenset({"uniqueItems", "contains", "minContains", "maxContains", "not", "if", "then", "else",
                                 "dependentRequired", "dependentSchemas", "propertyNames", "unevaluatedProperties",
                                 "unevaluatedItems"})
# Lenient: unsupported keywords and formats are ignored (and reported), `oneOf` is read as `anyOf`. Whitespace is
# bounded: a small model can otherwise pad an answer with newlines until max_tokens.
JSON_OPTIONS: dict[str, Any] = {"lenient": True, "whitespace_pattern": r"[\x20\x0A\x0D\x09]{0,12}"}
# llguidance's resource bounds (LLParserLimits), per request. Fuel speeds are llguidance's: ~50k/ms to build the
# lexer, ~14k/ms per mask step; a lexer state costs 1-2 kB of memory.
PARSER_LIMITS: dict[str, int] = {
    "max_grammar_size": 500_000,  # symbols in the grammar (its default): a 5-deep, 8-wide anyOf is refused
    "initial_lexer_fuel": 1_000_000,  # ~20 ms to build the lexer (its default)
    "step_lexer_fuel": 200_000,  # ~15 ms per token at worst (its default)
    "step_max_items": 50_000,  # Earley items per token (its default)
    "max_lexer_states": 50_000,  # ~100 MB at worst in the worker (its default, 250,000, allows ~500 MB)
}


class GuidanceFailed(RuntimeError):
    """The grammar could not go on mid-answer for a reason that is not the schema's (a bug, not a bomb)."""


def format_type(request: ChatCompletionRequest | CompletionRequest) -> str:
    """`text`, `json_object` or `json_schema` (what the gateway's check lets through)."""
    response_format = response_format_of(request)
    return str(response_format.get("type", "text")) if response_format else "text"


def schema_of(response_format: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema a format asks for: JSON mode, or a json_schema without a schema, is any object."""
    spec = response_format.get("json_schema") if response_format.get("type") == "json_schema" else None
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else {"type": "object"}


def build_tokenizer(vocab: Any) -> Any:
    """llguidance's view of a llama.cpp vocabulary (~0.3 s for SmolLM2's 49k tokens): build once per model."""
    from llguidance.llamacpp import lltokenizer_from_vocab

    return lltokenizer_from_vocab(vocab)


@dataclass(slots=True, frozen=True)
class CompiledFormat:
    matcher: Any  # llguidance.LLMatcher, in its initial state
    unenforced: tuple[str, ...]  # llguidance's warnings: keywords and formats it ignored
    compile_s: float
    param: str = SCHEMA_PARAM  # what a failure mid-answer names


@dataclass(slots=True, frozen=True)
class GrammarSubject:
    """What a grammar was built from, for its errors: the request field they name, given llguidance's message."""

    param_of: Callable[[str], str]  # error message -> the path of what it is about
    default_param: str  # the field a deadline or a failure mid-answer names
    what: str  # "this schema", "these tools"
    too_complex_code: str = "response_format_too_complex"
    invalid_code: str = "invalid_response_format"


def compile_format(response_format: dict[str, Any], tokenizer: Any, *,
                   options: dict[str, Any] | None = None) -> CompiledFormat:
    """Compile within llguidance's limits and our deadline; InvalidRequest (400) naming the schema path if not."""
    from llguidance import LLMatcher

    schema = schema_of(response_format)
    subject = GrammarSubject(lambda error: SCHEMA_PARAM + locate(schema, error), SCHEMA_PARAM, "this schema")
    return compile_grammar(lambda: LLMatcher.grammar_from_json_schema(
        schema, overrides=JSON_OPTIONS if options is None else options), tokenizer, subject)


def compile_grammar(build: Callable[[], str], tokenizer: Any, subject: GrammarSubject) -> CompiledFormat:
    """A matcher for the grammar `build` returns (JSON Schema or Lark, as llguidance writes them), compiled within
    llguidance's limits and our deadline; InvalidRequest (400) naming `subject`'s field if it cannot be."""
    from llguidance import LLMatcher, LLParserLimits

    started = time.perf_counter()
    result: list[Any] = []

    def compile_it() -> None:  # LLMatcher drops the GIL while it builds, so the deadline below can be kept
        try:
            result.append(LLMatcher(tokenizer, build(), log_level=0, limits=LLParserLimits(**PARSER_LIMITS)))
        except Exception as exc:  # the schema is not an object llguidance can read
            result.append(exc)

    worker = threading.Thread(target=compile_it, daemon=True, name="sluice-grammar-compile")
    worker.start()
    worker.join(COMPILE_DEADLINE_S)
    compile_s = time.perf_counter() - started
    if not result:  # the thread finishes in the background, its work bounded by the fuel limits
        param = subject.default_param
        raise InvalidRequest(f"{param}: compiling {subject.what} to a grammar took longer than "
                             f"{COMPILE_DEADLINE_S:g} s; simplify it", param=param, code=subject.too_complex_code)
    matcher = result[0]
    error = str(matcher) if isinstance(matcher, Exception) else matcher.get_error()
    if error:
        path = subject.param_of(error)
        raise InvalidRequest(f"{path}: the local model cannot decode under {subject.what}: {error.splitlines()[0]}"
                             f"{_detail(error)}", param=path,
                             code=subject.too_complex_code if _too_complex(error) else subject.invalid_code)
    unenforced = tuple(matcher.get_grammar_warnings())
    if unenforced:
        log.info("%s: not enforced while decoding (validated after): %s", subject.default_param,
                 "; ".join(unenforced))
    return CompiledFormat(matcher, unenforced, compile_s, subject.default_param)


def _too_complex(error: str, stop_reason: str = "") -> bool:
    """Whether llguidance gave up on a limit (the schema is too big or too hard), not on a mistake in it."""
    return "TooComplex" in stop_reason or any(words in error for words in ("too large", "too complex", "too many"))


def _detail(error: str) -> str:
    """The lines after an error's first (a regex error's caret line), without llguidance's parser-state dump."""
    lines = [line.strip() for line in error.splitlines()[1:4] if line.strip() and not line.startswith("<")]
    return f" ({' '.join(lines)})" if lines else ""


_QUOTED = {"$ref": "Pointer", "pattern": "regex", "format": "format"}  # keyword -> what its errors say


def locate(schema: Any, error: str) -> str:
    """The path (`.properties.tags.pattern`) of the first keyword whose string value the error quotes; "" if none.

    llguidance's messages do not carry a path, but they quote what failed: a `$ref` pointer, a regex, a format.
    """
    stack: list[tuple[str, Any]] = [("", schema)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _QUOTED and isinstance(value, str) and _QUOTED[key] in error:
                    quoted = value.removeprefix("#") if key == "$ref" else value
                    if quoted and quoted in error:
                        return f"{path}.{key}"
                if key == "patternProperties" and isinstance(value, dict):
                    for pattern in value:
                        if f"/{pattern}/" in error:
                            return f"{path}.patternProperties.{pattern}"
            stack.extend((f"{path}.{key}", value) for key, value in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((f"{path}[{index}]", value) for index, value in reversed(list(enumerate(node))))
    return ""


def decode_failure(error: str, stop_reason: str, consumed: int, param: str = SCHEMA_PARAM) -> Exception:
    """What a grammar that cannot go on mid-answer is: the schema's fault when it outgrew the limits, else ours."""
    first_line = error.splitlines()[0] if error else stop_reason
    if _too_complex(error, stop_reason):
        code = "response_format_too_complex" if param == SCHEMA_PARAM else "tools_too_complex"
        return InvalidRequest(f"{param}: the grammar outgrew its limits while decoding, after "
                              f"{consumed} tokens: {first_line}", param=param, code=code)
    return GuidanceFailed(f"guided decoding stopped after {consumed} tokens: {first_line}")


class GuidedDecoding:
    """A llama-cpp-python logits processor that keeps each sampled token inside the grammar.

    Called before every sample with the whole sequence so far: it feeds the matcher the tokens sampled since its
    last call, then masks every token the grammar forbids. EOS is in the mask only where the grammar accepts, and
    once the grammar is complete only EOS is, so the answer ends there. llama.cpp calls this through a C callback
    that swallows exceptions: a failure is recorded, EOS forced, and `tokens()` raises it on the worker thread.
    """

    def __init__(self, compiled: CompiledFormat, tokenizer: Any, prompt_tokens: int) -> None:
        from llguidance.numpy import allocate_token_bitmask

        self._matcher = compiled.matcher
        self._param = compiled.param
        self._prompt_tokens = prompt_tokens
        self._consumed = 0
        self._eos = int(tokenizer.eos_token)
        self._bitmask = allocate_token_bitmask(1, tokenizer.vocab_size)
        self._failure: BaseException | None = None

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self._failure is None:
            try:
                self._mask(input_ids, scores)
                return scores
            except BaseException as exc:  # it must reach tokens(): the C callback would swallow it
                self._failure = exc
        scores[:] = -np.inf
        scores[self._eos] = 0.0
        return scores

    def tokens(self, tokens: Iterator[int]) -> Iterator[int]:
        """The runtime's tokens, ending with the failure if the grammar could not go on."""
        try:
            for token in tokens:
                if self._failure is not None:
                    raise self._failure
                yield token
        finally:
            close = getattr(tokens, "close", None)
            if close is not None:
                close()  # on this thread, as the generator loop expects

    def _mask(self, input_ids: np.ndarray, scores: np.ndarray) -> None:
        from llguidance.numpy import fill_next_token_bitmask

        matcher = self._matcher
        for token in input_ids[self._prompt_tokens + self._consumed:]:
            matcher.consume_token(int(token))
            self._consumed += 1
        if matcher.is_error():
            raise decode_failure(matcher.get_error(), matcher.stop_reason(), self._consumed, self._param)
        fill_next_token_bitmask(matcher, self._bitmask)
        allowed = np.unpackbits(self._bitmask.view(np.uint8), count=scores.shape[0], bitorder="little")
        scores[allowed == 0] = -np.inf


__all__ = [
    "COMPILE_DEADLINE_S",
    "JSON_FORMATS",
    "TEXT_ONLY",
    "UNENFORCED_KEYWORDS",
    "CompiledFormat",
    "GrammarSubject",
    "GuidanceFailed",
    "GuidedDecoding",
    "build_tokenizer",
    "compile_format",
    "compile_grammar",
    "decode_failure",
    "format_type",
    "locate",
    "schema_of",
]
