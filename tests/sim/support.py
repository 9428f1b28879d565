"""Simulators on an explicit cost model for the tests (no planner: exact, hand-checkable step times)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from sluice.backends.types import BackendCall, ChatCompletionRequest, CompletionRequest
from sluice.sim import Clock, FaultPlan, LinearStepCost, SchedulerConfig, Simulator, VirtualClock, make_server
from tests.support.servers import free_port

MODEL = "sim-llama-3.1-8b"  # served name; the tokenizer is Llama 3's
OVERHEAD_S = 2**-10  # about 1 ms a step: fast enough for real-clock servers in tests
COST = LinearStepCost(kv_blocks_total=1024, max_model_len=4096, overhead_s=OVERHEAD_S, prefill_token_s=2**-20,
                      decode_seq_s=2**-16)


def make_simulator(*, clock: Clock | None = None, faults: FaultPlan | None = None, seed: int = 0,
                   max_model_len: int | None = None) -> Simulator:
    """A simulator on `COST`; the virtual clock unless a clock is given."""
    config = SchedulerConfig(max_num_seqs=16, max_num_batched_tokens=512, max_model_len=max_model_len)
    return Simulator(COST, config, served_model_name=MODEL, tokenizer_model="llama-3.1-8b", seed=seed,
                     faults=faults, clock=clock or VirtualClock(), description="test cost model")


def chat_call(content: str, request_id: str = "req-1", **params: Any) -> BackendCall:
    request = ChatCompletionRequest.model_validate(
        {"model": MODEL, "messages": [{"role": "user", "content": content}], **params})
    return BackendCall(endpoint="chat", request=request, upstream_model=MODEL, request_id=request_id)


def completion_call(prompt: str | list[str], request_id: str = "req-1", **params: Any) -> BackendCall:
    request = CompletionRequest.model_validate({"model": MODEL, "prompt": prompt, **params})
    return BackendCall(endpoint="completions", request=request, upstream_model=MODEL, request_id=request_id)


@contextmanager
def serve_simulator(simulator: Simulator) -> Iterator[str]:
    """Serve through `make_server` (the CLI's path, with the connection gate) on a loopback port."""
    server = make_server(simulator, port=free_port(), log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("simulator server failed to start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def metric_samples(base_url: str) -> dict[str, float]:
    """Every sample of /metrics as `name{label=value,...}` (model_name and engine left out), parsed by
    prometheus_client's own parser."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{base_url}/metrics").text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k not in ("model_name", "engine"))
            out[f"{sample.name}{{{labels}}}"] = sample.value
    return out
