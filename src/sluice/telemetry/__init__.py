"""Telemetry: stream timing, Prometheus metrics, OpenTelemetry spans, the request log and its redaction."""

from sluice.telemetry.metrics import GatewayMetrics
from sluice.telemetry.recorder import Recorder
from sluice.telemetry.timing import StreamTimer, tpot_s
from sluice.telemetry.tracing import Tracing

__all__ = ["GatewayMetrics", "Recorder", "StreamTimer", "Tracing", "tpot_s"]
