"""An SSE response that ends its generator however the client leaves (so the request is always recorded)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from starlette.types import Receive, Scope, Send

from sluice.backends import DONE


class EventStreamResponse:
    def __init__(self, first: bytes, rest: AsyncGenerator[bytes, None], headers: dict[str, str]) -> None:
        self.first = first
        self.rest = rest
        self.finished = False  # the relay's last frame ([DONE]) has been handed to the server
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"),
                            (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
        self.raw_headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pump = asyncio.ensure_future(self._pump(send))
        listen = asyncio.ensure_future(_wait_for_disconnect(receive))
        try:
            await asyncio.wait((pump, listen), return_when=asyncio.FIRST_COMPLETED)
            if self.finished and not pump.done():
                await pump  # the client has the whole answer: let the relay finish its accounting
        finally:
            for task in (pump, listen):
                task.cancel()
            await asyncio.gather(pump, listen, return_exceptions=True)
            await self.rest.aclose()  # records the request even when the client left mid-stream
        if not pump.cancelled() and pump.exception() is not None:
            raise pump.exception()  # type: ignore[misc]

    async def _pump(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await self._send_frame(send, self.first)
        async for frame in self.rest:
            await self._send_frame(send, frame)
        if not self.finished:  # ended with an error event: close the body
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_frame(self, send: Send, frame: bytes) -> None:
        # The relay's last frame ends in [DONE]: close the body in the same write (one syscall less).
        self.finished = frame.endswith(DONE)
        await send({"type": "http.response.body", "body": frame, "more_body": not self.finished})


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
