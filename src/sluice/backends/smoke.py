"""`python -m sluice.backends.smoke [PATH]`: load a GGUF file and generate one token, as an install-time check.

Run it in a child process: a llama.cpp build that uses an instruction this CPU refuses dies here with SIGILL
(exit 132), where it can be named and fixed, instead of in the gateway on the first request.
"""

from __future__ import annotations

import sys
import time

from sluice.backends.gguf import resolve_gguf_path


def smoke(path: str) -> str:
    """Greedy-decode one token from `path` and describe the run in one line."""
    import llama_cpp

    file = resolve_gguf_path(path)
    started = time.perf_counter()
    llm = llama_cpp.Llama(model_path=str(file), n_ctx=64, n_threads=1, verbose=False)
    tokens = llm.tokenize(b"The capital of France is", add_bos=True)
    token = next(iter(llm.generate(tokens, temp=0.0)))
    elapsed_ms = (time.perf_counter() - started) * 1000
    features = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
    return (f"llama.cpp smoke generation passed: {file.name}, token {token} "
            f"({llm.detokenize([token]).decode(errors='replace')!r}) in {elapsed_ms:.0f} ms\n  CPU: {features}")


def main(argv: list[str]) -> int:
    path = argv[0] if argv else "builtin:smollm2"
    try:
        print(smoke(path))
    except Exception as exc:  # a plain failure (missing file, no package) is reported; a crash kills us
        print(f"error: llama.cpp smoke generation failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
