"""Reading request bodies: JSON content types, size limits, the body deadline, and clients that leave mid-body."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sluice.errors import ClientDisconnected, InvalidRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType

ADMIN_MAX_BODY_BYTES = 64 * 1024  # admin bodies are settings, never prompts


def check_json_content_type(request: Request) -> None:
    """`application/json` (or `application/*+json`), or no Content-Type at all (as FastAPI, so vLLM, reads it).

    Anything else is a 415: a web page can send text/plain, form and multipart bodies cross-origin without a
    CORS preflight, but never application/json.
    """
    value = request.headers.get("content-type")
    if value is None:
        return
    media_type = value.partition(";")[0].strip().lower()
    if media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json")):
        return
    raise UnsupportedMediaType(f"Content-Type `{media_type or value}` is not supported; send `application/json`.",
                               code="unsupported_media_type")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body of a JSON request, at most `limit` bytes; a client gone mid-body is a 499."""
    check_json_content_type(request)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body is {declared} bytes; the limit is {limit}.", code="body_too_large")
    body = bytearray()
    try:
        async for piece in request.stream():
            body += piece
            if len(body) > limit:
                raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.", code="body_too_large")
    except ClientDisconnect:
        raise ClientDisconnected("The client disconnected while sending the request body.",
                                 code="client_disconnected") from None
    return bytes(body)


async def read_json_object(request: Request, limit: int = ADMIN_MAX_BODY_BYTES) -> dict[str, Any]:
    """An admin body: a JSON object, or `{}` when there is none."""
    raw = await read_body(request, limit)
    try:
        data = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Invalid JSON body: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return data


class BodyDeadline:
    """ASGI middleware: a request's whole body must arrive within `timeout_s` of its headers.

    uvicorn has no such timeout, so a client trickling a body holds its connection forever. A read past the
    deadline raises `RequestTimeout` in the route reading the body, which answers 408 (the request log gets its
    row) and closes the connection. Once the body is in, `receive` is passed through untouched.
    """

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        body_done = False

        async def receive_in_time() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(f"The request body did not arrive within {self.timeout_s:g} s.",
                                     code="body_timeout") from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, receive_in_time, send)


__all__ = ["ADMIN_MAX_BODY_BYTES", "BodyDeadline", "check_json_content_type", "read_body", "read_json_object"]
