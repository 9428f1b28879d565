"""Error types shared by every package; `api/errors.py` maps them to OpenAI-shaped HTTP responses."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class ErrorClass(StrEnum):
    """Coarse error classes used as a Prometheus label and in the request log."""

    CLIENT = "4xx"  # the client's request was wrong (validation, auth, unknown model, too large)
    SERVER = "5xx"  # upstream 5xx, broken stream, or a gateway fault
    TIMEOUT = "timeout"  # upstream did not answer within the deadline
    UPSTREAM_REJECTED = "upstream_rejected"  # upstream refused the request (4xx, 429)
    CLIENT_DISCONNECT = "client_disconnect"  # client went away before the response finished


class SluiceError(Exception):
    """Base of every error that becomes an HTTP response."""

    status_code: int = 500
    error_type: str = "api_error"
    error_class: ErrorClass = ErrorClass.SERVER

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def to_body(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(SluiceError):
    status_code = 400
    error_type = "invalid_request_error"
    error_class = ErrorClass.CLIENT


class Unauthorized(SluiceError):
    status_code = 401
    error_type = "authentication_error"
    error_class = ErrorClass.CLIENT


class Forbidden(SluiceError):
    status_code = 403
    error_type = "permission_error"
    error_class = ErrorClass.CLIENT


class RequestTimeout(SluiceError):
    """The client did not send the whole request in time; the connection is closed after the answer."""

    status_code = 408
    error_type = "invalid_request_error"
    error_class = ErrorClass.CLIENT
    response_headers: ClassVar[dict[str, str]] = {"connection": "close"}  # the rest of its body may still be on the way


class UnsupportedMediaType(SluiceError):
    status_code = 415
    error_type = "invalid_request_error"
    error_class = ErrorClass.CLIENT


class ModelNotFound(SluiceError):
    status_code = 404
    error_type = "invalid_request_error"
    error_class = ErrorClass.CLIENT

    def __init__(self, model: str) -> None:
        super().__init__(f"The model `{model}` does not exist.", param="model", code="model_not_found")


class RouteNotFound(SluiceError):
    """No route for the path (the API's own 404; an unknown model is `ModelNotFound`)."""

    status_code = 404
    error_type = "invalid_request_error"
    error_class = ErrorClass.CLIENT

    def __init__(self, path: str) -> None:
        super().__init__(f"No route for {path}", code="not_found")


class MethodNotAllowed(SluiceError):
    status_code = 405
    error_type = "invalid_request_error"
    error_class = ErrorClass.CLIENT

    def __init__(self, method: str, path: str) -> None:
        super().__init__(f"{method} is not allowed on {path}", code="method_not_allowed")


class PayloadTooLarge(SluiceError):
    status_code = 413
    error_type = "invalid_request_error"
    error_class = ErrorClass.CLIENT


class UpstreamError(SluiceError):
    """The upstream answered with an error, or could not be reached."""

    status_code = 502
    error_type = "upstream_error"
    error_class = ErrorClass.SERVER


class UpstreamRejected(UpstreamError):
    """Upstream 4xx: the request is relayed as the client's fault with the upstream's status."""

    error_type = "invalid_request_error"
    error_class = ErrorClass.UPSTREAM_REJECTED

    def __init__(self, message: str, *, status_code: int, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message, param=param, code=code)
        self.status_code = status_code


class UpstreamRateLimited(UpstreamRejected):
    error_type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after_s: float | None, code: str | None = None) -> None:
        super().__init__(message, status_code=429, code=code)
        self.retry_after_s = retry_after_s


class UpstreamUnavailable(UpstreamError):
    """Connection refused/reset or upstream 5xx before any byte of the answer."""


class UpstreamTimeout(UpstreamError):
    status_code = 504
    error_type = "timeout_error"
    error_class = ErrorClass.TIMEOUT


class UpstreamStreamBroken(UpstreamError):
    """The upstream stream ended or failed after the answer had started."""


class BackendNotReady(SluiceError):
    status_code = 503
    error_type = "service_unavailable"
    error_class = ErrorClass.SERVER


class InternalError(SluiceError):
    """Anything unexpected: the client gets a plain 500 body, the traceback goes to the server log."""


class ClientDisconnected(SluiceError):
    status_code = 499
    error_type = "client_disconnect"
    error_class = ErrorClass.CLIENT_DISCONNECT


def upstream_error_for_status(status: int, message: str, *, code: str | None = None, param: str | None = None,
                              retry_after_s: float | None = None) -> UpstreamError:
    """An upstream's HTTP error status as our error type: 429 kept, other 4xx relayed, timeouts 504, 5xx 502."""
    if status == 429:
        return UpstreamRateLimited(message, retry_after_s=retry_after_s, code=code)
    if status in (408, 504):
        return UpstreamTimeout(message, code=code)
    if 400 <= status < 500:
        return UpstreamRejected(message, status_code=status, param=param, code=code)
    return UpstreamUnavailable(f"upstream returned {status}: {message}", code=code)


class ConfigError(Exception):
    """A config file is invalid; the message names the bad key path."""


__all__ = [
    "BackendNotReady",
    "ClientDisconnected",
    "ConfigError",
    "ErrorClass",
    "Forbidden",
    "InternalError",
    "InvalidRequest",
    "MethodNotAllowed",
    "ModelNotFound",
    "PayloadTooLarge",
    "RequestTimeout",
    "RouteNotFound",
    "SluiceError",
    "Unauthorized",
    "UnsupportedMediaType",
    "UpstreamError",
    "UpstreamRateLimited",
    "UpstreamRejected",
    "UpstreamStreamBroken",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "upstream_error_for_status",
]
