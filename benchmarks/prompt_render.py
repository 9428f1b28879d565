"""What a prompt costs per request: resolving `name@label` (kept, and read from the store) and rendering it.

    python benchmarks/prompt_render.py [--repeat 20000]

Part 1: rendering compiled versions (Jinja2 sandbox, compiled once per content): a short text prompt with two
variables; a chat prompt (system + user, four variables, a loop over five history lines, a default); a 4 KB
system prompt with three variables. Also the one-off check and compile of a new version.
Part 2: the request-time resolver (`PromptResolver`) on a SQLite store: a kept `support@production` (what every
request pays until the prompt changes), the same plus the render, and a read from the store (after a change).
Reports P50/P99 in µs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sluice.prompts import (
    Message,
    PromptResolver,
    PromptSpec,
    Variable,
    check_spec,
    compiled,
    create_version,
    set_label,
)
from sluice.store import create_engine, migrate

SHORT = PromptSpec(kind="text", template="Summarise this for {{ audience }}:\n\n{{ text }}",
                   variables=(Variable("audience"), Variable("text")), config={"temperature": 0.2})
CHAT = PromptSpec(
    kind="chat",
    messages=(Message("system", "You are a {{ tone }} support agent for {{ product }}. Answer in one paragraph."),
              Message("user", "Earlier:\n{% for line in history %}- {{ line }}\n{% endfor %}\n"
                              "Question: {{ question }}")),
    variables=(Variable("product"), Variable("question"), Variable("history", default=[]),
               Variable("tone", default="friendly")),
    config={"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 512})
POLICY = ("Refunds are issued within 14 days of purchase when the item is unused and in its original packaging. "
          * 40)[:4000]
LONG = PromptSpec(kind="text", template="{{ policy_intro }}\n" + POLICY + "\nCustomer {{ customer }} asks: {{ q }}",
                  variables=(Variable("policy_intro"), Variable("customer"), Variable("q")))
CHAT_VARIABLES = {"product": "Sluice", "question": "Why do I get a 429?",
                  "history": [f"message {n}" for n in range(5)]}


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


def timed(work: Callable[[], Any], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        samples.append((time.perf_counter() - started) * 1e6)
    return percentiles(samples)


async def timed_async(work: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await work()
        samples.append((time.perf_counter() - started) * 1e6)
    return percentiles(samples)


def row(label: str, p50_p99: tuple[float, float]) -> None:
    print(f"{label:<62}{p50_p99[0]:>9.1f}{p50_p99[1]:>9.1f}")


def renders(repeat: int) -> None:
    print(f"{'render (compiled, cached by content hash)':<62}{'P50 µs':>9}{'P99 µs':>9}")
    short, chat, long = compiled(SHORT), compiled(CHAT), compiled(LONG)
    row("text, 2 variables", timed(lambda: short.render({"audience": "a lawyer", "text": "Terms apply."}), repeat))
    row("chat, 2 messages, 4 variables, a 5-line loop", timed(lambda: chat.render(CHAT_VARIABLES), repeat))
    row("text, 4 KB, 3 variables", timed(lambda: long.render({"policy_intro": "Policy:", "customer": "Ana",
                                                              "q": "Can I return it?"}), repeat))
    row("check + compile a new chat version (once per version)", timed(lambda: check_spec(CHAT), repeat // 20))


async def resolution(repeat: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        await migrate(url)
        engine = create_engine(url)
        try:
            await create_version(engine, "support", CHAT)
            await set_label(engine, "support", "production", 1)
            resolver = PromptResolver(engine)
            await resolver.resolve("support@production")
            print(f"\n{'request-time resolver (SQLite store)':<62}{'P50 µs':>9}{'P99 µs':>9}")
            row("resolve support@production, kept", await timed_async(
                lambda: resolver.resolve("support@production"), repeat))
            row("resolve (kept) + render the chat prompt", await timed_async(
                lambda: resolver.render("support@production", CHAT_VARIABLES), repeat))

            async def changed_then_resolve() -> None:
                resolver.changed("support")
                await resolver.resolve("support@production")

            row("resolve after a change: read from the store", await timed_async(changed_then_resolve,
                                                                                   repeat // 20))
        finally:
            await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20_000)
    repeat = parser.parse_args().repeat
    renders(repeat)
    asyncio.run(resolution(repeat))


if __name__ == "__main__":
    main()
