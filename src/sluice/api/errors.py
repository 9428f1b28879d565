"""Errors to OpenAI-shaped HTTP responses, in one place."""

from __future__ import annotations

import math

import orjson
from pydantic import ValidationError
from starlette.responses import Response

from sluice.errors import InvalidRequest, SluiceError


def error_response(error: SluiceError, headers: dict[str, str] | None = None) -> Response:
    out = dict(headers or {})
    retry_after_s = getattr(error, "retry_after_s", None)  # UpstreamRateLimited, and admission's refusals
    if retry_after_s is not None:
        out["retry-after"] = str(max(1, math.ceil(retry_after_s)))
    elif error.status_code == 429:
        out.setdefault("retry-after", "1")
    out.update(getattr(error, "response_headers", None) or {})
    return Response(orjson.dumps(error.to_body()), status_code=error.status_code,
                    media_type="application/json", headers=out)


def validation_error(exc: ValidationError) -> InvalidRequest:
    """The first pydantic error as a 400 that names the field (`messages.0.role`)."""
    first = exc.errors()[0]
    path = ".".join(str(part) for part in first["loc"] if not _is_union_tag(part))
    message = first["msg"]
    if first["type"] == "missing":
        message = "field required"
    return InvalidRequest(f"Invalid request: {path or 'body'}: {message}", param=path or None,
                          code="invalid_value" if first["type"] != "missing" else "missing_required_parameter")


def _is_union_tag(part: object) -> bool:
    # pydantic adds the union member's type name to the path (e.g. "str", "list[...]"); drop it.
    return isinstance(part, str) and (part in {"str", "int", "float", "bool"} or part.startswith("list["))
