"""Guided decoding on the local GGUF model: compile time, tokens/s and schema validity, llguidance vs llama.cpp.

    python benchmarks/guided_local.py [--answers 8] [--baseline-answers 2] [--max-tokens 128] [--threads N]
                                      [--options JSON] [--show]

For a few schemas of rising difficulty it reports: the compile time of llguidance (the tokenizer once, then each
schema) and of llama-cpp-python's `LlamaGrammar.from_json_schema` (its failures caught and shown); then, for
`--answers` chat answers each (temperature 0.7, seeds 0..N-1, the schema in the prompt every time), the share that
parse and validate (jsonschema, Draft 2020-12), how many reached the token limit, the decode tokens/s and the
time our logits processor takes per token — under llguidance (the code the gguf backend runs:
sluice.backends.guided), under a LlamaGrammar, and unguided (`--baseline-answers`: they run to the limit).
Threads default to what the backend uses (every core but one). About 2.5 minutes on 2 cores; numbers are in
docs/structured-local.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from jsonschema import Draft202012Validator

from sluice.backends import guided
from sluice.backends.gguf import decode_threads, resolve_gguf_path
from sluice.config import GGUFBackendConfig

MODES = ("unguided", "llguidance", "llama-grammar")
SCHEMAS: dict[str, dict[str, Any] | None] = {
    "json_object": None,  # JSON mode: any object
    "flat": {  # strings, an integer range, an enum, a bounded array (a senior, so that the range matters)
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 40},
            "age": {"type": "integer", "minimum": 65, "maximum": 120},  # the model likes 25-30: is the range held?
            "role": {"enum": ["admin", "user", "guest"]},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 4},
        },
        "required": ["name", "age", "role", "tags"],
        "additionalProperties": False,
    },
    "nested-ref": {  # a $ref root, $defs, a nested object, a number range
        "$ref": "#/$defs/order",
        "$defs": {
            "address": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                                         "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                        "required": ["city", "zip"], "additionalProperties": False},
            "order": {"type": "object", "properties": {
                "id": {"type": "integer", "minimum": 1, "maximum": 10000},
                "total": {"type": "number", "minimum": 0, "maximum": 500},
                "ship_to": {"$ref": "#/$defs/address"}},
                "required": ["id", "total", "ship_to"], "additionalProperties": False},
        },
    },
    "hard": {  # anyOf of two shapes, a date format, a regex, a const, a nullable field
        "type": "object",
        "properties": {
            "kind": {"const": "event"},
            "when": {"type": "string", "format": "date"},
            "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"},
            "where": {"anyOf": [
                {"type": "object", "properties": {"lat": {"type": "number", "minimum": -90, "maximum": 90},
                                                  "lon": {"type": "number", "minimum": -180, "maximum": 180}},
                 "required": ["lat", "lon"], "additionalProperties": False},
                {"type": "string", "maxLength": 30}]},
            "note": {"type": ["string", "null"], "maxLength": 60},
        },
        "required": ["kind", "when", "code", "where", "note"],
        "additionalProperties": False,
    },
}


def response_format(schema: dict[str, Any] | None) -> dict[str, Any]:
    if schema is None:
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": False}}


def is_valid(text: str, schema: dict[str, Any] | None) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    if schema is None:
        return isinstance(value, dict)
    return not any(Draft202012Validator(schema).iter_errors(value))


def timed(compile_once: Callable[[], Any], repeats: int = 20) -> tuple[float, str | None]:
    """Median milliseconds of a compile, or the error it raised."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        try:
            compile_once()
        except Exception as exc:
            return float("nan"), f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=8)
    parser.add_argument("--baseline-answers", type=int, default=2, help="unguided answers (they run to the max)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=decode_threads(GGUFBackendConfig(type="gguf", path="x")))
    parser.add_argument("--options", type=json.loads, default=None, help="llguidance JSON options (default: ours)")
    parser.add_argument("--show", action="store_true", help="print every answer")
    args = parser.parse_args()
    options = guided.JSON_OPTIONS if args.options is None else args.options

    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    from llama_cpp.llama_grammar import LlamaGrammar

    config = GGUFBackendConfig(type="gguf", path="builtin:smollm2")
    llm = llama_cpp.Llama(model_path=str(resolve_gguf_path(config.path)), n_ctx=config.n_ctx,
                          n_threads=args.threads, flash_attn=config.flash_attn, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    started = time.perf_counter()
    tokenizer = guided.build_tokenizer(vocab)
    print(f"llguidance tokenizer from the GGUF vocabulary: {(time.perf_counter() - started) * 1000:.0f} ms "
          f"(once per loaded model); {args.threads} decode thread(s); options {json.dumps(options)}")
    eos = llm.token_eos()
    mask_times: list[float] = []  # seconds per call of the llguidance logits processor (consume + mask)
    formatter = Jinja2ChatFormatter(template=llm.metadata["tokenizer.chat_template"], eos_token="<|im_end|>",
                                    bos_token="<|im_start|>")

    def answer(schema: dict[str, Any] | None, seed: int, mode: str) -> tuple[str, int, float]:
        shape = "a JSON object" if schema is None else f"JSON matching this schema: {json.dumps(schema)}"
        messages = [{"role": "user", "content": f"Invent a realistic record and reply with {shape}"}]
        prompt = llm.tokenize(formatter(messages=messages).prompt.encode(), add_bos=False, special=True)
        processors, grammar = None, None
        if mode == "llguidance":
            compiled = guided.compile_format(response_format(schema), tokenizer, options=options)
            guide = guided.GuidedDecoding(compiled, tokenizer, len(prompt))

            def timed_guide(input_ids: Any, scores: Any) -> Any:
                started = time.perf_counter()
                scores = guide(input_ids, scores)
                mask_times.append(time.perf_counter() - started)
                return scores

            processors = [timed_guide]
        elif mode == "llama-grammar":
            grammar = LlamaGrammar.from_json_schema(json.dumps(schema or {"type": "object"}), verbose=False)
        llm.set_seed(seed)
        tokens: list[int] = []
        first = 0.0
        for token in llm.generate(prompt, temp=0.7, top_p=1.0, top_k=0, min_p=0.0, repeat_penalty=1.0,
                                  logits_processor=processors, grammar=grammar):
            first = first or time.perf_counter()
            if llama_cpp.llama_vocab_is_eog(vocab, token) or len(tokens) >= args.max_tokens:
                break
            tokens.append(token)
        rate = (len(tokens) - 1) / (time.perf_counter() - first) if len(tokens) > 1 else 0.0
        return bytes(llm.detokenize(tokens)).decode(errors="replace"), len(tokens), rate

    print("\ncompile (median of 20, cached tokenizer)")
    print(f"  {'schema':<12} {'llguidance':>12} {'LlamaGrammar':>14}  unenforced / errors")
    for name, schema in SCHEMAS.items():
        fmt = response_format(schema)
        ours, error = timed(lambda fmt=fmt: guided.compile_format(fmt, tokenizer, options=options))
        theirs, their_error = timed(lambda schema=schema: LlamaGrammar.from_json_schema(
            json.dumps(schema or {"type": "object"}), verbose=False))
        notes = [] if error is None else [f"llguidance: {error}"]
        if error is None:
            notes += list(guided.compile_format(fmt, tokenizer, options=options).unenforced)
        if their_error:
            notes.append(f"LlamaGrammar: {their_error}")
        print(f"  {name:<12} {ours:>9.2f} ms {theirs:>11.2f} ms  {'; '.join(notes) or '-'}")

    print(f"\ngeneration ({args.answers} answers each, {args.baseline_answers} unguided; temperature 0.7, "
          f"max {args.max_tokens} tokens; modes interleaved per seed so machine load hits all alike)")
    print(f"  {'schema':<12} {'mode':<14} {'valid':>6} {'cut':>4} {'tok/s':>6} {'tokens':>7} {'mask ms':>8}  "
          "first answer")
    for name, schema in SCHEMAS.items():
        results: dict[str, list[tuple[str, int, float]]] = {mode: [] for mode in MODES}
        failures: dict[str, str] = {}
        mask_times.clear()
        for seed in range(args.answers):
            for mode in MODES:
                if mode in failures or (mode == "unguided" and seed >= args.baseline_answers):
                    continue
                try:
                    results[mode].append(answer(schema, seed, mode))
                except Exception as exc:
                    failures[mode] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
        for mode, answers in results.items():
            if mode in failures:
                print(f"  {name:<12} {mode:<14} failed: {failures[mode]}")
                continue
            valid = sum(is_valid(text, schema) for text, _, _ in answers)
            rates = [rate for _, _, rate in answers if rate]
            tokens = statistics.median(count for _, count, _ in answers)
            mask = f"{statistics.mean(mask_times) * 1000:.2f}" if mode == "llguidance" and mask_times else "-"
            cut = sum(count >= args.max_tokens for _, count, _ in answers)
            example = answers[0][0].replace("\n", " ")[:44]
            print(f"  {name:<12} {mode:<14} {valid:>3}/{len(answers):<2} {cut:>4} {statistics.median(rates):>6.1f} "
                  f"{tokens:>7.0f} {mask:>8}  {example}")
            for text, _, _ in answers if args.show else ():
                print(f"      {'ok ' if is_valid(text, schema) else 'BAD'} {text!r}")
    print(f"\n(eos token {eos}; cut: answers that reached max tokens; tok/s: decode after the first token, median "
          "over answers; tokens: median; mask ms: the llguidance logits processor per token, mean)")


if __name__ == "__main__":
    main()
