"""Shared fixtures: a loopback OpenAI-compatible upstream and a gateway in front of it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import RunningGateway, run_gateway, upstream_config
from tests.support.openai_server import OpenAIUpstream, make_openai_upstream
from tests.support.servers import serve_app

pytest_plugins = [
    "tests.support.postgres",  # postgres_server, postgres_url, database_url
    "tests.support.redis",  # redis_server, redis_url
]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def upstream() -> Iterator[tuple[OpenAIUpstream, str]]:
    app = make_openai_upstream(models=["up-model"])
    with serve_app(app) as url:
        yield app, url


@pytest.fixture
def gateway(upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> Iterator[RunningGateway]:
    _, url = upstream
    with run_gateway(upstream_config(url, tmp_path / "log.db")) as running:
        yield running


@pytest.fixture(scope="session", autouse=True)
def native_runtimes_stay_out_of_the_test_process() -> Iterator[None]:
    """llama.cpp runs only in worker processes: a build that crashes on this CPU fails tests, not the run."""
    yield
    assert "llama_cpp" not in sys.modules, (
        "a test loaded llama_cpp into the pytest process; go through WorkerBackend (build_backend) or a subprocess")
