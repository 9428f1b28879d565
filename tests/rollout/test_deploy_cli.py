"""`sluice deploy …` against a real gateway on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from sluice.cli import app
from tests.rollout.support import chat, rollout_config, wait_for
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.openai_server import OpenAIUpstream
from tests.support.servers import free_port

runner = CliRunner()
ENV = {"COLUMNS": "200", "SLUICE_MASTER_KEY": "sk-admin", "USER": "dana"}


@pytest.fixture
def gw(upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> Iterator[RunningGateway]:
    _, url = upstream
    config = rollout_config(url, f"sqlite:///{tmp_path / 's.db'}")
    config["server"] = {"master_key": "sk-admin"}
    with run_gateway(config) as running:
        yield running


def deploy(gw: RunningGateway, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["deploy", *args, "--url", gw.url], env=ENV)
    return result.exit_code, result.output


def test_status_lists_deployments_as_a_table_and_json(gw: RunningGateway) -> None:
    code, out = deploy(gw, "status")
    assert code == 0, out
    assert "blue:up-model" in out and "green:up-model" in out and "0 %" in out and "config" in out
    code, out = deploy(gw, "status", "--json")
    assert json.loads(out)["data"][0]["model"] == "m"


def test_set_weight_then_history_shows_who_why_and_what(gw: RunningGateway) -> None:
    code, out = deploy(gw, "set-weight", "m", "25", "--reason", "first slice")
    assert code == 0, out
    assert "m v1" in out and "25 %" in out
    code, out = deploy(gw, "set-weight", "m", "40", "--actor", "erin")
    assert code == 0, out
    code, out = deploy(gw, "history", "m")
    assert code == 0, out
    lines = [line for line in out.splitlines() if "set-weight" in line]
    assert "erin" in lines[0] and "weight 25 % -> 40 %" in lines[0]
    assert "dana" in lines[1] and "first slice" in lines[1] and "weight 0 % -> 25 %" in lines[1]
    code, out = deploy(gw, "history", "m", "--json", "-n", "1")
    assert [e["actor"] for e in json.loads(out)["data"]] == ["erin"]


def test_blue_green_switch_and_back(gw: RunningGateway) -> None:
    code, out = deploy(gw, "set-candidate", "m", "--candidate", "green:up-model", "--strategy", "blue_green")
    assert code == 0, out
    code, out = deploy(gw, "switch", "m")
    assert code == 0 and "100 %" in out, out
    code, out = deploy(gw, "switch", "m", "--json")
    assert json.loads(out)["deployment"]["candidate_weight"] == 0


def test_start_canary_passes_its_settings_and_status_shows_the_run(gw: RunningGateway) -> None:
    code, out = deploy(gw, "start-canary", "m", "-t", "green:up-model@100", "--steps", "10,50,100",
                       "--interval", "3600", "--min-requests", "80", "--threshold", "max_ttft_p99_increase=0.5",
                       "--on-exhausted", "hold", "--reason", "v2")
    assert code == 0, out
    assert "canary 1: running, step 1/3" in out
    code, out = deploy(gw, "status", "m", "--json")
    settings = json.loads(out)["canary"]["settings"]
    assert (settings["steps"], settings["min_requests"], settings["on_exhausted"]) == ([10, 50, 100], 80, "hold")
    assert settings["thresholds"]["max_ttft_p99_increase"] == 0.5
    assert settings["thresholds"]["alpha"] == 0.05  # the rest from the config
    code, out = deploy(gw, "status", "m")
    assert "next analysis in" in out
    code, out = deploy(gw, "set-weight", "m", "5")
    assert code == 1 and "a canary of `m` is running" in out
    code, out = deploy(gw, "rollback", "m", "--reason", "no")
    assert code == 0 and "rolled_back" in out, out


def test_analyze_prints_both_sides_and_every_check(gw: RunningGateway) -> None:
    with httpx.Client(base_url=gw.url, headers={"authorization": "Bearer sk-admin"}) as client:
        for side in ("stable", "candidate", "stable", "candidate"):
            assert chat(client, "u", **{"x-sluice-route": side}).status_code == 200
    wait_for(lambda: gw.state.log_writer and gw.state.log_writer.rows_written >= 4, what="log flush")
    code, out = deploy(gw, "analyze", "m", "--window", "60")
    assert code == 0, out
    assert "m: inconclusive over 60 s" in out and "error_rate" in out and "tpot" in out
    sides = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.startswith(("stable", "cand"))}
    assert sides == {"stable": "2", "candidate": "2"}


def test_set_shadow_mirrors_at_once_shows_in_status_and_history_and_turns_off(
        gw: RunningGateway, upstream: tuple[OpenAIUpstream, str]) -> None:
    fake, _ = upstream
    code, out = deploy(gw, "set-shadow", "m", "--shadow", "green:up-model", "--rate", "1", "--max-concurrency", "3",
                       "--reason", "compare green")
    assert code == 0, out
    assert "shadow green:up-model (100 %, ≤ 3 in flight)" in out
    code, out = deploy(gw, "status")
    assert "green:up-model (100 %, ≤ 3 in flight)" in out
    fake.reset()
    with httpx.Client(base_url=gw.url, headers={"authorization": "Bearer sk-admin"}) as client:
        assert chat(client, "u").status_code == 200
    mirrored = wait_for(lambda: [r for r in fake.requests if r.headers.get("x-sluice-shadow") == "1"] or None,
                        what="the mirrored call")  # picked up by the running gateway, no restart
    assert len(mirrored) == 1 and mirrored[0].body["stream"] is False
    code, out = deploy(gw, "set-shadow", "m", "--off")
    assert code == 0 and "shadow" not in out, out
    code, out = deploy(gw, "history", "m")
    lines = [line for line in out.splitlines() if "set-shadow" in line]
    assert "shadow green:up-model -> -" in lines[0]
    assert "shadow - -> green:up-model" in lines[1] and "shadow max in flight 4 -> 3" in lines[1]
    assert "compare green" in lines[1]
    code, out = deploy(gw, "set-shadow", "m")
    assert code == 2 and "give --shadow TARGET" in out
    code, out = deploy(gw, "set-shadow", "m", "--shadow", "purple")
    assert code == 1 and "Unknown backend `purple`" in out and "(param: shadow.0.backend)" in out


def test_errors_are_clear(gw: RunningGateway) -> None:
    code, out = deploy(gw, "set-weight", "nope", "10")
    assert code == 1 and "The model `nope` does not exist" in out
    code, out = deploy(gw, "set-weight", "m", "150")
    assert code == 1 and "(param: weight)" in out
    code, out = deploy(gw, "start-canary", "m", "--steps", "5,x")
    assert code == 2 and "expected comma-separated percentages" in out
    result = runner.invoke(app, ["deploy", "status", "--url", gw.url], env={**ENV, "SLUICE_MASTER_KEY": "wrong"})
    assert result.exit_code == 1 and "Invalid or missing API key" in result.output
    result = runner.invoke(app, ["deploy", "status", "--url", f"http://127.0.0.1:{free_port()}"], env=ENV)
    assert result.exit_code == 1 and "cannot reach the gateway" in result.output
