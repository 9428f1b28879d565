"""Shared plumbing for HTTP upstreams: one pooled aiohttp session, timeouts, and error mapping."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp
import orjson

from sluice.config import AnthropicBackendConfig, OpenAIBackendConfig
from sluice.errors import (
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
    upstream_error_for_status,
)

log = logging.getLogger("sluice.backends")

_DRAIN_TIMEOUT_S = 1.0
_DRAIN_LIMIT_BYTES = 64 * 1024


@dataclass(slots=True, frozen=True)
class UpstreamURL:
    """A backend's base_url taken apart: credentials never travel in the URL, nor reach a message."""

    base: str  # scheme://host[:port]/path, no user:password@, no query
    query: str  # "api-version=…" (Azure-style), appended after every path
    basic_auth: str | None  # `Authorization` value for user:password@ in the URL
    masked: str  # for logs: user:password@ and query values as ***

    @classmethod
    def parse(cls, base_url: str) -> UpstreamURL:
        parts = urlsplit(base_url)
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"  # IPv6
        if parts.port is not None:
            netloc += f":{parts.port}"
        base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        basic_auth = None
        if parts.username is not None or parts.password is not None:
            login, password = unquote(parts.username or ""), unquote(parts.password or "")
            basic_auth = "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()  # RFC 7617, UTF-8
        masked_query = "&".join(f"{pair.partition('=')[0]}=***" for pair in parts.query.split("&") if pair)
        masked = urlunsplit((parts.scheme, ("***@" if basic_auth else "") + netloc, parts.path, masked_query, ""))
        return cls(base, parts.query, basic_auth, masked)

    def join(self, path: str) -> str:
        return f"{self.base}{path}?{self.query}" if self.query else self.base + path


class HTTPUpstream:
    """A pooled client for one upstream base URL (aiohttp: measured fastest relay, see docs/performance.md).

    Errors name the backend, never its URL: a base_url may carry credentials or a token in its query."""

    def __init__(self, name: str, base_url: str, *, headers: dict[str, str], connect_timeout_s: float,
                 read_timeout_s: float, total_timeout_s: float) -> None:
        self.name = name
        self.url = UpstreamURL.parse(base_url)
        self._headers = dict(headers)
        if self.url.basic_auth is not None and not any(k.lower() == "authorization" for k in headers):
            self._headers["authorization"] = self.url.basic_auth  # config validation refuses a second one
        self._timeout = aiohttp.ClientTimeout(total=total_timeout_s, sock_connect=connect_timeout_s,
                                              sock_read=read_timeout_s)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_config(cls, name: str, config: AnthropicBackendConfig | OpenAIBackendConfig,
                    headers: dict[str, str]) -> HTTPUpstream:
        return cls(name, config.base_url, headers=headers, connect_timeout_s=config.connect_timeout_s,
                   read_timeout_s=config.read_timeout_s, total_timeout_s=config.total_timeout_s)

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, headers=self._headers,
                json_serialize=lambda obj: orjson.dumps(obj).decode(), auto_decompress=True,
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @asynccontextmanager
    async def post(self, path: str, body: dict[str, Any], *, headers: dict[str, str] | None = None,
                   error_parser: Callable[[int, bytes], UpstreamError]) -> AsyncIterator[aiohttp.ClientResponse]:
        """POST JSON; yield the response once its status is 2xx, else raise the mapped `UpstreamError`."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        try:
            async with self._session.post(self.url.join(path), data=orjson.dumps(body),
                                          headers={"content-type": "application/json", **(headers or {})}) as resp:
                if resp.status >= 400:
                    raise with_retry_after(error_parser(resp.status, await resp.read()), resp.headers)
                yield resp
                await _finish_body(resp)  # reached only when the caller's block ended without an error
        except UpstreamError:
            raise
        except TimeoutError as exc:
            raise UpstreamTimeout(f"upstream `{self.name}` timed out") from exc
        except aiohttp.ClientConnectorError as exc:
            log.debug("cannot connect to upstream %s at %s: %s", self.name, self.url.masked, exc.os_error)
            raise UpstreamUnavailable(f"cannot connect to upstream `{self.name}`: {_reason(exc)}") from exc
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
            raise UpstreamUnavailable(f"upstream `{self.name}` closed the connection: {_reason(exc)}") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"upstream `{self.name}` failed: {_reason(exc)}") from exc

    async def get_json(self, path: str, *, timeout_s: float = 5.0) -> object | None:
        """The JSON at `path`, or None when it cannot be had (not reachable, an error status, not JSON)."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        try:
            async with self._session.get(self.url.join(path), timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                if resp.status >= 400:
                    return None
                return orjson.loads(await resp.read())
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
            return None

    async def get_ok(self, path: str) -> bool:
        if self._session is None:
            await self.start()
        assert self._session is not None
        try:
            async with self._session.get(self.url.join(path),
                                         timeout=aiohttp.ClientTimeout(total=5)) as resp:
                return resp.status < 500
        except (aiohttp.ClientError, TimeoutError):
            return False


def _reason(exc: aiohttp.ClientError) -> str:
    """What went wrong, in words of our own: aiohttp's messages may quote the URL, query token and all."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "its host name does not resolve"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return "connection refused"
        return f"connection failed ({type(exc.os_error).__name__})"
    if isinstance(exc, aiohttp.ClientOSError):  # e.g. reset mid-request; the OS's words carry no URL
        return f"connection error ({exc.strerror or type(exc).__name__})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "disconnected before answering"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the body was cut short"
    return type(exc).__name__


async def _finish_body(resp: aiohttp.ClientResponse) -> None:
    """Read what the caller left of a body it was done with (the chunked terminator after `[DONE]`).

    aiohttp pools a connection only when its body was read to the end; the terminator often arrives just
    after the last event. A body that goes on (past 64 KiB or a second) is cut instead.
    """
    if resp.content.at_eof():
        return
    left_bytes = _DRAIN_LIMIT_BYTES
    try:
        async with asyncio.timeout(_DRAIN_TIMEOUT_S):
            while left_bytes > 0 and (block := await resp.content.readany()):
                left_bytes -= len(block)
    except (TimeoutError, aiohttp.ClientError):
        pass  # aiohttp then closes the connection instead of pooling it


def with_retry_after(error: UpstreamError, headers: Any) -> UpstreamError:
    if isinstance(error, UpstreamRateLimited) and error.retry_after_s is None:
        error.retry_after_s = parse_retry_after(headers.get("retry-after"))
    return error


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP-date: rare from model servers; the client falls back to its own backoff


def error_message(raw: bytes) -> tuple[str, str | None, str | None]:
    """(message, code, param) from an OpenAI- or Anthropic-style error body, or the raw text."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")[:500] or "no body", None, None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code") or error.get("type")
        return str(error.get("message") or error), str(code) if code else None, error.get("param")
    if isinstance(error, str):  # TGI / Ollama style {"error": "..."}
        return error, None, None
    if isinstance(body, dict) and "message" in body:  # vLLM older versions
        return str(body["message"]), None, None
    if isinstance(body, dict) and "detail" in body:  # FastAPI-based servers' HTTPException / 422 bodies
        return str(body["detail"])[:500], None, None
    return raw.decode("utf-8", "replace")[:500], None, None


def json_object(raw: bytes | str) -> dict[str, Any]:
    """A 2xx body or event as a JSON object; anything else means the upstream is not speaking OpenAI."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamUnavailable(f"upstream sent invalid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise UpstreamUnavailable(f"upstream sent JSON that is not an object: {str(raw)[:200]}")
    return payload


def parse_error(status: int, raw: bytes) -> UpstreamError:
    message, code, param = error_message(raw)
    return upstream_error_for_status(status, message, code=code, param=param)
