"""Where a run's answers come from: a gateway model with extra headers (a deployment's side pinned) and default
generation params, or a raw OpenAI-compatible API with no gateway at all; and where its judge is."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sluice.evals import (
    BackendUnreachable,
    GatewayUnreachable,
    Suite,
    check_backend,
    load_suite,
    run_suite,
)
from tests.support.gateway import run_gateway, upstream_config
from tests.support.scripted_openai import ScriptedUpstream
from tests.support.servers import free_port, serve_app

SUITE = """\
name: capitals
defaults:
  scorers: [exact]
cases:
  - id: france
    input: Capital of France?
    expected: Paris
    params: {temperature: 0}
  - id: japan
    input: Capital of Japan?
    expected: Tokyo
"""
JUDGED = SUITE.replace("scorers: [exact]", "scorers: [exact, {type: judge, model: judge, rubric: \"Is it right?\"}]")


def write_suite(tmp_path: Path, text: str = SUITE) -> Suite:
    path = tmp_path / "capitals.yaml"
    path.write_text(text)
    return load_suite(path)


def test_a_raw_target_is_asked_directly_without_sluice_headers(tmp_path: Path) -> None:
    scripted = ScriptedUpstream(["Paris", "Tokyo"])
    with serve_app(scripted.app()) as url:
        results = asyncio.run(run_suite(write_suite(tmp_path), base_url=url + "/v1", model="up-model", raw=True,
                                        api_key="sk-raw", headers={"x-extra": "1"}, concurrency=1))
    assert [result.passed for result in results] == [True, True]
    assert [request["model"] for request in scripted.requests] == ["up-model", "up-model"]
    for headers in scripted.headers:
        assert "x-sluice-cache" not in headers
        assert headers["authorization"] == "Bearer sk-raw" and headers["x-extra"] == "1"


def test_default_params_go_under_each_case_s_own(tmp_path: Path) -> None:
    scripted = ScriptedUpstream(["Paris", "Tokyo"])
    with serve_app(scripted.app()) as url:
        asyncio.run(run_suite(write_suite(tmp_path), base_url=url + "/v1", model="up-model", raw=True,
                              params={"temperature": 0.7, "max_tokens": 5, "model": "not-this"}, concurrency=1))
    france, japan = scripted.requests
    assert (france["temperature"], france["max_tokens"]) == (0, 5)  # the case's own temperature wins
    assert (japan["temperature"], japan["max_tokens"]) == (0.7, 5)
    assert france["model"] == "up-model" and france["stream"] is False


def test_a_header_pins_the_candidate_side_of_a_gateway_deployment(tmp_path: Path) -> None:
    stable, candidate = ScriptedUpstream(["Lyon"]), ScriptedUpstream(["Paris", "Tokyo"])
    with serve_app(stable.app()) as stable_url, serve_app(candidate.app()) as candidate_url:
        config = upstream_config(stable_url, tmp_path / "log.db")
        config["backends"]["cand"] = {"type": "openai", "base_url": candidate_url + "/v1"}
        config["models"]["m"]["rollout"] = {"candidate": [{"backend": "cand", "model": "up-model"}],
                                            "candidate_weight": 0}
        with run_gateway(config) as gw:
            pinned = asyncio.run(run_suite(write_suite(tmp_path), base_url=gw.url, model="m", concurrency=1,
                                           headers={"x-sluice-route": "candidate"}))
            unpinned = asyncio.run(run_suite(write_suite(tmp_path), base_url=gw.url, model="m", concurrency=1))
    assert [result.passed for result in pinned] == [True, True] and len(candidate.requests) == 2
    assert [result.answer for result in unpinned] == ["Lyon", "Lyon"] and len(stable.requests) == 2


def test_a_raw_run_with_model_backed_scorers_needs_a_judge_url_before_any_call(tmp_path: Path) -> None:
    scripted, suite = ScriptedUpstream(["Paris"]), write_suite(tmp_path, JUDGED)
    with serve_app(scripted.app()) as url, pytest.raises(ValueError, match=r"the judge scorer.* give judge_url"):
        asyncio.run(run_suite(suite, base_url=url + "/v1", model="up-model", raw=True))
    assert scripted.requests == []


def test_a_raw_run_judged_elsewhere_sends_the_judge_its_own_key_and_none_of_the_target_headers(
        tmp_path: Path) -> None:
    target, judge = ScriptedUpstream(["Paris", "Tokyo"]), ScriptedUpstream(['{"score": 5, "reason": "right"}'])
    # the judge's endpoint is a chat completions API at {judge_url}/v1/..., as on a gateway
    with serve_app(target.app()) as target_url, serve_app(judge.app()) as judge_url:
        results = asyncio.run(run_suite(write_suite(tmp_path, JUDGED), base_url=target_url + "/v1", model="up-model",
                                        raw=True, api_key="sk-target", headers={"x-sluice-route": "candidate"},
                                        judge_url=judge_url, judge_api_key="sk-judge", concurrency=1))
    assert all(result.passed for result in results)
    assert [request["model"] for request in judge.requests] == ["judge", "judge"]
    for headers in judge.headers:
        assert headers["authorization"] == "Bearer sk-judge" and headers["x-sluice-cache"] == "bypass"
        assert "x-sluice-route" not in headers


def test_check_backend_wants_the_api_root_answering_its_models(tmp_path: Path) -> None:
    scripted = ScriptedUpstream(["Paris"])
    with serve_app(scripted.app()) as url:
        asyncio.run(check_backend(url + "/v1"))
        with pytest.raises(BackendUnreachable, match=r"answered HTTP 404.*is the base URL the API root"):
            asyncio.run(check_backend(url))
    with pytest.raises(GatewayUnreachable, match="cannot reach the API at"):  # a BackendUnreachable is one
        asyncio.run(check_backend(f"http://127.0.0.1:{free_port()}/v1"))
