"""Start a real gateway (the production app factory) on a loopback port for end-to-end tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
from starlette.applications import Starlette

from sluice.api import create_app
from sluice.api.listener import HTTPParser, uvicorn_config
from sluice.compose import AppState
from sluice.config import parse_config
from sluice.records import RequestRecord
from sluice.telemetry.tracing import Tracing
from tests.support.servers import free_port, serve_config


@dataclass
class RunningGateway:
    url: str
    app: Starlette

    @property
    def state(self) -> AppState:
        return self.app.state.sluice

    def client(self, api_key: str = "unused", **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0, **kwargs)

    def metrics_text(self) -> str:
        """The /metrics exposition, scraped with the master key when one is set (it guards the page)."""
        key = self.state.master_key
        headers = {"authorization": f"Bearer {key}"} if key else {}
        response = httpx.get(self.url + "/metrics", headers=headers)
        response.raise_for_status()
        return response.text


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
def run_gateway(config: dict[str, Any], *, tracing: Tracing | None = None,
                http: HTTPParser = "httptools") -> Iterator[RunningGateway]:
    """The gateway served as `sluice serve` serves it (its uvicorn settings), on the asyncio loop."""
    settings = parse_config(config)
    app = create_app(settings, tracing=tracing)
    served = uvicorn_config(app, settings.server, host="127.0.0.1", port=free_port(), loop="asyncio", http=http,
                            log_level="warning", graceful_shutdown_s=2)
    with serve_config(served) as url:
        yield RunningGateway(url, app)


def records(db: Path, limit: int = 10_000) -> list[RequestRecord]:
    """The request log's rows in the SQLite file `db`, newest first."""
    from sluice.store import create_engine, request_log

    async def read() -> list[RequestRecord]:
        engine = create_engine(f"sqlite:///{db}")
        try:
            return await request_log.recent(engine, limit=limit)
        finally:
            await engine.dispose()

    return asyncio.run(read())
