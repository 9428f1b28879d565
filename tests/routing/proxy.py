"""A loopback TCP proxy that can be killed: every open connection reset, new ones refused — a crashed replica.

    with serve_app(upstream) as url, KillableProxy(url) as proxy:
        base_url = proxy.url + "/v1"       # the gateway talks to the upstream through the proxy
        ...
        proxy.kill()                       # as if the machine behind it had died
"""

from __future__ import annotations

import asyncio
import socket
import threading
from types import TracebackType
from urllib.parse import urlsplit


class KillableProxy:
    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()
        self.connections = 0  # accepted so far
        self.killed = threading.Event()
        self.url = ""

    def __enter__(self) -> KillableProxy:
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if not self.killed.is_set():
            self.kill()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def kill(self) -> None:
        """Stop listening and reset every connection (RST, no FIN): in-flight requests break mid-way."""
        asyncio.run_coroutine_threadsafe(self._kill(), self._loop).result(timeout=10)
        self.killed.set()

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _kill(self) -> None:
        assert self._server is not None
        self._server.close()
        for transport in list(self._transports):
            sock = transport.get_extra_info("socket")
            if sock is not None:  # linger 0: close sends RST
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            transport.abort()
        self._transports.clear()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            client_writer.transport.abort()
            return
        pair = (client_writer.transport, upstream_writer.transport)
        self._transports.update(pair)  # type: ignore[arg-type]
        try:
            await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))
        finally:
            for transport in pair:
                self._transports.discard(transport)  # type: ignore[arg-type]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while block := await reader.read(65536):
            writer.write(block)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        if not writer.transport.is_closing():
            writer.close()  # a clean end (FIN) passes on as one, after what was written
