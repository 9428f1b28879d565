"""The request path: `pipeline` runs each stage in order and produces a `RequestRecord`."""

from sluice.gateway.record import RequestRecord

__all__ = ["RequestRecord"]
