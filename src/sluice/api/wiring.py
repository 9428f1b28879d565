"""`AppState`: everything the routes need, built from config at start-up and torn down at shutdown."""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.backends import Backend, build_backend
from sluice.config import SluiceConfig
from sluice.gateway.pipeline import Gateway
from sluice.gateway.slots import Slots
from sluice.routing import RouteTable
from sluice.telemetry.log_writer import RequestLogWriter
from sluice.telemetry.metrics import GatewayMetrics
from sluice.telemetry.recorder import Recorder
from sluice.telemetry.tracing import Tracing

log = logging.getLogger("sluice.api")


@dataclass(slots=True)
class AppState:
    config: SluiceConfig
    backends: dict[str, Backend]
    gateway: Gateway
    recorder: Recorder
    metrics: GatewayMetrics
    master_key: str | None
    started_at: int = field(default_factory=lambda: int(time.time()))
    log_writer: RequestLogWriter | None = None
    engine: AsyncEngine | None = None

    def key_matches(self, token: str) -> bool:
        assert self.master_key is not None
        return hmac.compare_digest(token.encode(), self.master_key.encode())

    def backend_ready(self, name: str) -> bool:
        task = self.gateway.starting.get(name)
        return task is not None and task.done() and not task.cancelled() and task.exception() is None


def build_state(config: SluiceConfig, *, tracing: Tracing | None = None) -> AppState:
    backends = {name: build_backend(name, backend) for name, backend in config.backends.items()}
    metrics = GatewayMetrics()
    recorder = Recorder(metrics, tracing or Tracing(config.telemetry.tracing), sink=None,
                        keep_bodies=config.store.log_bodies != "none")
    slots = {name: Slots(cfg.max_concurrency, metrics.queued.labels(name))
             for name, cfg in config.backends.items()}
    gateway = Gateway(RouteTable(config.models, backends), slots, recorder)
    master_key = config.server.master_key or os.environ.get("SLUICE_MASTER_KEY") or None
    return AppState(config=config, backends=backends, gateway=gateway, recorder=recorder, metrics=metrics,
                    master_key=master_key)


async def start_backends(state: AppState) -> None:
    """Start every backend in the background: live at once, ready when all have loaded."""
    for name, backend in state.backends.items():
        task = asyncio.create_task(backend.start(), name=f"start-{name}")
        task.add_done_callback(_log_start_failure(name))
        state.gateway.starting[name] = task


async def stop_backends(state: AppState) -> None:
    for task in state.gateway.starting.values():
        task.cancel()
    await asyncio.gather(*state.gateway.starting.values(), return_exceptions=True)
    await asyncio.gather(*(backend.close() for backend in state.backends.values()), return_exceptions=True)


def _log_start_failure(name: str):  # type: ignore[no-untyped-def]
    def callback(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("backend %s failed to start: %s", name, task.exception())
    return callback
