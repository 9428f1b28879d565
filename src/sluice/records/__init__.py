"""What a request leaves behind: its `RequestRecord` and its ids. Below every runtime package, so the gateway
produces records and telemetry, the store and analyses read them without importing the gateway."""

from sluice.records.record import Json, RequestRecord
from sluice.records.request_ids import CLIENT_REQUEST_ID_MAX_CHARS, client_request_id, new_request_id

__all__ = ["CLIENT_REQUEST_ID_MAX_CHARS", "Json", "RequestRecord", "client_request_id", "new_request_id"]
