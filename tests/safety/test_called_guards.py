"""Called guards through the real gateway: custom hooks (sync and async), deadlines and fail-open / fail-closed,
`during` mode beside the upstream call, and Llama Guard 3 served by a loopback OpenAI-compatible server and
called through the gateway's own chain (routed, logged, linked to the request it guards)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from sluice.cli import app
from sluice.config import parse_config
from sluice.errors import ConfigError
from sluice.safety import build_guard
from tests.safety.test_guards_through_gateway import ANSWER, stream_events, verdicts
from tests.support.gateway import RunningGateway, records, run_gateway, upstream_config
from tests.support.llama_guard_server import assessed_message, make_llama_guard_server
from tests.support.openai_server import OpenAIUpstream
from tests.support.servers import serve_app

HOOKS = "tests.safety.hooks_for_tests"


def config(url: str, db: Path, guards: dict[str, Any], names: list[str], **extra: Any) -> dict[str, Any]:
    models = {"m": {"targets": [{"backend": "up", "model": "up-model"}], "guards": names,
                    "cache": {"exact": {"enabled": False}}}, **extra.pop("models", {})}
    return upstream_config(url, db, safety={"guards": guards}, models=models, **extra)


def chat(gw: RunningGateway, text: str, rid: str = "r", **extra: Any) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", headers={"x-request-id": rid}, timeout=10,
                      json={"model": "m", "messages": [{"role": "user", "content": text}], **extra})


def by_rid(db: Path) -> dict[str | None, Any]:
    return {record.client_request_id: record for record in records(db)}


def test_custom_hooks_sync_and_async_score_and_dict(upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    fake, url = upstream
    db = tmp_path / "log.db"
    guards = {"banana": {"type": "custom", "hook": f"{HOOKS}:banana_score", "category": "fruit"},
              "cherry": {"type": "custom", "hook": f"{HOOKS}:cherry_dict", "action": "flag"}}
    with run_gateway(config(url, db, guards, ["banana", "cherry"])) as gw:
        fake.reset()
        refused = chat(gw, "a Banana split", "banana")
        flagged = chat(gw, "cherry pie", "cherry")
        assert fake.requests and len(fake.requests) == 1  # the refused prompt never went upstream
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "content_filter"
    assert "`banana` (category: fruit)" in refused.json()["error"]["message"]
    assert flagged.status_code == 200
    rows = by_rid(db)
    (verdict,) = rows["banana"].annotations["guard.input"]
    assert verdict | {"score": 0.9} == verdict and verdict["layer"] == "custom" and verdict["rule"] == "score=0.90"
    assert {"guard": "cherry", "category": "fruit", "rule": "cherry-rule", "action": "flag"}.items() <= \
        rows["cherry"].annotations["guard.input"][0].items()


@pytest.mark.parametrize(("hook", "reason"), [("never_answers", "no verdict within 0.2 s"),
                                              ("raises", "RuntimeError: the hook's backend is down"),
                                              ("says_yes", "the hook returned a str")])
def test_a_failing_guard_fails_open_or_closed_as_configured(upstream: tuple[OpenAIUpstream, str], tmp_path: Path,
                                                            hook: str, reason: str) -> None:
    db = tmp_path / "log.db"
    guards = {"open": {"type": "custom", "hook": f"{HOOKS}:{hook}", "timeout_s": 0.2},
              "closed": {"type": "custom", "hook": f"{HOOKS}:{hook}", "timeout_s": 0.2, "on_error": "block"}}
    with run_gateway(config(upstream[1], db, guards, [])) as gw:
        passed = httpx.post(gw.url + "/v1/chat/completions",
                            headers={"x-request-id": "open", "x-sluice-guards": "open"},
                            json={"model": "m", "messages": [{"role": "user", "content": "hello"}]})
        refused = httpx.post(gw.url + "/v1/chat/completions",
                             headers={"x-request-id": "closed", "x-sluice-guards": "closed"},
                             json={"model": "m", "messages": [{"role": "user", "content": "hello"}], "stream": True})
        metrics = gw.metrics_text()
    assert passed.status_code == 200 and passed.json()["choices"][0]["message"]["content"] == "hello"
    assert refused.status_code == 503  # a stream refused before any output: a status, not an error event
    assert refused.json()["error"]["code"] == "guard_unavailable"
    assert "could not check the request" in refused.json()["error"]["message"]
    rows = by_rid(db)
    (failure,) = rows["open"].annotations["guard.input"]
    assert failure["error"].startswith(reason) and failure["outcome"] == "allowed"
    assert rows["closed"].annotations["guard.input"][0]["outcome"] == "blocked"
    assert rows["closed"].status_code == 503
    assert 'sluice_guard_errors_total{direction="input",guard="open",outcome="allowed"} 1.0' in metrics
    report = CliRunner().invoke(app, ["safety", "report", "--db", f"sqlite:///{db}", "--json"])
    assert {(row["guard"], row["category"], row["action"]) for row in json.loads(report.stdout)["rows"]} == \
        {("open", "error", "fail-open"), ("closed", "error", "fail-closed")}


def test_during_mode_runs_beside_the_upstream_and_holds_the_answer(upstream: tuple[OpenAIUpstream, str],
                                                                   tmp_path: Path) -> None:
    fake, url = upstream
    db = tmp_path / "log.db"
    guards = {"banana": {"type": "custom", "hook": f"{HOOKS}:banana_score", "when": "during"}}
    with run_gateway(config(url, db, guards, ["banana"])) as gw:
        fake.reset()
        whole = chat(gw, "banana bread", "whole")
        streamed = chat(gw, "banana bread", "streamed", stream=True)
        fine = chat(gw, "apple pie", "fine", stream=True)
        assert len(fake.requests) == 3  # the upstream was called for all three: the guard ran beside it
    for refused in (whole, streamed):
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "content_filter"
        assert "banana" not in refused.text.replace("`banana`", "")  # none of the held answer leaked
    assert fine.status_code == 200 and stream_events(fine)[-1] == "[DONE]"
    assert by_rid(db)["streamed"].status_code == 400


def test_a_hook_that_does_not_import_is_a_config_error_naming_the_guard() -> None:
    cases = {f"{HOOKS}:missing": "has no attribute 'missing'", "tests.safety.no_such_module:x": "cannot import",
             f"{HOOKS}:NOT_CALLABLE": "is not callable"}
    for hook, message in cases.items():
        guard = parse_config({"backends": {}, "models": {}, "safety": {"guards": {
            "mine": {"type": "custom", "hook": hook}}}}).safety.guards["mine"]
        with pytest.raises(ConfigError, match=rf"safety\.guards\.mine\.hook: .*{message}"):
            build_guard("mine", guard)
    with pytest.raises(ConfigError, match=r"safety\.guards\.mine\.hook.*module\.path:attribute"):
        parse_config({"safety": {"guards": {"mine": {"type": "custom", "hook": "not a path"}}}})


# --- Llama Guard -------------------------------------------------------------------------------------------


@pytest.fixture
def llama_guard() -> Iterator[tuple[Any, str]]:
    app = make_llama_guard_server()
    with serve_app(app) as url:
        yield app, url


def guarded(url: str, guard_url: str, db: Path, **guard: Any) -> dict[str, Any]:
    return config(url, db, {"lg": {"type": "llama_guard", "model": "guard", "timeout_s": 2, **guard}}, ["lg"],
                  backends={"up": {"type": "openai", "base_url": url + "/v1", "read_timeout_s": 2.0},
                            "lg-server": {"type": "openai", "base_url": guard_url + "/v1", "read_timeout_s": 2.0}},
                  # the guard's own model lists the guard too: its calls must not be guarded again (no recursion)
                  models={"guard": {"targets": [{"backend": "lg-server", "model": "meta-llama/Llama-Guard-3-8B"}],
                                    "retry": {"max_attempts": 1}, "guards": ["lg"]}})


def test_llama_guard_refuses_an_unsafe_prompt_and_its_call_is_logged_linked(
        upstream: tuple[OpenAIUpstream, str], llama_guard: tuple[Any, str], tmp_path: Path) -> None:
    fake, url = upstream
    guard_app, guard_url = llama_guard
    db = tmp_path / "log.db"
    cfg = guarded(url, guard_url, db, categories=["S1", "S9"])
    cfg["pricing"] = {"targets": {"lg-server": {"input_usd_per_1m": 0.2, "output_usd_per_1m": 0.2}}}
    with run_gateway(cfg) as gw:
        fake.reset()
        refused = chat(gw, "how do I build a bomb", "unsafe")
        allowed = chat(gw, "how do I bake bread", "safe")
        assert len(fake.requests) == 1
        found = verdicts(gw)
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == ("The request was refused by the gateway's content guard `lg` "
                                                  "(category: indiscriminate-weapons).")
    assert allowed.status_code == 200
    assert found == {("lg", "input", "indiscriminate-weapons", "block", "enforce"): 1}
    assert "S9: Indiscriminate Weapons." in guard_app.state.prompts[0]
    assert "S2:" not in guard_app.state.prompts[0]  # only the chosen categories are listed
    rows = records(db)
    parent = next(r for r in rows if r.client_request_id == "unsafe")
    assert parent.annotations["guard.input"][0] | {"rule": "S9", "score": 0.97} == parent.annotations["guard.input"][0]
    guard_calls = [r for r in rows if r.model == "guard"]
    assert {r.annotations["guard.parent_request_id"] for r in guard_calls} == \
        {parent.request_id, next(r for r in rows if r.client_request_id == "safe").request_id}
    assert all(r.endpoint == "completions" and r.status_code == 200 and r.prompt_tokens for r in guard_calls)
    assert all(r.cost_usd == pytest.approx((r.prompt_tokens + r.completion_tokens) * 0.2e-6) for r in guard_calls)
    assert [assessed_message(prompt) for prompt in guard_app.state.prompts] == [  # the guard's own calls unguarded
        ("User", "how do I build a bomb"), ("User", "how do I bake bread"), ("Agent", "how do I bake bread")]
    assert all("guard.input" not in r.annotations for r in guard_calls)


def test_llama_guard_cuts_a_streamed_answer_and_checks_the_whole_answer_at_the_end(
        upstream: tuple[OpenAIUpstream, str], llama_guard: tuple[Any, str], tmp_path: Path) -> None:
    guard_app, guard_url = llama_guard
    db = tmp_path / "log.db"
    cfg = guarded(upstream[1], guard_url, db, direction="output", every_chars=16)
    with run_gateway(cfg) as gw:
        cut = chat(gw, "one two three four five six seven stab eight nine ten", "cut", stream=True)
        whole = chat(gw, ANSWER, "clean", stream=True)
    events = stream_events(cut)
    text = "".join(c["delta"].get("content") or "" for e in events[:-1] for c in e.get("choices", []))
    assert "stab" not in text and events[-1] == "[DONE]"
    assert [c["finish_reason"] for e in events[:-1] for c in e.get("choices", []) if c["finish_reason"]] == \
        ["content_filter"]
    clean = "".join(c["delta"].get("content") or "" for e in stream_events(whole)[:-1] for c in e.get("choices", []))
    assert clean == ANSWER
    assert any("Agent: one two three" in prompt for prompt in guard_app.state.prompts)  # the answer so far


@pytest.mark.parametrize("mode", ["garbage", "http_500"])
def test_a_llama_guard_answering_garbage_or_failing_fails_open_and_says_why(
        upstream: tuple[OpenAIUpstream, str], llama_guard: tuple[Any, str], tmp_path: Path, mode: str) -> None:
    guard_app, guard_url = llama_guard
    guard_app.state.mode = mode
    db = tmp_path / "log.db"
    with run_gateway(guarded(upstream[1], guard_url, db)) as gw:
        response = chat(gw, "how do I build a bomb", "through")
    assert response.status_code == 200
    (failure,) = by_rid(db)["through"].annotations["guard.input"]
    expected = "must start with 'safe' or 'unsafe'" if mode == "garbage" else "its model `guard` failed"
    assert expected in failure["error"] and failure["outcome"] == "allowed"


def test_a_llama_guard_naming_an_unknown_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"safety\.guards\.lg\.model: unknown model 'nope'"):
        parse_config({"backends": {}, "models": {}, "safety": {"guards": {
            "lg": {"type": "llama_guard", "model": "nope"}}}})
    with pytest.raises(ConfigError, match=r"safety\.guards\.lg\.categories: .*S15"):
        parse_config({"safety": {"guards": {"lg": {"type": "llama_guard", "model": "x", "categories": ["S15"]}}}})
