"""Start a real gateway (the production app factory) on a loopback port for end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
from starlette.applications import Starlette

from sluice.api import create_app
from sluice.api.wiring import AppState
from sluice.config import parse_config
from sluice.telemetry.tracing import Tracing
from tests.support.servers import serve_app


@dataclass
class RunningGateway:
    url: str
    app: Starlette

    @property
    def state(self) -> AppState:
        return self.app.state.sluice

    def client(self, api_key: str = "unused", **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0, **kwargs)


def upstream_config(upstream_url: str, db_path: Path, **overrides: Any) -> dict[str, Any]:
    """A config with one OpenAI-compatible backend `up` and public model `m` -> upstream `up-model`."""
    config: dict[str, Any] = {
        "store": {"url": f"sqlite:///{db_path}", "log_bodies": "full", "flush_interval_s": 0.05},
        "backends": {"up": {"type": "openai", "base_url": upstream_url + "/v1", "read_timeout_s": 2.0}},
        "models": {"m": {"targets": [{"backend": "up", "model": "up-model"}]}},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


@contextmanager
def run_gateway(config: dict[str, Any], *, tracing: Tracing | None = None) -> Iterator[RunningGateway]:
    app = create_app(parse_config(config), tracing=tracing)
    with serve_app(app) as url:
        yield RunningGateway(url, app)
