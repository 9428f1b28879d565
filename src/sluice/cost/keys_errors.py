"""Why admission refuses a request, as OpenAI-shaped errors (api/errors.py maps them to HTTP)."""

from __future__ import annotations

from typing import ClassVar

from sluice.errors import ErrorClass, SluiceError


class ModelNotAllowed(SluiceError):
    """403: the virtual key may not call this model."""

    status_code = 403
    error_type = "permission_error"
    error_class = ErrorClass.CLIENT

    def __init__(self, model: str, key_id: str) -> None:
        super().__init__(f"The API key `{key_id}` is not allowed to use the model `{model}`.",
                         param="model", code="model_not_allowed")


class RateLimitExceeded(SluiceError):
    """429 + retry-after: the key's RPM or TPM window is full (OpenAI's type is `requests` or `tokens`)."""

    status_code = 429
    error_class = ErrorClass.CLIENT

    def __init__(self, message: str, *, limit: str, retry_after_s: float | None) -> None:
        super().__init__(message, code="rate_limit_exceeded")
        self.error_type = "tokens" if limit == "tpm" else "requests"
        self.limit = limit
        self.retry_after_s = retry_after_s  # None: larger than the whole limit, waiting will not help
        self.response_headers = {} if retry_after_s is not None else {"x-should-retry": "false"}


class BudgetExceeded(SluiceError):
    """429 `insufficient_quota`, as OpenAI answers an exhausted quota; `x-should-retry: false` stops SDK retries."""

    status_code = 429
    error_type = "insufficient_quota"
    error_class = ErrorClass.CLIENT
    response_headers: ClassVar[dict[str, str]] = {"x-should-retry": "false"}

    def __init__(self, message: str, *, window: str, retry_after_s: float | None) -> None:
        super().__init__(message, code="insufficient_quota")
        self.window = window
        self.retry_after_s = retry_after_s  # until the day/month window resets; None for a total budget


class KeyNotFound(SluiceError):
    """404 on the admin API: no virtual key has this id."""

    status_code = 404
    error_type = "invalid_request_error"
    error_class = ErrorClass.CLIENT

    def __init__(self, key_id: str) -> None:
        super().__init__(f"No virtual key with id `{key_id}`.", param="id", code="key_not_found")


class KeysUnavailable(SluiceError):
    """503: the key store or the shared state could not be reached (and keys.fail_open is off)."""

    status_code = 503
    error_type = "service_unavailable"
    error_class = ErrorClass.SERVER


__all__ = ["BudgetExceeded", "KeyNotFound", "KeysUnavailable", "ModelNotAllowed", "RateLimitExceeded"]
