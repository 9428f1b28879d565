"""`sluice models` against a real gateway (its admin API on SQLite): register versions with a LoRA adapter the
test writes, list, show, move aliases with their history, diff; bad input is a clear error."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from sluice.cli import app
from tests.support.gateway import RunningGateway, run_gateway, upstream_config

runner = CliRunner()
WIDE = {"COLUMNS": "200"}
BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture
def gateway(upstream: tuple[object, str], tmp_path: Path) -> Iterator[RunningGateway]:
    with run_gateway(upstream_config(upstream[1], tmp_path / "db.sqlite")) as gw:
        yield gw


def models(gw: RunningGateway, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["models", *args, "--url", gw.url], env=WIDE)
    return result.exit_code, result.output


def adapter(folder: Path, base: str = BASE, rank: int = 8) -> Path:
    """A PEFT LoRA adapter folder as PEFT writes one (config and weights; the weights' bytes are made up)."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": rank, "lora_alpha": 16, "base_model_name_or_path": base,
        "target_modules": ["q_proj", "v_proj"]}))
    (folder / "adapter_model.safetensors").write_bytes(b"\x00" * 64 + bytes(range(256)))
    return folder


def test_register_show_alias_history_diff(gateway: RunningGateway, tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text('{"messages": []}\n')
    code, out = models(gateway, "register", "support", "--base", BASE, "--revision", "abc123",
                       "--param", "temperature=0.2", "--target", "local:smollm2", "--actor", "ana")
    assert code == 0 and "registered support@1" in out, out
    lora = adapter(tmp_path / "lora")
    code, out = models(gateway, "register", "support", "--base", BASE, "--adapter", str(lora), "--dataset",
                       str(data), "--parent", "1", "--param", "temperature=0.4", "--prompt", "support@3")
    assert code == 0 and "registered support@2" in out, out

    shown = httpx.get(gateway.url + "/admin/models/support/versions/2").json()
    expected_hash = hashlib.sha256(b"adapter_config.json\0" + (lora / "adapter_config.json").read_bytes()
                                   + b"adapter_model.safetensors\0"
                                   + (lora / "adapter_model.safetensors").read_bytes()).hexdigest()
    assert shown["adapter"] == {"uri": str(lora.resolve()), "sha256": expected_hash, "rank": 8, "alpha": 16.0,
                                "base_model": BASE}
    assert shown["lineage"] == {"dataset": str(data), "dataset_sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
                                "parent_version": 1}
    assert shown["params"] == {"temperature": 0.4} and shown["prompt"] == "support@3"

    assert models(gateway, "alias", "support", "production", "1", "--reason", "first release")[0] == 0
    code, out = models(gateway, "alias", "support", "production", "2", "--actor", "ana", "--reason", "evals passed")
    assert code == 0 and "support@production: 1 → 2" in out
    code, out = models(gateway, "history", "support")
    assert code == 0 and "first release" in out and "evals passed" in out
    events = httpx.get(gateway.url + "/admin/models/support/aliases").json()["data"]
    assert [(e["from_version"], e["to_version"]) for e in events] == [(None, 1), (1, 2)]

    code, out = models(gateway, "show", "support@production")
    assert code == 0 and "abc123" not in out and expected_hash in out  # production is version 2 now
    code, out = models(gateway, "list")
    assert code == 0 and "support" in out and "production → 2" in out
    code, out = models(gateway, "diff", "support@1", "production")
    assert code == 0 and "params.temperature" in out and "0.2" in out and "0.4" in out and "adapter" in out


def test_bad_input_is_a_clear_error(gateway: RunningGateway, tmp_path: Path) -> None:
    code, out = models(gateway, "register", "support", "--base", BASE, "--adapter",
                       str(adapter(tmp_path / "other", base="meta-llama/Llama-3.1-8B")))
    assert code == 2 and "trained on 'meta-llama/Llama-3.1-8B'" in out
    code, out = models(gateway, "register", "support", "--base", BASE, "--param", "temperature")
    assert code == 2 and "expected KEY=VALUE" in out
    code, out = models(gateway, "show", "nothing@1")
    assert code == 1 and "404" in out
    assert models(gateway, "register", "support", "--base", BASE)[0] == 0
    code, out = models(gateway, "alias", "support", "production", "7")
    assert code == 1 and "404" in out and "7" in out
    code, out = models(gateway, "alias", "support", "Bad Alias!", "1")
    assert code == 1 and "400" in out
    response = httpx.post(gateway.url + "/admin/models/support/versions", json={"base_model": BASE, "x": 1})
    assert response.status_code == 400 and response.json()["error"]["param"] == "x"
    response = httpx.post(gateway.url + "/admin/models/support/versions", json={
        "base_model": BASE, "adapter": {"uri": "s3://a/b", "base_model": "other"}})
    assert response.status_code == 400 and response.json()["error"]["code"] == "adapter_base_mismatch"


def test_a_registry_version_becomes_a_deployments_candidate(gateway: RunningGateway) -> None:
    assert models(gateway, "register", "support", "--base", BASE, "--target", "up:up-model")[0] == 0
    assert models(gateway, "register", "support", "--base", BASE)[0] == 0  # no targets
    assert models(gateway, "register", "support", "--base", BASE, "--target", "elsewhere:x")[0] == 0
    assert models(gateway, "alias", "support", "staging", "1")[0] == 0

    def deploy(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["deploy", *args, "--url", gateway.url], env=WIDE)
        return result.exit_code, result.output

    code, out = deploy("set-candidate", "m", "--version", "support@staging", "--weight", "10")
    assert code == 0, out
    deployment = httpx.get(gateway.url + "/admin/deployments/m").json()
    assert [(t["backend"], t["model"]) for t in deployment["candidate"]] == [("up", "up-model")]
    history = httpx.get(gateway.url + "/admin/deployments/m/history").json()["data"]
    assert history[0]["reason"] == "registry version support@1"
    code, out = deploy("set-candidate", "m", "--version", "support@2")
    assert code == 1 and "support@2 names no serving targets" in out
    code, out = deploy("set-candidate", "m", "--version", "support@3")
    assert code == 1 and "served by elsewhere, which this gateway does not configure" in out
    code, out = deploy("set-candidate", "m", "--version", "nothing@1")
    assert code == 1 and "unknown model 'nothing'; registered models: support" in out
    code, out = deploy("set-candidate", "m")
    assert code == 2 and "--candidate" in out


def test_the_timeline_says_which_versions_served_and_what_share_they_took(gateway: RunningGateway) -> None:
    from tests.support.polling import wait_for

    assert models(gateway, "register", "support", "--base", BASE, "--target", "up:up-model",
                  "--param", "temperature=0.2")[0] == 0
    before = httpx.get(gateway.url + "/admin/timeline/m").json()
    assert before["deployment_version"] is None and before["notes"] == ["no stored change by then: the config's "
                                                                          "deployment"]
    [stable] = before["sides"]
    assert stable["targets"][0]["version"]["version"] == 1 and stable["configured_share"] == 100.0
    moment = before["at"]

    assert models(gateway, "register", "support", "--base", BASE, "--target", "up:up-model-v2",
                  "--adapter", "s3://adapters/support-v2")[0] == 0
    result = runner.invoke(app, ["deploy", "set-candidate", "m", "--version", "support@2", "--weight", "50",
                                 "--url", gateway.url], env=WIDE)
    assert result.exit_code == 0, result.output
    for n in range(20):
        httpx.post(gateway.url + "/v1/chat/completions", json={
            "model": "m", "user": f"user-{n}", "messages": [{"role": "user", "content": f"hello {n}"}]})

    def now() -> dict[str, object] | None:
        found = httpx.get(gateway.url + "/admin/timeline/m", params={"window_s": 120}).json()
        return found if found["requests"] >= 20 else None

    after = wait_for(now, what="the requests in the log")
    assert after["deployment_version"] == 1 and after["change"]["reason"] == "registry version support@2"
    sides = {side["role"]: side for side in after["sides"]}  # type: ignore[attr-defined]
    assert sides["candidate"]["targets"][0]["version"]["version"] == 2
    assert sides["candidate"]["targets"][0]["version"]["adapter"]["uri"] == "s3://adapters/support-v2"
    assert sides["stable"]["targets"][0]["version"]["version"] == 1
    assert sides["stable"]["configured_share"] == sides["candidate"]["configured_share"] == 50.0
    took = sides["stable"]["observed_share"] + sides["candidate"]["observed_share"]
    assert took == pytest.approx(100.0) and 0 < sides["candidate"]["observed_share"] < 100

    then = httpx.get(gateway.url + "/admin/timeline/m", params={"at": moment}).json()  # before the change
    assert then["deployment_version"] is None and [s["role"] for s in then["sides"]] == ["stable"]
    code, out = models(gateway, "timeline", "m")
    assert code == 0 and "support@2" in out and "s3://adapters/support-v2" in out and "50 %" in out
    code, out = models(gateway, "timeline", "m", "--at", "yesterday-ish")
    assert code == 2 and "ISO-8601" in out
    code, out = models(gateway, "timeline", "nope")
    assert code == 1 and "unknown deployment 'nope'" in out
