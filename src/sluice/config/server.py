"""Server, store and telemetry sections."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sluice.config._base import _Strict


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(4000, ge=0, le=65535)
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0)
    master_key: str | None = None  # also read from SLUICE_MASTER_KEY
    metrics_token: str | None = None  # a scrape token for /metrics (Bearer), besides the master key
    graceful_shutdown_s: float = Field(30.0, ge=0)
    # Slow or stalled clients (slowloris): what a connection may hold before it is closed (docs/config.md).
    header_timeout_s: float = Field(10.0, gt=0)  # connection open (or a request's first byte) -> headers complete
    body_timeout_s: float = Field(60.0, gt=0)  # headers complete -> the whole body read; 408 after
    keep_alive_timeout_s: float = Field(30.0, gt=0)  # idle between two requests on one connection
    max_connections: int | None = Field(2048, gt=0)  # more connections or requests in flight: 503; null: no cap


class StoreConfig(_Strict):
    url: str = "sqlite:///sluice.db"
    log_bodies: Literal["full", "redacted", "none"] = "redacted"
    queue_size: int = Field(10_000, gt=0)
    batch_size: int = Field(500, gt=0)
    flush_interval_s: float = Field(0.25, gt=0)


class TracingConfig(_Strict):
    exporter: Literal["none", "console", "otlp", "memory"] = "none"
    endpoint: str | None = None  # OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces
    service_name: str = "sluicegate"
    sample_ratio: float = Field(1.0, ge=0, le=1)


class TelemetryConfig(_Strict):
    tracing: TracingConfig = TracingConfig()


__all__ = [
    "ServerConfig",
    "StoreConfig",
    "TelemetryConfig",
    "TracingConfig",
]
