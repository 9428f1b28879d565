"""Telemetry: stream timing, Prometheus metrics, OpenTelemetry spans, the request log and its redaction.

The batch writer, the record bus and the request-log writer import SQLAlchemy (and the store), so their names
load on first use: the simulator and the bench client never load a database client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluice.lazy import on_first_use
from sluice.telemetry.metrics import E2E_BUCKETS_S, GatewayMetrics
from sluice.telemetry.recorder import Recorder
from sluice.telemetry.redact import CARD, EMAIL, IBAN, IP, PHONE, SECRET, redact
from sluice.telemetry.timing import StreamTimer, tpot_s
from sluice.telemetry.tracing import Tracing

if TYPE_CHECKING:
    from sluice.telemetry.batch_writer import (
        Admission,
        BatchWriter,
        DropOverflow,
        RowsRejected,
        insert_retrying,
        map_yielding,
    )
    from sluice.telemetry.log_writer import RequestLogWriter
    from sluice.telemetry.record_bus import RecordBus

_ON_FIRST_USE = {  # name -> module: these import SQLAlchemy (the log writer, the store too)
    "Admission": "sluice.telemetry.batch_writer",
    "BatchWriter": "sluice.telemetry.batch_writer",
    "DropOverflow": "sluice.telemetry.batch_writer",
    "RowsRejected": "sluice.telemetry.batch_writer",
    "insert_retrying": "sluice.telemetry.batch_writer",
    "map_yielding": "sluice.telemetry.batch_writer",
    "RecordBus": "sluice.telemetry.record_bus",
    "RequestLogWriter": "sluice.telemetry.log_writer",
}


__getattr__ = on_first_use(__name__, _ON_FIRST_USE)


__all__ = [
    "CARD",
    "E2E_BUCKETS_S",
    "EMAIL",
    "IBAN",
    "IP",
    "PHONE",
    "SECRET",
    "Admission",
    "BatchWriter",
    "DropOverflow",
    "GatewayMetrics",
    "RecordBus",
    "Recorder",
    "RequestLogWriter",
    "RowsRejected",
    "StreamTimer",
    "Tracing",
    "insert_retrying",
    "map_yielding",
    "redact",
    "tpot_s",
]
