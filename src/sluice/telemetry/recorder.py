"""The one place a finished request is accounted for: metrics, span, and the durable log."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from sluice.records import RequestRecord
from sluice.telemetry.metrics import GatewayMetrics
from sluice.telemetry.tracing import Tracing

if TYPE_CHECKING:
    from sluice.gateway.context import RequestContext


class RecordSink(Protocol):
    def submit(self, record: RequestRecord) -> None: ...


class Recorder:
    def __init__(self, metrics: GatewayMetrics, tracing: Tracing, sink: RecordSink | None,
                 keep_bodies: bool) -> None:
        self.metrics = metrics
        self.tracing = tracing
        self.sink = sink
        self.keep_bodies = keep_bodies

    def start(self, ctx: RequestContext, headers: Mapping[str, str] | None = None) -> None:
        """The request body is valid: open its span."""
        if self.tracing.enabled:
            start_ns = time.time_ns() - int(ctx.elapsed_s() * 1e9)
            ctx.span = self.tracing.start(ctx.endpoint, ctx.model, start_ns, headers or {})

    def admit(self, ctx: RequestContext) -> None:
        """The request was routed to a target (so its model is a configured one): count it in flight."""
        ctx.in_flight = self.metrics.in_flight.labels(ctx.model)
        ctx.in_flight.inc()

    def record(self, ctx: RequestContext) -> RequestRecord:
        record = ctx.finish(keep_bodies=self.keep_bodies)
        if ctx.in_flight is not None:
            ctx.in_flight.dec()
            ctx.in_flight = None
        self.metrics.observe(record)
        if ctx.span is not None:
            params = ctx.request.model_dump(exclude_unset=True) if ctx.request is not None else {}
            self.tracing.finish(ctx.span, record, params, time.time_ns())
        if self.sink is not None:
            self.sink.submit(record)
        return record
