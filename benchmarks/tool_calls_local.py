"""Tool calls on the local GGUF model: grammar compile time, decode speed and validity per tool_choice.

    python benchmarks/tool_calls_local.py [--answers 6] [--max-tokens 256] [--threads N]

Compile: the tool grammar (sluice.backends._local_tools) for 2 and 8 tools, `required` and `auto`, with
llguidance's tokenizer already built (median of 20). Generation: for each tool_choice, `--answers` streamed chat
answers of the bundled SmolLM2-135M (temperature 0.7, seeds 0..N-1, in-process: no worker hop), with the speed
(an answer's tokens over its whole time), the time to the first output (for a call: its name), how the answers
finished, and how many calls have arguments that parse and validate against their tool's schema (jsonschema).
About a minute on 2 cores; numbers are in docs/tool-calling.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import Counter
from typing import Any

from jsonschema import Draft202012Validator

from sluice.backends._local_tools import compile_tools, tool_plan
from sluice.backends.gguf import GGUFBackend
from sluice.backends.guided import build_tokenizer
from sluice.backends.types import BackendCall, ChatCompletionRequest
from sluice.config import GGUFBackendConfig

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                            "unit": {"enum": ["celsius", "fahrenheit"]}},
           "required": ["city", "unit"], "additionalProperties": False}
FLIGHT = {"$ref": "#/$defs/booking", "$defs": {
    "airport": {"type": "string", "pattern": "^[A-Z]{3}$"},
    "booking": {"type": "object", "properties": {
        "origin": {"$ref": "#/$defs/airport"}, "destination": {"$ref": "#/$defs/airport"},
        "date": {"type": "string", "format": "date"},
        "seats": {"type": "integer", "minimum": 1, "maximum": 9}},
        "required": ["origin", "destination", "date", "seats"], "additionalProperties": False}}}
SCHEMAS = {"get_weather": WEATHER, "book_flight": FLIGHT}
TOOLS = [{"type": "function", "function": {"name": name, "description": f"{name.replace('_', ' ')}",
                                           "parameters": schema}} for name, schema in SCHEMAS.items()]
CHOICES: dict[str, Any] = {"none": "none", "auto": "auto", "required": "required",
                           "named": {"type": "function", "function": {"name": "book_flight"}}}
PROMPT = "Book a flight from Oslo to Rome on 2025-06-01 for two, and tell me the weather in Rome."


def request(choice: Any, tools: list[dict[str, Any]] = TOOLS, **params: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "smol", "messages": [{"role": "user", "content": PROMPT}],
                                                 "tools": tools, "tool_choice": choice, **params})


def many_tools(count: int) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": f"{name}_{index}", "parameters": schema}}
            for index in range(count // 2) for name, schema in SCHEMAS.items()]


def compile_times(tokenizer: Any) -> None:
    print("compile (ms, median of 20):")
    for label, tools in (("2 tools", TOOLS), ("8 tools", many_tools(8))):
        for choice in ("required", "auto"):
            plan = tool_plan(request(choice, tools))
            assert plan is not None
            times = [compile_tools(plan, tokenizer).compile_s * 1000 for _ in range(20)]
            print(f"  {label:8} {choice:9} {statistics.median(times):6.2f}")


async def generate(backend: GGUFBackend, choice: Any, seed: int, max_tokens: int) -> dict[str, Any]:
    call = BackendCall("chat", request(choice, temperature=0.7, seed=seed, max_tokens=max_tokens), "smol", "bench")
    started, first, last = time.perf_counter(), None, None
    finish, tokens, arguments, names = None, 0, {}, {}
    async for chunk in backend.stream(call):
        if chunk.has_output:
            first = first or time.perf_counter()
            last = time.perf_counter()
        for choice_ in chunk.payload.get("choices") or ():
            for delta in choice_["delta"].get("tool_calls", []):
                if "id" in delta:
                    names[delta["index"]] = delta["function"]["name"]
                arguments[delta["index"]] = arguments.get(delta["index"], "") + delta["function"]["arguments"]
        finish = chunk.finish_reason or finish
        tokens = chunk.usage.completion_tokens if chunk.usage else tokens
    valid = 0
    for index, name in names.items():
        try:
            Draft202012Validator(SCHEMAS[name]).validate(json.loads(arguments[index]))
            valid += 1
        except Exception:  # invalid or cut: counted as not valid
            pass
    # Per answer: its tokens over its whole time (prompt, grammar compile and the envelope's forced tokens in).
    return {"finish": finish, "tokens": tokens, "calls": len(names), "valid": valid,
            "tok_s": tokens / ((last or time.perf_counter()) - started), "ttft_s": (first or started) - started}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    backend = GGUFBackend("smol", GGUFBackendConfig(type="gguf", path="builtin:smollm2", n_threads=args.threads))
    await backend.start()
    model: Any = backend._loaded()._model  # the loaded runtime, for its vocabulary
    started = time.perf_counter()
    tokenizer = build_tokenizer(model._vocab)
    print(f"llguidance tokenizer: {(time.perf_counter() - started) * 1000:.0f} ms (once per model)")
    compile_times(tokenizer)
    print(f"generation ({args.answers} answers each, max {args.max_tokens} tokens):")
    print(f"  {'choice':9} {'tok/s':>6} {'TTFT s':>7} {'tokens':>7} {'calls':>6} {'valid':>6}  finish")
    for label, choice in CHOICES.items():
        runs = [await generate(backend, choice, seed, args.max_tokens) for seed in range(args.answers)]
        finishes = Counter(run["finish"] for run in runs)
        median = {key: statistics.median(run[key] for run in runs) for key in ("tok_s", "ttft_s", "tokens")}
        print(f"  {label:9} {median['tok_s']:6.1f} {median['ttft_s']:7.2f} {median['tokens']:7.0f} "
              f"{sum(r['calls'] for r in runs):6} {sum(r['valid'] for r in runs):6}  {dict(finishes)}")
    await backend.close()


if __name__ == "__main__":
    asyncio.run(main())
