"""`sluice sim`: vLLM's flag names, clear start-up errors, and a real server from the command line."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import openai
import pytest
from typer.testing import CliRunner

from sluice.cli import app
from tests.support.servers import free_port


def test_help_lists_vllms_flags() -> None:
    result = CliRunner().invoke(app, ["sim", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in ("--model", "--gpu", "--tensor-parallel-size", "--quantization", "--max-num-seqs",
                 "--max-num-batched-tokens", "--max-model-len", "--gpu-memory-utilization", "--seed", "--port",
                 "--host", "--fault", "--tool-call-rate", "SIMULATED"):
        assert flag in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "llama-3.1-8b", "--gpu", "h1000"], "unknown GPU"),
    (["--model", "llama-3.1-70b", "--gpu", "l4"], "would not start"),
    (["--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--fault", "explode"], "unknown kind"),
])
def test_impossible_setups_exit_with_a_clear_message(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["sim", *args], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert message in result.output


@pytest.fixture
def cli_server() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sluice", "sim", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--max-model-len",
         "4096", "--port", str(port), "--fault", "error:status=503,rate=0", "--seed", "3", "--tool-call-rate", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        for line in process.stderr:  # uvicorn logs here once it listens
            if "Uvicorn running on" in line:
                break
        else:
            pytest.fail("sluice sim exited before serving")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.slow
def test_the_command_serves_a_simulated_llama_on_an_h100(cli_server: str) -> None:
    client = openai.OpenAI(base_url=f"{cli_server}/v1", api_key="x", max_retries=0)
    assert client.models.list().data[0].id == "llama-3.1-8b"
    answer = client.chat.completions.create(model="llama-3.1-8b", messages=[{"role": "user", "content": "hi"}],
                                            max_tokens=16)
    assert answer.usage is not None and answer.usage.completion_tokens == 16
    state = httpx.get(f"{cli_server}/sim/state").json()
    assert state["simulated"] is True and state["max_num_seqs"] == 1024 and state["max_model_len"] == 4096
    assert httpx.get(f"{cli_server}/sim/faults").json()["errors"][0]["status"] == 503
    tools = [{"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}]
    called = client.chat.completions.create(model="llama-3.1-8b", messages=[{"role": "user", "content": "time?"}],
                                            tools=tools)  # type: ignore[arg-type]  # auto, at --tool-call-rate 1
    assert called.choices[0].finish_reason == "tool_calls"
