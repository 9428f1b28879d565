"""One tenant never receives another's cached answer: namespaces per key (default), per team, or global."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from sluice.backends import ChatCompletionRequest, Completion, completion_from_payload
from sluice.cache import build_cache
from sluice.config import parse_config
from sluice.gateway.context import RequestContext
from tests.support.gateway import run_gateway, upstream_config
from tests.support.openai_server import OpenAIUpstream

MASTER = "sk-master"
BODY = {"model": "m", "messages": [{"role": "user", "content": "alpha beta"}], "temperature": 0}


def answer_for(text: str) -> Completion:
    return completion_from_payload({"id": "x", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}, "chat")


def context(key_id: str | None, team: str | None, request_id: str) -> tuple[RequestContext, ChatCompletionRequest]:
    ctx = RequestContext(request_id, "chat", None)
    ctx.key = SimpleNamespace(id=key_id) if key_id is not None else None
    ctx.team = team
    request = ChatCompletionRequest.model_validate(BODY)
    ctx.request, ctx.raw_body = request, dict(BODY)
    return ctx, request


@pytest.mark.parametrize(("namespace", "shared_with"), [
    ("key", set()),
    ("team", {"same-team"}),
    ("global", {"same-team", "other-team", "no-key"}),
])
async def test_entries_are_shared_only_inside_the_namespace(namespace: str, shared_with: set[str]) -> None:
    config = parse_config({"backends": {"b": {"type": "openai", "base_url": "http://127.0.0.1:9/v1"}},
                           "models": {"m": {"targets": [{"backend": "b"}]}}, "cache": {"namespace": namespace}})
    cache = build_cache(config, CollectorRegistry(), {})
    assert cache is not None
    owner_ctx, owner_request = context("k1", "red", "owner")
    assert await cache.lookup(owner_ctx, owner_request) is None
    cache.store(owner_ctx, owner_request, answer_for("k1's answer"))
    assert await cache.lookup(*context("k1", "red", "again")) is not None  # the owner always hits
    others = {"same-team": ("k2", "red"), "other-team": ("k3", "blue"), "no-key": (None, None)}
    hits = set()
    for name, (key_id, team) in others.items():
        ctx, request = context(key_id, team, name)
        found = await cache.lookup(ctx, request)
        if found is not None:
            hits.add(name)
            assert found.text == "k1's answer" and ctx.cache_hit == "exact"
        else:
            assert ctx.cache_hit is None and cache.outcome(ctx, request) == "miss"
    assert hits == shared_with


def _create_key(url: str, **settings: Any) -> str:
    created = httpx.post(url + "/admin/keys", json=settings, headers={"authorization": f"Bearer {MASTER}"})
    assert created.status_code == 201, created.text
    return str(created.json()["secret"])


def _ask(url: str, secret: str) -> httpx.Response:
    response = httpx.post(url + "/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {secret}"})
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize(("namespace", "second_key_hits"), [("key", False), ("team", True)])
def test_two_virtual_keys_through_the_gateway(upstream: tuple[OpenAIUpstream, str], tmp_path: Path,
                                              namespace: str, second_key_hits: bool) -> None:
    fake, url = upstream
    config = upstream_config(url, tmp_path / "log.db", server={"master_key": MASTER},
                             cache={"namespace": namespace})
    with run_gateway(config) as gw:
        alice = _create_key(gw.url, name="alice", team="red")
        bob = _create_key(gw.url, name="bob", team="red")
        carol = _create_key(gw.url, name="carol", team="blue")
        assert _ask(gw.url, alice).headers["x-sluice-cache"] == "miss"
        assert _ask(gw.url, alice).headers["x-sluice-cache"] == "hit-exact"
        assert _ask(gw.url, bob).headers["x-sluice-cache"] == ("hit-exact" if second_key_hits else "miss")
        assert _ask(gw.url, carol).headers["x-sluice-cache"] == "miss"  # another team never shares
    assert len(fake.bodies("/v1/chat/completions")) == (2 if second_key_hits else 3)
