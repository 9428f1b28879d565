"""Shadow mode through a real gateway: the primary is untouched whatever the shadow does; pairs are stored
and reported (admin API and CLI); the concurrency bound holds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from sluice.cli import app as cli
from tests.support.gateway import RunningGateway, run_gateway, upstream_config
from tests.support.openai_server import OpenAIUpstream, make_openai_upstream
from tests.support.servers import free_port, serve_app

PROMPTS = ["one two three", "four five", "six seven eight nine", "ten"]
runner = CliRunner()


@pytest.fixture
def shadow_upstream() -> Iterator[tuple[OpenAIUpstream, str]]:
    app = make_openai_upstream(models=["big-model"])
    with serve_app(app) as url:
        yield app, url


def config(upstream_url: str, db: Path, shadow: dict[str, Any] | None, **rollout: Any) -> dict[str, Any]:
    backends: dict[str, Any] = {}
    model: dict[str, Any] = {"targets": [{"backend": "up", "model": "up-model"}]}
    if shadow is not None:
        backends["shadow-up"] = shadow["backend"]
        model["rollout"] = {"shadow": [{"backend": "shadow-up", "model": shadow["model"]}], **rollout}
    return upstream_config(upstream_url, db, backends=backends, models={"m": model},
                           shadow={"timeout_s": 0.3, "flush_interval_s": 0.05})


def traffic(gw: RunningGateway) -> list[Any]:
    """Non-streamed and streamed answers with the fields that must not depend on the shadow."""
    answers: list[Any] = []
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        for prompt in PROMPTS:
            body = {"model": "m", "messages": [{"role": "user", "content": prompt}], "max_tokens": 16}
            whole = client.post("/v1/chat/completions", json=body)
            payload = whole.json()
            answers.append((whole.status_code, payload["choices"], payload["usage"]))
            streamed = client.post("/v1/chat/completions", json={**body, "stream": True,
                                                                 "stream_options": {"include_usage": True}})
            events = [json.loads(line[6:]) for line in streamed.text.splitlines()
                      if line.startswith("data: {")]
            answers.append((streamed.status_code, [e["choices"] for e in events],
                            [e.get("usage") for e in events]))
    return answers


def samples(gw: RunningGateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(gw.url + "/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def stored(db: Path, *args: str) -> dict[str, Any]:
    result = runner.invoke(cli, ["deploy", "shadow-report", "m", "--db", f"sqlite:///{db}", "--since", "all",
                                 "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def request_statuses(db: Path) -> list[int]:
    import sqlite3

    with sqlite3.connect(db) as connection:
        return [row[0] for row in connection.execute("SELECT status_code FROM request_log")]


@pytest.mark.parametrize("failure", ["slow", "http_500", "refused"])
def test_a_slow_or_failing_shadow_leaves_the_primary_identical_and_is_recorded(
        upstream: tuple[OpenAIUpstream, str], shadow_upstream: tuple[OpenAIUpstream, str], tmp_path: Path,
        failure: str) -> None:
    baseline_db, shadow_db = tmp_path / "baseline.db", tmp_path / "shadow.db"
    with run_gateway(config(upstream[1], baseline_db, None)) as gw:
        baseline = traffic(gw)
    shadow_url = f"http://127.0.0.1:{free_port()}" if failure == "refused" else shadow_upstream[1]
    shadow_model = {"slow": "fault/slow_headers:5", "http_500": "fault/http_500", "refused": "big-model"}[failure]
    shadow = {"backend": {"type": "openai", "base_url": shadow_url + "/v1"}, "model": shadow_model}
    with run_gateway(config(upstream[1], shadow_db, shadow, shadow_max_concurrency=16)) as gw:
        mirrored = traffic(gw)
        metrics = samples(gw)
    assert mirrored == baseline
    assert request_statuses(shadow_db) == [200] * 8
    assert metrics[("sluice_shadow_requests_total", (("model", "m"), ("outcome", "sent")))] == 8
    report = stored(shadow_db)
    expected = {"slow": "UpstreamTimeout", "http_500": "UpstreamUnavailable", "refused": "UpstreamUnavailable"}
    assert report["pairs"] == 8 and report["primary_errors"] == 0 and report["compared"] == 0
    assert report["shadow_errors_by_type"] == {expected[failure]: 8} and report["shadow_error_rate"] == 1.0


def test_a_healthy_shadow_is_paired_compared_and_reported(
        upstream: tuple[OpenAIUpstream, str], shadow_upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    shadow = {"backend": {"type": "openai", "base_url": shadow_upstream[1] + "/v1"}, "model": "big-model"}
    with run_gateway(config(upstream[1], db, shadow)) as gw:
        traffic(gw)
        metrics = samples(gw)
    sent = shadow_upstream[0].bodies("/v1/chat/completions")
    assert len(sent) == 8 and all(body["stream"] is False and body["model"] == "big-model" for body in sent)
    assert metrics[("sluice_shadow_requests_total", (("model", "m"), ("outcome", "sent")))] == 8
    assert metrics[("sluice_shadow_latency_seconds_count", (("model", "m"), ("target", "shadow-up")))] == 8
    report = stored(db)
    assert (report["pairs"], report["compared"], report["shadow_errors"]) == (8, 8, 0)
    assert report["exact_match_rate"] == 1.0 and report["similarity_mean"] == 1.0  # the fake echoes: same text
    assert report["length_ratio_mean"] == 1.0 and report["completion_tokens_delta_mean"] == 0.0
    assert report["primary_ttft"]["count"] == 4  # the streamed half
    assert report["primary_e2e"]["count"] == report["shadow_e2e"]["count"] == 8
    # the admin API reads the same store (a fresh gateway on it: the pairs were flushed at shutdown)
    with run_gateway(config(upstream[1], db, shadow)) as gw:
        via_api = httpx.get(gw.url + "/admin/deployments/m/shadow-report", params={"since": "all"}).json()
        unknown = httpx.get(gw.url + "/admin/deployments/ghost/shadow-report")
        bad_since = httpx.get(gw.url + "/admin/deployments/m/shadow-report", params={"since": "yesterday"})
        bad_worst = httpx.get(gw.url + "/admin/deployments/m/shadow-report", params={"worst": "-1"})
    assert via_api == report
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert bad_since.status_code == 400 and bad_since.json()["error"]["param"] == "since"
    assert bad_worst.status_code == 400 and bad_worst.json()["error"]["param"] == "worst"


def test_a_different_shadow_model_shows_up_as_disagreement(
        upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    shadow = {"backend": {"type": "sim", "model": "llama-3.1-8b", "gpu": "h100-sxm", "max_model_len": 4096},
              "model": "llama-3.1-8b"}
    settings = config(upstream[1], db, shadow, shadow_max_concurrency=16)
    settings["shadow"] = {"timeout_s": 30}
    with run_gateway(settings) as gw:
        traffic(gw)
    report = stored(db, "--worst", "2")
    assert report["pairs"] == 8 and report["compared"] == 8
    assert report["exact_match_rate"] == 0.0 and report["similarity_mean"] < 0.5
    assert len(report["worst"]) == 2 and report["worst"][0]["similarity"] <= report["worst"][1]["similarity"]
    assert report["worst"][0]["primary_preview"] is not None  # log_bodies: full in this config
    table = runner.invoke(cli, ["deploy", "shadow-report", "m", "--db", f"sqlite:///{db}", "--since", "all"],
                          env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    for text in ("pairs 8", "E2E P50 ms", "completion tokens (mean)", "exact match 0.0%",
                 "worst disagreements"):
        assert text in table.output


def test_a_hanging_shadow_holds_at_most_max_concurrency_calls(
        upstream: tuple[OpenAIUpstream, str], shadow_upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    shadow = {"backend": {"type": "openai", "base_url": shadow_upstream[1] + "/v1"},
              "model": "fault/slow_headers:60"}
    settings = config(upstream[1], db, shadow, shadow_max_concurrency=2)
    settings["shadow"] = {"timeout_s": 60}
    settings["server"] = {"graceful_shutdown_s": 0.5}  # shutdown cancels the hung shadow calls
    with run_gateway(settings) as gw:
        answers = traffic(gw)
        metrics = samples(gw)
    assert all(answer[0] == 200 for answer in answers)
    outcome = {name: metrics.get(("sluice_shadow_requests_total", (("model", "m"), ("outcome", name))), 0)
               for name in ("sent", "skipped_full", "skipped_sampled")}
    assert outcome == {"sent": 2, "skipped_full": 6, "skipped_sampled": 0}
    assert metrics[("sluice_shadow_in_flight", (("model", "m"),))] == 2
    assert len(shadow_upstream[0].requests) <= 2
    report = stored(db)
    assert report["pairs"] == 2 and report["shadow_errors"] == 2  # cancelled at shutdown, recorded


def test_the_report_needs_the_master_key_when_one_is_set(upstream: tuple[OpenAIUpstream, str],
                                                          tmp_path: Path) -> None:
    settings = config(upstream[1], tmp_path / "log.db", None)
    settings["server"] = {"master_key": "sk-admin"}
    with run_gateway(settings) as gw:
        refused = httpx.get(gw.url + "/admin/deployments/m/shadow-report")
        allowed = httpx.get(gw.url + "/admin/deployments/m/shadow-report",
                            headers={"authorization": "Bearer sk-admin"})
    assert refused.status_code == 401
    assert allowed.status_code == 200 and allowed.json()["pairs"] == 0
