"""Two `sluice serve` processes on one real Redis and one store, as behind a load balancer: a label moved through
one replica is what the other renders next — it kept the old version, and the change notice drops it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.gateway import upstream_config
from tests.support.openai_server import make_openai_upstream
from tests.support.polling import wait_for
from tests.support.replicas import serve_replicas
from tests.support.servers import serve_app

BODY = {"model": "m", "max_tokens": 4,
        "prompt": {"name": "greet", "label": "production", "variables": {"who": "Ada"}}}


@pytest.fixture
def replicas(tmp_path: Path, redis_url: str) -> Iterator[list[str]]:
    db = tmp_path / "store.db"
    with serve_app(make_openai_upstream(models=["up-model"])) as upstream_url:
        config = upstream_config(upstream_url, db, state={"url": redis_url})
        with serve_replicas(config, tmp_path, 2) as urls:
            yield urls


def used(url: str) -> str:
    response = httpx.post(url + "/v1/chat/completions", json=BODY, timeout=10)
    assert response.status_code == 200, response.text
    return response.headers["x-sluice-prompt"]


def test_a_label_moved_on_one_replica_is_rendered_by_the_other(replicas: list[str]) -> None:
    first, second = replicas
    for template in ("Say hello to {{ who }}.", "Say goodbye to {{ who }}."):
        created = httpx.post(f"{first}/admin/prompts/greet/versions", json={"template": template,
                                                                           "variables": ["who"]})
        assert created.status_code == 201, created.text
    assert httpx.put(f"{first}/admin/prompts/greet/labels/production", json={"version": 1}).status_code == 200
    assert used(second) == "greet@1"  # the second replica resolves and keeps version 1
    assert used(second) == "greet@1"
    moved = httpx.put(f"{first}/admin/prompts/greet/labels/production", json={"version": 2, "reason": "v2"})
    assert moved.status_code == 200, moved.text
    # the notice crosses Redis asynchronously; without it the kept version would stay for the 60 s backstop
    wait_for(lambda: used(second) == "greet@2", timeout_s=5.0, what="the second replica to render version 2")
    assert used(first) == "greet@2"
