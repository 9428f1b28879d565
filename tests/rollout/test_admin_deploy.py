"""The rollout admin API end to end: a real gateway on loopback over a real store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.rollout.support import chat, rollout_config, wait_for
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.openai_server import OpenAIUpstream


@pytest.fixture
def gw(upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> Iterator[RunningGateway]:
    _, url = upstream
    config = rollout_config(url, f"sqlite:///{tmp_path / 'sluice.db'}")
    config["server"] = {"master_key": "sk-admin"}
    with run_gateway(config) as running:
        yield running


@pytest.fixture
def admin(gw: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, headers={"authorization": "Bearer sk-admin",
                                                "x-sluice-actor": "alice"}, timeout=10) as client:
        yield client


def test_list_and_get_deployments(admin: httpx.Client) -> None:
    listing = admin.get("/admin/deployments").json()
    [m] = listing["data"]
    assert (m["model"], m["version"], m["source"], m["candidate_weight"], m["canary"]) == ("m", 0, "config", 0, None)
    assert m["stable"] == [{"backend": "blue", "model": "up-model", "weight": 100.0}]
    one = admin.get("/admin/deployments/m").json()
    assert one["candidate"][0]["backend"] == "green" and one["problem"] is None


def test_set_weight_persists_applies_at_once_and_is_audited(admin: httpx.Client, gw: RunningGateway) -> None:
    response = admin.post("/admin/deployments/m/set-weight", json={"weight": 100, "reason": "all in"})
    assert response.status_code == 200, response.text
    assert response.json()["deployment"]["version"] == 1
    with httpx.Client(base_url=gw.url, headers={"authorization": "Bearer sk-admin"}) as client:
        assert chat(client, "u1").headers["x-sluice-target"] == "green"  # in force on this replica at once
    [event] = admin.get("/admin/deployments/m/history").json()["data"]
    assert (event["action"], event["actor"], event["reason"]) == ("set-weight", "alice", "all in")
    assert (event["before"]["candidate_weight"], event["after"]["candidate_weight"]) == (0, 100)


@pytest.mark.parametrize(("path", "body", "status", "param"), [
    ("/admin/deployments/nope/set-weight", {"weight": 5}, 404, "model"),
    ("/admin/deployments/nope", None, 404, "model"),
    ("/admin/deployments/m/set-weight", {"weight": 150}, 400, "weight"),
    ("/admin/deployments/m/set-weight", {"weight": -1}, 400, "weight"),
    ("/admin/deployments/m/set-weight", {}, 400, "weight"),
    ("/admin/deployments/m/set-weight", {"weight": 5, "colour": "red"}, 400, "colour"),
    ("/admin/deployments/m/set-candidate", {"candidate": [{"backend": "purple"}]}, 400, "candidate.0.backend"),
    ("/admin/deployments/m/switch", {}, 400, "model"),  # a canary deployment does not switch
    ("/admin/deployments/m/start-canary", {"steps": [50, 10]}, 400, "steps.1"),
    ("/admin/deployments/m/start-canary", {"thresholds": {"alpha": 2}}, 400, "thresholds.alpha"),
    ("/admin/deployments/m/set-shadow", {}, 400, "shadow"),
    ("/admin/deployments/m/set-shadow", {"shadow": [{"backend": "purple"}]}, 400, "shadow.0.backend"),
    ("/admin/deployments/m/set-shadow", {"shadow": [], "sample_rate": 1.5}, 400, "sample_rate"),
    ("/admin/deployments/m/set-shadow", {"shadow": [], "max_concurrency": 0}, 400, "max_concurrency"),
    ("/admin/deployments/m/explode", {}, 400, "action"),
])
def test_bad_changes_are_openai_shaped_errors(admin: httpx.Client, path: str, body: dict[str, object] | None,
                                              status: int, param: str) -> None:
    response = admin.get(path) if body is None else admin.post(path, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["message"]
    assert admin.get("/admin/deployments/m").json()["version"] == 0  # nothing changed


def test_bad_json_and_missing_key(admin: httpx.Client, gw: RunningGateway) -> None:
    response = admin.post("/admin/deployments/m/promote", content=b"{not json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"
    assert httpx.post(f"{gw.url}/admin/deployments/m/rollback", json={}).status_code == 401
    assert httpx.get(f"{gw.url}/admin/deployments").status_code == 401


def test_canary_lifecycle_through_the_api(admin: httpx.Client) -> None:
    started = admin.post("/admin/deployments/m/start-canary",
                         json={"steps": [10, 50], "interval_s": 3600, "reason": "v2"}).json()
    assert started["deployment"]["candidate_weight"] == 10
    assert (started["canary"]["state"], started["canary"]["step"], started["canary"]["steps"]) == \
        ("running", 1, [10.0, 50.0])
    assert started["canary"]["settings"]["min_requests"] == 50  # the config's default
    conflict = admin.post("/admin/deployments/m/set-weight", json={"weight": 30})
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "canary_active"
    rolled = admin.post("/admin/deployments/m/rollback", json={"reason": "changed my mind"}).json()
    assert rolled["deployment"]["candidate_weight"] == 0 and rolled["canary"]["state"] == "rolled_back"
    listing = admin.get("/admin/deployments").json()["data"][0]
    assert listing["canary"]["state"] == "rolled_back"
    assert [e["action"] for e in admin.get("/admin/deployments/m/history").json()["data"]] == \
        ["rollback", "start-canary"]


def test_analysis_of_recent_traffic(admin: httpx.Client, gw: RunningGateway) -> None:
    with httpx.Client(base_url=gw.url, headers={"authorization": "Bearer sk-admin"}) as client:
        for i in range(6):
            side = "candidate" if i % 2 else "stable"
            assert chat(client, f"u{i}", **{"x-sluice-route": side}).status_code == 200
    wait_for(lambda: gw.state.log_writer and gw.state.log_writer.rows_written >= 6, what="log flush")
    result = admin.get("/admin/deployments/m/analysis", params={"window_s": 60}).json()
    assert result["verdict"] == "inconclusive"  # 3 a side is far below min_requests
    assert (result["stable"]["requests"], result["candidate"]["requests"]) == (3, 3)
