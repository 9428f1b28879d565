"""Two `sluice serve` processes on one real Redis and one store, as behind a load balancer: a label moved through
one replica is what the other renders next — it kept the old version, and the change notice drops it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from sluice.store import migrate_sync
from tests.api.test_shutdown import _wait_ready
from tests.support.gateway import upstream_config
from tests.support.openai_server import make_openai_upstream
from tests.support.polling import wait_for
from tests.support.servers import free_port, serve_app

BODY = {"model": "m", "max_tokens": 4,
        "prompt": {"name": "greet", "label": "production", "variables": {"who": "Ada"}}}


@pytest.fixture
def replicas(tmp_path: Path, redis_url: str) -> Iterator[list[str]]:
    db = tmp_path / "store.db"
    with serve_app(make_openai_upstream(models=["up-model"])) as upstream_url:
        config = upstream_config(upstream_url, db, state={"url": redis_url})
        config_file = tmp_path / "gateway.yaml"
        config_file.write_text(yaml.safe_dump(config))
        migrate_sync(config["store"]["url"])  # before both start, so they do not migrate side by side
        urls, procs = [], []
        try:
            for _ in range(2):
                port = free_port()
                urls.append(f"http://127.0.0.1:{port}")
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "sluice", "serve", "--config", str(config_file), "--port", str(port),
                     "--log-level", "warning"], env={**os.environ, "PYTHONUNBUFFERED": "1"}))
            for url, proc in zip(urls, procs, strict=True):
                _wait_ready(url, proc)
            yield urls
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()


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
