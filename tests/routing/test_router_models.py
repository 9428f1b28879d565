"""Router models (routing/difficulty_router.py) as public models everywhere a model goes: in fallback chains,
in /v1/models, under virtual keys' model lists, and on the legacy /v1/completions endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from sluice.config import parse_config
from sluice.errors import ConfigError
from tests.routing.e2e import chat_paths, config, sample, upstreams
from tests.routing.test_difficulty_router import EASY, HARD, models
from tests.support.gateway import RunningGateway, run_gateway

MASTER = "sk-master-test"
ADMIN = {"authorization": f"Bearer {MASTER}"}


def chat(gw: RunningGateway, model: str, text: str, token: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.post(gw.url + "/v1/chat/completions", headers=headers, timeout=30,
                      json={"model": model, "messages": [{"role": "user", "content": text}]})


def with_primary(**primary: Any) -> dict[str, Any]:
    """cheap (a), strong (b), the router `auto` over them, and `m` (c) configured as given."""
    return {**models(), "m": {"targets": [{"backend": "c", "model": "up-model"}], **primary}}


def test_a_fallback_to_a_router_model_is_served_by_the_model_it_chooses(tmp_path: Path) -> None:
    with upstreams("a", "b", "c") as ups:
        ups["c"][0].fault = "http_500"
        cfg = config(tmp_path / "log.db", {n: u for n, (_, u) in ups.items()}, with_primary(fallbacks=["auto"]))
        with run_gateway(cfg) as gw:
            easy, hard = chat(gw, "m", EASY), chat(gw, "m", HARD)
            fallbacks = sample(gw, "sluice_fallbacks_total", model="m", fallback="auto", reason="5xx")
            decisions = {choice: sample(gw, "sluice_router_decisions_total", model="auto", choice=choice)
                         for choice in ("easy", "hard")}
    assert [r.status_code for r in (easy, hard)] == [200, 200]
    assert [(r.headers["x-sluice-fallback"], r.headers["x-sluice-target"]) for r in (easy, hard)] == [
        ("cheap", "a"), ("strong", "b")]
    assert [r.headers["x-sluice-routed-to"] for r in (easy, hard)] == ["cheap", "strong"]
    assert easy.json()["model"] == "m" and easy.json()["choices"][0]["message"]["content"] == EASY
    assert fallbacks == 2 and decisions == {"easy": 1, "hard": 1}
    assert [chat_paths(ups[n][0]) for n in "abc"] == [1, 1, 2]  # one try on c each (no other replica)


def test_a_router_fallback_that_chooses_a_model_already_tried_is_skipped(tmp_path: Path) -> None:
    # cheap falls back to auto, which sends an easy prompt to cheap again: skipped, and `strong` answers.
    chain = models()
    chain["cheap"].update(fallbacks=["auto", "strong"], retry={"max_attempts": 1})
    with upstreams("a", "b") as ups:
        ups["a"][0].fault = "http_503"
        with run_gateway(config(tmp_path / "log.db", {n: u for n, (_, u) in ups.items()}, chain)) as gw:
            response = chat(gw, "cheap", EASY)
    assert response.status_code == 200
    assert (response.headers["x-sluice-fallback"], response.headers["x-sluice-target"]) == ("strong", "b")
    assert (chat_paths(ups["a"][0]), chat_paths(ups["b"][0])) == (1, 1)


def test_models_list_shows_router_models_in_the_openai_format(tmp_path: Path) -> None:
    with upstreams("a", "b") as ups:
        cfg = config(tmp_path / "log.db", {n: u for n, (_, u) in ups.items()}, models(threshold=0.4))
        cfg["models"]["auto"]["description"] = "cheap or strong by difficulty"
        with run_gateway(cfg) as gw:
            listed = httpx.get(gw.url + "/v1/models").json()
            sdk_ids = [model.id for model in gw.client().models.list()]
    assert listed["object"] == "list" and sdk_ids == ["cheap", "strong", "auto"]
    auto = next(model for model in listed["data"] if model["id"] == "auto")
    assert auto["object"] == "model" and auto["owned_by"] == "sluice" and isinstance(auto["created"], int)
    assert auto["description"] == "cheap or strong by difficulty"
    assert auto["endpoints"] == ["chat", "completions"] and auto["targets"] == []
    assert auto["router"] == {"easy": "cheap", "hard": "strong", "classifier": "rules", "threshold": 0.4}


def test_a_router_model_routes_legacy_completions_by_the_prompt(tmp_path: Path) -> None:
    with (upstreams("a", "b") as ups,
          run_gateway(config(tmp_path / "log.db", {n: u for n, (_, u) in ups.items()}, models())) as gw):
        easy, hard = (httpx.post(gw.url + "/v1/completions", timeout=30,
                                 json={"model": "auto", "prompt": text, "max_tokens": 64}) for text in (EASY, HARD))
        with httpx.stream("POST", gw.url + "/v1/completions", timeout=30,
                          json={"model": "auto", "prompt": [HARD], "stream": True}) as streamed:
            events = [orjson.loads(line[6:]) for line in streamed.iter_lines() if line.startswith("data: {")]
        decisions = {choice: sample(gw, "sluice_router_decisions_total", model="auto", choice=choice)
                     for choice in ("easy", "hard")}
    assert [r.status_code for r in (easy, hard, streamed)] == [200, 200, 200]
    assert [r.headers["x-sluice-routed-to"] for r in (easy, hard, streamed)] == ["cheap", "strong", "strong"]
    assert [r.headers["x-sluice-target"] for r in (easy, hard)] == ["a", "b"]
    assert easy.json()["object"] == "text_completion" and easy.json()["model"] == "auto"
    assert easy.json()["choices"][0]["text"] == EASY
    assert events and all(event["model"] == "auto" for event in events)
    assert "".join(event["choices"][0]["text"] for event in events if event["choices"]) == HARD
    assert decisions == {"easy": 1, "hard": 2}
    upstream_bodies = {name: ups[name][0].bodies("/v1/completions") for name in "ab"}
    assert [body["prompt"] for body in upstream_bodies["a"]] == [EASY]
    assert all(body["model"] == "up-model" for body in (*upstream_bodies["a"], *upstream_bodies["b"]))
    assert len(upstream_bodies["b"]) == 2 and chat_paths(ups["a"][0]) == chat_paths(ups["b"][0]) == 0


def create_key(gw: RunningGateway, *allowed: str) -> str:
    response = httpx.post(gw.url + "/admin/keys", headers=ADMIN, json={"name": "k", "models": list(allowed)})
    assert response.status_code == 201, response.text
    return str(response.json()["secret"])


def test_a_key_allowed_the_router_model_reaches_what_it_chooses_and_no_further(tmp_path: Path) -> None:
    with upstreams("a", "b") as ups:
        cfg = config(tmp_path / "log.db", {n: u for n, (_, u) in ups.items()}, models(),
                     server={"master_key": MASTER})
        with run_gateway(cfg) as gw:
            router_only, cheap_only = create_key(gw, "auto"), create_key(gw, "cheap")
            via_router = [chat(gw, "auto", text, router_only) for text in (EASY, HARD)]
            direct = chat(gw, "strong", HARD, router_only)
            refused = chat(gw, "auto", EASY, cheap_only)
            listed = {token: [m["id"] for m in httpx.get(gw.url + "/v1/models", headers={
                "authorization": f"Bearer {token}"}).json()["data"]] for token in (router_only, cheap_only)}
    assert [r.status_code for r in via_router] == [200, 200]
    assert [r.headers["x-sluice-routed-to"] for r in via_router] == ["cheap", "strong"]
    assert direct.status_code == 403 and direct.json()["error"]["code"] == "model_not_allowed"
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"
    assert listed == {router_only: ["auto"], cheap_only: ["cheap"]}
    assert (chat_paths(ups["a"][0]), chat_paths(ups["b"][0])) == (1, 1)  # the refused ones never went upstream


@pytest.mark.parametrize(("key", "value"), [("fallbacks", ["cheap"]), ("retry", {"max_attempts": 3}),
                                            ("balancer", "weighted"), ("fallback_on", ["5xx"])])
def test_a_router_model_refuses_a_routing_policy_of_its_own(key: str, value: Any) -> None:
    broken = models()
    broken["auto"][key] = value
    backends = {"a": {"type": "openai", "base_url": "http://a/v1"}, "b": {"type": "openai", "base_url": "http://b/v1"}}
    with pytest.raises(ConfigError, match=rf"models\.auto\.{key}: a router model has no routing policy of its own"):
        parse_config({"backends": backends, "models": broken})
