"""Serve a simulator with uvicorn, behind a connection gate that can refuse connections (a fault)."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from typing import Any

import uvicorn
from uvicorn.config import HTTP_PROTOCOLS
from uvicorn.importer import import_from_string

from sluice.sim.server import create_app
from sluice.sim.simulator import Simulator
from sluice.sim.timings import TimingLog, stamp_received


def gated_protocol(simulator: Simulator, http: str = "auto", stamp_reads: bool = False) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class, made to reset the connections fault injection refuses.

    The refusal happens at accept, before a byte of HTTP: the client sees its connection reset
    (`openai.APIConnectionError`), as when a server is going down. The `/sim/faults` admin route
    shares the port, so a lasting refusal (`refuse.for_s`) locks it out until the window ends.
    With `stamp_reads`, each request's scope gets the time its first bytes were read (`sluice.sim.timings`).
    """
    base: type[Any] = import_from_string(HTTP_PROTOCOLS.get(http, http))

    class GatedProtocol(base):  # type: ignore[misc, valid-type]
        _refused = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            if simulator.refuse_connection():
                self._refused = True
                sock = transport.get_extra_info("socket")
                if sock is not None:  # linger 0: close with a reset rather than an orderly FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
                return
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            if not self._refused:
                super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            read_ns = time.perf_counter_ns() if stamp_reads else 0
            super().data_received(data)
            if stamp_reads:  # parsing began the request's `self.scope`; its app task has not run yet
                stamp_received(getattr(self, "scope", None), read_ns)

        def eof_received(self) -> None:
            if not self._refused:
                super().eof_received()

    GatedProtocol.__name__ = f"Gated{base.__name__}"
    return GatedProtocol


def make_server(simulator: Simulator, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
                http: str = "auto", loop: str = "auto", access_log: bool = False,
                timings: TimingLog | None = None) -> uvicorn.Server:
    """A uvicorn server for the simulator's app; `server.run()` blocks, `await server.serve()` does not.

    With `timings`, requests' true timings are recorded (`/sim/timings`); use `loop="asyncio"` then (see
    `sluice.sim.timings` for why uvloop would stamp frames before they are written).
    """
    config = uvicorn.Config(create_app(simulator, timings), host=host, port=port, log_level=log_level,
                            http=gated_protocol(simulator, http, stamp_reads=timings is not None), loop=loop,
                            access_log=access_log,
                            lifespan="on", timeout_graceful_shutdown=5)
    return uvicorn.Server(config)
