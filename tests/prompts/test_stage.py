"""Prompts at request time, through a real gateway and a scripted upstream: a request naming a prompt (body or
headers) reaches the model with the rendered messages and the version's config; the version is in the response
header and the request log; a label move is seen by the next request and never answered from the cache of the
old version; unknown prompts and wrong variables are clear 4xx errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway import RunningGateway, records, run_gateway, upstream_config
from tests.support.polling import wait_for
from tests.support.scripted_openai import ScriptedUpstream
from tests.support.servers import serve_app

SYSTEM = "You answer for {{ company }}. Be brief."


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[RunningGateway, ScriptedUpstream, Path]]:
    upstream = ScriptedUpstream(["first answer", "second answer", "third answer", "fourth answer"])
    db = tmp_path / "db.sqlite"
    with serve_app(upstream.app()) as url, run_gateway(upstream_config(url, db, cache={"exact": {"ttl_s": 100}})) as gw:
        yield gw, upstream, db


def create(gw: RunningGateway, name: str, **document: Any) -> dict[str, Any]:
    response = httpx.post(f"{gw.url}/admin/prompts/{name}/versions", json=document)
    assert response.status_code == 201, response.text
    return response.json()


def chat(gw: RunningGateway, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/chat/completions", json={"model": "m", **body}, headers=headers or {})


def test_a_named_prompt_is_rendered_into_the_request(served: tuple[RunningGateway, ScriptedUpstream, Path]) -> None:
    gw, upstream, db = served
    create(gw, "support", messages=[{"role": "system", "content": SYSTEM}], variables=["company"],
           config={"temperature": 0.3, "max_tokens": 64}, labels=["production"])
    response = chat(gw, {"prompt": {"name": "support", "label": "production", "variables": {"company": "Acme"}},
                         "messages": [{"role": "user", "content": "Where is my order?"}], "max_tokens": 20})
    assert response.status_code == 200, response.text
    assert response.headers["x-sluice-prompt"] == "support@1"
    sent = upstream.requests[-1]
    assert sent["messages"] == [{"role": "system", "content": "You answer for Acme. Be brief."},
                                {"role": "user", "content": "Where is my order?"}]
    assert sent["temperature"] == 0.3 and sent["max_tokens"] == 20  # the request's own value wins
    assert "prompt" not in sent
    wait_for(lambda: records(db), what="the request log row")
    annotations = records(db)[0].annotations
    assert annotations["prompt.name"] == "support" and annotations["prompt.version"] == 1
    assert annotations["prompt.label"] == "production"


def test_a_label_move_is_seen_at_once_and_the_cache_keys_on_the_rendered_request(
        served: tuple[RunningGateway, ScriptedUpstream, Path]) -> None:
    gw, upstream, _ = served
    # temperature 0 from the prompts' config: the cache (deterministic answers only) sees the rendered request
    create(gw, "greet", template="Say hello to {{ who }}.", variables=["who"], config={"temperature": 0},
           labels=["production"])
    create(gw, "greet", template="Say goodbye to {{ who }}.", variables=["who"], config={"temperature": 0})
    body = {"prompt": {"name": "greet", "label": "production", "variables": {"who": "Ada"}}}
    first = chat(gw, body)
    again = chat(gw, body)
    assert first.json()["choices"][0]["message"]["content"] == "first answer"
    assert again.headers.get("x-sluice-cache") == "hit-exact" and len(upstream.requests) == 1
    moved = httpx.put(f"{gw.url}/admin/prompts/greet/labels/production", json={"version": 2, "reason": "test"})
    assert moved.status_code == 200, moved.text
    after = chat(gw, body)
    assert after.headers["x-sluice-prompt"] == "greet@2"
    assert after.headers.get("x-sluice-cache") == "miss"
    assert after.json()["choices"][0]["message"]["content"] == "second answer"
    assert upstream.requests[-1]["messages"] == [{"role": "user", "content": "Say goodbye to Ada."}]


def test_headers_name_a_prompt_for_chat_and_completions(
        served: tuple[RunningGateway, ScriptedUpstream, Path]) -> None:
    gw, upstream, _ = served
    create(gw, "line", template="Complete: {{ start }}", variables=["start"], config={"stop": ["\n"]})
    headers = {"x-sluice-prompt": "line@1", "x-sluice-prompt-variables": '{"start": "Once upon"}'}
    response = chat(gw, {"messages": [{"role": "user", "content": "go on"}]}, headers)
    assert response.status_code == 200, response.text
    assert upstream.requests[-1]["messages"][0] == {"role": "user", "content": "Complete: Once upon"}
    completion = httpx.post(f"{gw.url}/v1/completions", json={"model": "m", "prompt": "ignored"}, headers=headers)
    assert completion.status_code == 200, completion.text
    assert upstream.requests[-1]["prompt"] == "Complete: Once upon" and upstream.requests[-1]["stop"] == ["\n"]


def test_a_prompt_alone_needs_no_messages(served: tuple[RunningGateway, ScriptedUpstream, Path]) -> None:
    gw, upstream, _ = served
    create(gw, "ask", template="What is the capital of {{ country }}?", variables=["country"])
    response = chat(gw, {"prompt": {"name": "ask", "variables": {"country": "France"}}})
    assert response.status_code == 200, response.text
    assert upstream.requests[-1]["messages"] == [{"role": "user", "content": "What is the capital of France?"}]
    assert chat(gw, {}).status_code == 400  # still: no prompt, no messages


def test_unknown_prompts_and_wrong_variables_are_clear_errors(
        served: tuple[RunningGateway, ScriptedUpstream, Path]) -> None:
    gw, upstream, _ = served
    create(gw, "support", template="Hi {{ name }}", variables=["name"])
    cases = [
        ({"prompt": {"name": "nope"}}, 404, "nope"),
        ({"prompt": {"name": "support", "label": "staging", "variables": {"name": "x"}}}, 404, "staging"),
        ({"prompt": {"name": "support"}}, 400, "name"),
        ({"prompt": {"name": "support", "variables": {"name": "x", "extra": 1}}}, 400, "extra"),
        ({"prompt": {"name": "support", "label": "production", "version": 1}}, 400, "label"),
        ({"prompt": {"name": "support", "colour": "red"}}, 400, "colour"),
        ({"prompt": "support"}, 400, "must be an object"),
    ]
    for body, status, named in cases:
        response = chat(gw, {**body, "messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == status, (body, response.text)
        assert named in response.json()["error"]["message"], (body, response.text)
    headers = {"x-sluice-prompt": "support", "x-sluice-prompt-variables": "{not json"}
    response = chat(gw, {"messages": [{"role": "user", "content": "hi"}]}, headers)
    assert response.status_code == 400 and "x-sluice-prompt-variables" in response.json()["error"]["message"]
    assert upstream.requests == []  # nothing reached the model
