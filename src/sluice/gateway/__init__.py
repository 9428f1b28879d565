"""The request path: `pipeline` runs each stage in order and produces a `RequestRecord` (defined in records/)."""

from sluice.records import RequestRecord

__all__ = ["RequestRecord"]
