"""Cost-based routing (routing/difficulty_router.py): the rules classifier, the router's choice and override,
config validation, and a real gateway sending easy prompts to the cheap model and hard ones to the strong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from sluice.config import parse_config
from sluice.errors import ConfigError, InvalidRequest
from sluice.gateway.startup import check_startup
from sluice.routing.difficulty_router import DifficultyRouter, Turn, features, load_classifier, rules_score
from tests.routing.e2e import chat_paths, config, sample, streamed_text, upstreams
from tests.support.gateway import records, run_gateway

EASY = "What is the capital of Australia?"
HARD = ("Design a rate limiter for a distributed API gateway across 20 replicas. Compare token bucket and "
        "sliding window approaches, and explain the trade-offs step by step.")


def user(text: str) -> list[Turn]:
    return [Turn("user", text)]


def always_hard(turns: list[Turn]) -> float:  # a custom classifier, loaded by import path in the tests below
    return 1.0


def test_short_factual_prompts_score_easy_and_reasoning_prompts_score_hard() -> None:
    assert rules_score(user(EASY)) < 0.5 <= rules_score(user(HARD))
    assert rules_score(user("Prove that there are infinitely many primes, step by step.")) >= 0.5
    assert rules_score(user("Tell me a joke about cats.")) < 0.5


def test_features_count_code_math_reasoning_constraints_and_turns() -> None:
    turns = [Turn("system", "be brief"), Turn("user", "hi"), Turn("assistant", "hello"),
             Turn("user", "```python\ndef f(): return 1\n```\nProve x^2 >= 0. It must be exactly one line.")]
    f = features(turns)
    assert f.turns == 3  # the system prompt is not a turn
    assert f.code >= 4 and f.math >= 2 and f.reasoning == 1 and f.constraints >= 2


def test_english_from_and_where_are_not_sql() -> None:
    assert features(user("Where can I buy bread from?")).code == 0
    assert features(user("SELECT id FROM t WHERE x = 1")).code >= 3


def test_router_picks_by_threshold_and_the_header_overrides() -> None:
    router = DifficultyRouter("cheap", "strong", threshold=0.5)
    assert router.decide(user(EASY), {}).model == "cheap"
    hard = router.decide(user(HARD), {})
    assert (hard.choice, hard.model) == ("hard", "strong") and hard.score is not None
    forced = router.decide(user(HARD), {"x-sluice-difficulty": "Easy"})
    assert (forced.model, forced.score) == ("cheap", None)
    with pytest.raises(InvalidRequest):
        router.decide(user(EASY), {"x-sluice-difficulty": "medium"})


def test_a_custom_classifier_loads_by_import_path() -> None:
    classifier = load_classifier("tests.routing.test_difficulty_router:always_hard")
    assert DifficultyRouter("cheap", "strong", classifier).decide(user(EASY), {}).model == "strong"
    assert load_classifier("rules") is rules_score


def models(**router: Any) -> dict[str, Any]:
    return {"cheap": {"targets": [{"backend": "a", "model": "up-model"}]},
            "strong": {"targets": [{"backend": "b", "model": "up-model"}]},
            "auto": {"router": {"easy": "cheap", "hard": "strong", **router}}}


def check(models: dict[str, Any]) -> str:
    """The error parsing gives, else the start-up check's (the classifier is imported there, not in config)."""
    backends = {"a": {"type": "openai", "base_url": "http://a/v1"}, "b": {"type": "openai", "base_url": "http://b/v1"}}
    with pytest.raises(ConfigError) as info:
        check_startup(parse_config({"backends": backends, "models": models}))
    return str(info.value)


def test_config_errors_name_the_router_key() -> None:
    assert "models.auto.router.classifier: cannot import 'nope.mod:f'" in check(models(classifier="nope.mod:f"))
    assert "models.auto.router.classifier: expected `rules`" in check(models(classifier="rulez"))
    assert "models.auto.router.hard: unknown model 'gpt-9'" in check(models(hard="gpt-9"))
    looped = models()
    looped["auto2"] = {"router": {"easy": "auto", "hard": "strong"}}
    assert "models.auto2.router.easy: 'auto' is itself a router model" in check(looped)
    with_targets = models()
    with_targets["auto"]["targets"] = [{"backend": "a"}]
    assert "models.auto.router: a router model has no targets" in check(with_targets)
    assert "models.cheap.targets: at least one target" in check({"cheap": {}})


def post(gw: Any, text: str, **headers: str) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", headers=headers, timeout=30,
                      json={"model": "auto", "messages": [{"role": "user", "content": text}]})


def test_gateway_sends_easy_to_cheap_hard_to_strong_and_the_header_wins(tmp_path: Path) -> None:
    with upstreams("a", "b") as ups:
        cfg = config(tmp_path / "log.db", {n: u for n, (_, u) in ups.items()}, models())
        with run_gateway(cfg) as gw:
            easy, hard = post(gw, EASY), post(gw, HARD)
            forced = post(gw, HARD, **{"x-sluice-difficulty": "easy"})
            bad = post(gw, EASY, **{"x-sluice-difficulty": "medium"})
            with httpx.stream("POST", gw.url + "/v1/chat/completions", timeout=30,
                              json={"model": "auto", "stream": True,
                                    "messages": [{"role": "user", "content": HARD}]}) as streamed:
                lines = [line for line in streamed.iter_lines() if line.startswith("data: {")]
            decisions = {choice: sample(gw, "sluice_router_decisions_total", model="auto", choice=choice)
                         for choice in ("easy", "hard")}
    assert [r.status_code for r in (easy, hard, forced)] == [200] * 3 and bad.status_code == 400
    assert [r.headers["x-sluice-routed-to"] for r in (easy, hard, forced)] == ["cheap", "strong", "cheap"]
    assert [r.headers["x-sluice-target"] for r in (easy, hard, forced)] == ["a", "b", "a"]
    assert easy.json()["model"] == "auto" and easy.json()["choices"][0]["message"]["content"] == EASY
    assert streamed.headers["x-sluice-routed-to"] == "strong"
    events = [orjson.loads(line[6:]) for line in lines]
    assert streamed_text(events) == HARD[:len(streamed_text(events))] and all(e["model"] == "auto" for e in events)
    assert decisions == {"easy": 2, "hard": 2}
    assert (chat_paths(ups["a"][0]), chat_paths(ups["b"][0])) == (2, 2)


def test_the_routers_decision_is_annotated_in_the_request_log(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with upstreams("a", "b") as ups:
        cfg = config(db, {n: u for n, (_, u) in ups.items()}, models())
        with run_gateway(cfg) as gw:
            easy, hard = post(gw, EASY), post(gw, HARD)
            forced = post(gw, HARD, **{"x-sluice-difficulty": "easy"})
            direct = httpx.post(gw.url + "/v1/chat/completions", timeout=30,
                                json={"model": "cheap", "messages": [{"role": "user", "content": EASY}]})
    by_id = {r.request_id: r for r in records(db)}  # the gateway has stopped: every row is written
    logged = [by_id[reply.headers["x-request-id"]].annotations for reply in (easy, hard, forced, direct)]
    assert [(a["router.choice"], a["router.model"]) for a in logged[:3]] == [
        ("easy", "cheap"), ("hard", "strong"), ("easy", "cheap")]
    assert logged[0]["router.score"] < 0.5 <= logged[1]["router.score"]
    assert "router.score" not in logged[2]  # the caller's header decided
    assert logged[3] == {}  # not a router model: nothing annotated
