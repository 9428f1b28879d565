"""The one place a finished request is accounted for: metrics, span, then the record bus (the log and analytics)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sluice.records import RequestRecord
from sluice.telemetry.metrics import GatewayMetrics
from sluice.telemetry.tracing import Tracing

if TYPE_CHECKING:
    from sluice.gateway.context import RequestContext
    from sluice.telemetry.record_bus import RecordBus


class Recorder:
    def __init__(self, metrics: GatewayMetrics, tracing: Tracing, bus: RecordBus | None,
                 keep_bodies: bool) -> None:
        self.metrics = metrics
        self.tracing = tracing
        self.bus = bus  # finished records fan out from here: the request log, analytics
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
        if ctx.stage_s:
            self.metrics.stages.observe(ctx.stage_s)  # each chain stage's own time (not kept in the record)
        if ctx.span is not None:
            params = ctx.request.model_dump(exclude_unset=True) if ctx.request is not None else {}
            self.tracing.finish(ctx.span, record, params, time.time_ns())
        if self.bus is not None:
            self.bus.publish(record)
        return record
