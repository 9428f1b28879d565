"""Shadow mode as the gateway runs it: the mirror on the request path and the batched writer of its pairs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.backends import Backend
from sluice.config import SluiceConfig
from sluice.rollout.shadow import DeploymentSource, ShadowMirror
from sluice.rollout.shadow_metrics import ShadowMetrics
from sluice.rollout.shadow_writer import ShadowPairWriter

if TYPE_CHECKING:
    from sluice.cost import GatewayPricing


class ShadowMode:
    """Built with the app; `open` once the store is, `close` before the backends and the store close."""

    def __init__(self, config: SluiceConfig, deployments: DeploymentSource, backends: Mapping[str, Backend],
                 registry: CollectorRegistry, *, pricing: GatewayPricing | None = None) -> None:
        self.config = config
        self.metrics = ShadowMetrics(registry)
        self.mirror = ShadowMirror(deployments, backends, self.metrics, timeout_s=config.shadow.timeout_s,
                                   pricing=pricing, keep_bodies=config.store.log_bodies != "none")
        self.writer: ShadowPairWriter | None = None

    async def open(self, engine: AsyncEngine) -> None:
        shadow = self.config.shadow
        writer = ShadowPairWriter(engine, log_bodies=self.config.store.log_bodies, queue_size=shadow.queue_size,
                                  batch_size=shadow.batch_size, flush_interval_s=shadow.flush_interval_s,
                                  metrics=self.metrics)
        await writer.start()
        self.writer = writer
        self.mirror.sink = writer

    async def close(self) -> None:
        """Give running shadow calls their deadline (at most the shutdown grace), then write what was paired."""
        grace_s = self.config.server.graceful_shutdown_s
        # a call's own deadline ends it; the extra second lets it be recorded as a timeout, not cancelled
        await self.mirror.close(min(self.config.shadow.timeout_s + 1.0, grace_s))
        if self.writer is not None:
            await self.writer.close(timeout_s=grace_s)


__all__ = ["ShadowMode"]
