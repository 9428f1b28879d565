"""Shared plumbing for HTTP upstreams: one pooled aiohttp session, timeouts, and error mapping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

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

_DRAIN_TIMEOUT_S = 1.0
_DRAIN_LIMIT_BYTES = 64 * 1024


class HTTPUpstream:
    """A pooled client for one upstream base URL (aiohttp: measured fastest relay, see docs/performance.md)."""

    def __init__(self, base_url: str, *, headers: dict[str, str], connect_timeout_s: float,
                 read_timeout_s: float, total_timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = headers
        self._timeout = aiohttp.ClientTimeout(total=total_timeout_s, sock_connect=connect_timeout_s,
                                              sock_read=read_timeout_s)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_config(cls, config: AnthropicBackendConfig | OpenAIBackendConfig,
                    headers: dict[str, str]) -> HTTPUpstream:
        return cls(config.base_url, headers=headers, connect_timeout_s=config.connect_timeout_s,
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
            async with self._session.post(self.base_url + path, data=orjson.dumps(body),
                                          headers={"content-type": "application/json", **(headers or {})}) as resp:
                if resp.status >= 400:
                    raise with_retry_after(error_parser(resp.status, await resp.read()), resp.headers)
                yield resp
                await _finish_body(resp)  # reached only when the caller's block ended without an error
        except UpstreamError:
            raise
        except TimeoutError as exc:
            raise UpstreamTimeout(f"upstream {self.base_url} timed out") from exc
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamUnavailable(f"cannot connect to upstream {self.base_url}: {exc.os_error}") from exc
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
            raise UpstreamUnavailable(f"upstream {self.base_url} closed the connection: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"upstream {self.base_url} failed: {exc}") from exc

    async def get_ok(self, path: str) -> bool:
        if self._session is None:
            await self.start()
        assert self._session is not None
        try:
            async with self._session.get(self.base_url + path,
                                         timeout=aiohttp.ClientTimeout(total=5)) as resp:
                return resp.status < 500
        except (aiohttp.ClientError, TimeoutError):
            return False


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
