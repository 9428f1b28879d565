"""The simulator's errors, each with the status and body vLLM's OpenAI server would answer with."""

from __future__ import annotations

from typing import Any


class SimError(Exception):
    """An answer that is an HTTP error: `{"error": {message, type, param, code}}` as vLLM sends it."""

    status_code: int = 500
    error_type: str = "InternalServerError"

    def __init__(self, message: str, *, param: str | None = None, status_code: int | None = None,
                 error_type: str | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after_s = retry_after_s
        if status_code is not None:
            self.status_code = status_code
        if error_type is not None:
            self.error_type = error_type

    def to_body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.error_type, "param": self.param,
                          "code": self.status_code}}


class BadRequest(SimError):
    status_code = 400
    error_type = "BadRequestError"


class ContextLengthExceeded(BadRequest):
    """vLLM's two context checks (serving `_validate_input`), with its wording and `(parameter=…)` suffix."""

    @classmethod
    def for_input(cls, max_model_len: int, prompt_tokens: int) -> ContextLengthExceeded:
        return cls(f"This model's maximum context length is {max_model_len} tokens. However, your request has "
                   f"{prompt_tokens} input tokens. Please reduce the length of the input messages. "
                   f"(parameter=input_tokens, value={prompt_tokens})", param="input_tokens")

    @classmethod
    def for_max_tokens(cls, max_model_len: int, prompt_tokens: int, max_tokens: int) -> ContextLengthExceeded:
        return cls(f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This model's maximum "
                   f"context length is {max_model_len} tokens and your request has {prompt_tokens} input tokens "
                   f"({max_tokens} > {max_model_len} - {prompt_tokens}). (parameter=max_tokens, value={max_tokens})",
                   param="max_tokens")


class ModelNotServed(SimError):
    status_code = 404
    error_type = "NotFoundError"

    def __init__(self, model: str) -> None:
        super().__init__(f"The model `{model}` does not exist.", param="model")


_ERROR_TYPES = {400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
                404: "NotFoundError", 408: "RequestTimeoutError", 409: "ConflictError",
                422: "UnprocessableEntityError", 429: "RateLimitError", 500: "InternalServerError",
                502: "BadGatewayError", 503: "ServiceUnavailableError", 504: "GatewayTimeoutError"}


class InjectedError(SimError):
    """An error answer chosen by fault injection."""

    def __init__(self, status_code: int, *, retry_after_s: float | None = None) -> None:
        error_type = _ERROR_TYPES.get(status_code, "ServerError" if status_code >= 500 else "ClientError")
        super().__init__(f"Injected fault: simulated HTTP {status_code} from the sluice simulator.",
                         status_code=status_code, error_type=error_type, retry_after_s=retry_after_s)


class StreamDropped(Exception):
    """Fault injection cut the stream after some tokens: the connection closes without [DONE]."""


class ConnectionRefused(Exception):
    """Fault injection refuses this connection (in-process callers see it before any answer)."""
