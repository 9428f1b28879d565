"""How the gateway listens: uvicorn's settings from `server:`, plus the request-head deadline uvicorn lacks."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

import uvicorn

from sluice.config import ServerConfig

log = logging.getLogger("sluice.api")

HTTPParser = Literal["httptools", "h11"]


class _HeadDeadline(asyncio.Protocol):
    """Closes a connection whose request head (request line and headers) is not complete `header_timeout_s`
    after the connection opened or the request's first byte arrived (slowloris).

    uvicorn times only the idle gap between two requests (`timeout_keep_alive`), and every byte resets it.
    Mixed into uvicorn's own protocol classes: both replace their `cycle` when a head is complete. The body
    has its own deadline, in `read_body` (api/body.py), so a slow body gets an answer (408).
    """

    header_timeout_s: float  # set on the class `with_head_deadline` makes
    cycle: Any  # uvicorn's RequestResponseCycle of the latest request, None before the first
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head_deadline()  # an idle new connection is a request that has not started

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:
            self._disarm_head_deadline()  # a head is complete: the app has the request
        elif (cycle is None or cycle.response_complete) and self._head_timer is None:
            self._arm_head_deadline()  # the first bytes of the next request (a kept-alive connection)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _disarm_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            log.debug("closing a connection whose request head took over %g s", self.header_timeout_s)
            self.transport.close()


def with_head_deadline(parser: HTTPParser, header_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's protocol class for `parser`, closing connections whose request head is late."""
    if parser == "h11":
        from uvicorn.protocols.http.h11_impl import H11Protocol as base
    else:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base  # type: ignore[assignment]
    return type(f"{base.__name__}WithHeadDeadline", (_HeadDeadline, base), {"header_timeout_s": header_timeout_s})


def uvicorn_config(app: Any, server: ServerConfig, *, host: str, port: int, loop: str = "uvloop",
                   http: HTTPParser = "httptools", log_level: str = "info", access_log: bool = False,
                   graceful_shutdown_s: float | None = None) -> uvicorn.Config:
    """The one uvicorn config of the gateway (`sluice serve` and the end-to-end tests)."""
    return uvicorn.Config(
        app, host=host, port=port, loop=loop, http=with_head_deadline(http, server.header_timeout_s),
        log_level=log_level, access_log=access_log,
        timeout_graceful_shutdown=int(server.graceful_shutdown_s if graceful_shutdown_s is None
                                      else graceful_shutdown_s),
        timeout_keep_alive=server.keep_alive_timeout_s,  # type: ignore[arg-type]  # a float works: call_later
        limit_concurrency=server.max_connections,
    )


__all__ = ["HTTPParser", "uvicorn_config", "with_head_deadline"]
