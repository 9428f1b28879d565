"""What a streaming output guard does to time to first token and to the gaps between tokens, as a client sees it.

    python benchmarks/guard_stream_ttft.py [--requests 20] [--token-delay 0.02]

A loopback upstream streams one word per chunk every `--token-delay` seconds (the project's test upstream,
echoing a 60-word prompt); the gateway runs in this process. Each guard set is measured on the same requests:
none; a keyword and a regex guard on answers (checked at every chunk, hold-back 64 characters); the starting
set (pii masking, injection, toxicity; pii and toxicity paced every 128 characters). Client-side P50 TTFT
(first content byte) and P50 of each request's mean inter-token gap.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support: the loopback servers

from tests.support.gateway import run_gateway, upstream_config
from tests.support.openai_server import make_openai_upstream
from tests.support.servers import serve_app

PROMPT = " ".join(f"word{index}" for index in range(60))
SETS: dict[str, dict[str, Any]] = {
    "none": {},
    "keyword + regex (every chunk)": {
        "words": {"type": "keyword", "words": ["bomb", "nerve agent", "ricin"], "direction": "output"},
        "secrets": {"type": "regex", "patterns": [r"sk-[A-Za-z0-9]{20,}"], "direction": "output"}},
    "pii + injection + toxicity": {"pii": {"type": "pii"}, "injection": {"type": "injection"},
                                   "toxicity": {"type": "toxicity"}},
}


def measure(url: str, requests: int) -> tuple[float, float]:
    ttfts, gaps = [], []
    with httpx.Client(timeout=60) as client:
        for _ in range(requests):
            started = time.perf_counter()
            arrivals = []
            with client.stream("POST", url + "/v1/chat/completions", json={
                    "model": "m", "stream": True, "max_tokens": 60,
                    "messages": [{"role": "user", "content": PROMPT}]}) as response:
                for line in response.iter_lines():
                    if line.startswith("data: {") and '"content":"word' in line.replace(" ", ""):
                        arrivals.append(time.perf_counter())
            ttfts.append(arrivals[0] - started)
            gaps.append((arrivals[-1] - arrivals[0]) / max(1, len(arrivals) - 1))
    return statistics.median(ttfts) * 1000, statistics.median(gaps) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--token-delay", type=float, default=0.02)
    args = parser.parse_args()
    upstream = make_openai_upstream(models=["up-model"], token_delay_s=args.token_delay, default_max_tokens=60)
    print(f"upstream: one word (~7 characters) per chunk every {args.token_delay * 1000:g} ms; "
          f"{args.requests} streamed requests per guard set\n")
    print(f"{'guards':<32}{'TTFT P50 ms':>12}{'mean gap P50 ms':>17}")
    with serve_app(upstream) as upstream_url, tempfile.TemporaryDirectory() as tmp:
        for label, guards in SETS.items():
            config = upstream_config(upstream_url, Path(tmp) / f"{len(label)}.db", safety={"guards": guards},
                                     models={"m": {"targets": [{"backend": "up", "model": "up-model"}],
                                                   "guards": list(guards), "cache": {"exact": {"enabled": False}}}})
            with run_gateway(config) as gateway:
                measure(gateway.url, 2)  # warm-up
                ttft, gap = measure(gateway.url, args.requests)
            print(f"{label:<32}{ttft:>12.1f}{gap:>17.2f}")


if __name__ == "__main__":
    main()
