"""A replica dies mid-load (its TCP proxy resets every connection and refuses new ones) while concurrent
clients stream and complete. With a second replica, or a fallback model, no request sees an error:
deterministic streams cut mid-answer are resumed elsewhere (gateway/resume.py; the kill comes while a stream is
mid-answer on the doomed replica, so at least one is). Sampled streams cannot be
resumed (another replica would write another answer): those already cut end with an error event."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.routing.e2e import config, records, sample, upstreams
from tests.routing.proxy import KillableProxy
from tests.support.gateway import RunningGateway, run_gateway

WORDS = " ".join(f"w{i}" for i in range(10))
TOTAL, CONCURRENCY, KILL_AFTER = 160, 16, 48


async def one(client: httpx.AsyncClient, url: str, model: str, stream: bool, temperature: float | None,
              mid_stream: Callable[[str], Awaitable[None]]) -> str:
    """ok | cut (a 200 stream that ended with an error event) | error (anything else the client saw).
    `mid_stream(target)` is awaited once a stream's answer has started, with the replica serving it."""
    body = {"model": model, "messages": [{"role": "user", "content": WORDS}], "stream": stream,
            "temperature": temperature}
    try:
        if not stream:
            response = await client.post(url, json=body)
            ok = response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == WORDS
            return "ok" if ok else f"error {response.status_code}"
        async with client.stream("POST", url, json=body) as response:
            if response.status_code != 200:
                await response.aread()
                return f"error {response.status_code}"
            events = []
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    events.append(line[6:])
                    if len(events) == 2:  # the role chunk and the first words are out: the answer is under way
                        await mid_stream(response.headers.get("x-sluice-target", ""))
    except httpx.HTTPError as exc:
        return f"error {type(exc).__name__}"
    if events[-1] == "[DONE]":
        text = "".join(orjson.loads(e)["choices"][0]["delta"].get("content") or ""
                       for e in events[:-1] if orjson.loads(e).get("choices"))
        return "ok" if text == WORDS else "error wrong text"
    return "cut" if "error" in orjson.loads(events[-1]) else "error no [DONE]"


async def load(gw: RunningGateway, model: str, proxy: KillableProxy, temperature: float | None) -> Counter[str]:
    url = gw.url + "/v1/chat/completions"
    numbers = itertools.count()
    outcomes: Counter[str] = Counter()
    killed = asyncio.Event()
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def mid_stream(target: str) -> None:
            """The kill comes while a stream is mid-answer on the doomed replica (so one must be resumed), once
            KILL_AFTER requests have finished."""
            if target == "a" and outcomes.total() >= KILL_AFTER and not killed.is_set():
                killed.set()
                await asyncio.to_thread(proxy.kill)  # the others keep going meanwhile

        async def worker() -> None:
            while (n := next(numbers)) < TOTAL:
                outcomes[await one(client, url, model, n % 2 == 0, temperature, mid_stream)] += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return outcomes


@pytest.mark.parametrize("sampling", ["deterministic", "sampled"])
@pytest.mark.parametrize("shape", ["second_replica", "fallback_model"])
def test_killing_a_replica_mid_load_fails_no_request(tmp_path: Path, shape: str, sampling: str) -> None:
    db = tmp_path / "log.db"
    with upstreams("a", "b", token_delay_s=0.02) as ups, ExitStack() as stack:
        doomed = stack.enter_context(KillableProxy(ups["a"][1]))
        backends = {"a": doomed.url, "b": ups["b"][1]}
        a, b = {"backend": "a", "model": "up-model"}, {"backend": "b", "model": "up-model"}
        models: dict[str, Any] = ({"m": {"targets": [a, b]}} if shape == "second_replica" else
                                  {"m": {"targets": [a], "fallbacks": ["spare"]}, "spare": {"targets": [b]}})
        no_cache = {"exact": {"enabled": False}}  # every request must reach an upstream
        with run_gateway(config(db, backends, models, cache=no_cache)) as gw:
            outcomes = asyncio.run(load(gw, "m", doomed, 0.0 if sampling == "deterministic" else None))
            breaker_a = sample(gw, "sluice_circuit_breaker_state", target="a", upstream_model="up-model")
            resumed = sample(gw, "sluice_stream_resumes_total", model="m", outcome="ok")
    logged = records(db)
    cut_in_log = [r for r in logged if r.status_code == 200 and r.error_class is not None]
    retried = [r for r in logged if r.attempts > 1]
    print(f"\n[{shape}, {sampling}] {TOTAL} requests, {CONCURRENCY} concurrent, replica a killed after "
          f"{KILL_AFTER}: {dict(outcomes)}; retried {len(retried)} (attempts {Counter(r.attempts for r in logged)}); "
          f"streams resumed {resumed:g}; served by {Counter(r.target for r in logged)}; breaker a = {breaker_a:g}")
    assert not [k for k in outcomes if k.startswith("error")], outcomes
    assert outcomes["ok"] + outcomes["cut"] == TOTAL
    assert outcomes["cut"] == len(cut_in_log)  # each cut stream is in the log as a 200 with an error
    assert all(r.stream and r.target == "a" and r.attempts == 1 for r in cut_in_log)
    assert retried, "the kill should have failed some first attempts"
    assert breaker_a == 2  # open: the dead replica is out of rotation
    if sampling == "deterministic":
        assert outcomes["cut"] == 0 and len(logged) == TOTAL
        resumed_rows = [r for r in logged if r.stream and r.attempts > 1 and r.response_body == WORDS]
        assert len(resumed_rows) >= resumed > 0  # streams cut mid-answer finished whole on the other side
    else:
        assert resumed == 0
