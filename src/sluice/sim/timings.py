"""Ground-truth timings of served requests (opt-in): when each arrived and when each of its frames was written.

Times are `time.perf_counter_ns()`: on Linux that is CLOCK_MONOTONIC, one clock for every process on the
host, so a load generator on the same machine can compare its own perf_counter readings with these.

Where the stamps are taken:
- received: when the server's protocol read the request's first bytes from the socket (`data_received`,
  the first Python code to see them; `sluice.sim.runner` stamps it), so before parsing and before the app
  task waits its turn on the event loop.
- arrival: when the request enters the app (`ArrivalStamp`, the outermost user middleware), i.e. once uvicorn
  has parsed it and the app task got the loop; Starlette's routing comes after. TTFT and E2E count from here,
  as a server measures them (vLLM stamps its arrival inside the app too).
- each frame: right after the server's ASGI `send` returns. uvicorn (httptools and h11) calls
  `transport.write` inside `send`; asyncio's selector transport then calls send(2) at once when nothing is
  queued, so the stamp follows the bytes reaching the kernel. uvloop queues small writes until the end of
  the loop iteration instead, so a recording server runs on the asyncio loop (`sluice sim --record-timings`).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sluice.backends import Chunk

ARRIVAL_SCOPE_KEY = "sluice.sim.arrived_ns"
RECEIVED_SCOPE_KEY = "sluice.sim.received_ns"
DEFAULT_CAPACITY = 200_000  # requests kept; the oldest go first (a long soak must not grow without bound)
NS_PER_S = 1e9


@dataclass(slots=True, frozen=True)
class ServedTimings:
    """One request as the server saw it; all times perf_counter_ns."""

    request_id: str  # the `x-request-id` header, else a generated id
    response_id: str | None  # the completion id in the answer (None for an error answer)
    status: int
    received_ns: int | None  # the request's first bytes read off the socket (None: not stamped)
    arrived_ns: int
    token_ns: tuple[int, ...]  # each frame carrying output text, just after it was written
    last_frame_ns: int | None  # the last frame with content: `data: [DONE]` of a stream, a whole JSON answer
    end_ns: int | None  # the response finished (chunked encoding's terminator written); None if it was cut

    @property
    def ttft_s(self) -> float | None:
        """Arrival to the first frame carrying output text, as the bench client defines TTFT."""
        return (self.token_ns[0] - self.arrived_ns) / NS_PER_S if self.token_ns else None

    @property
    def itl_s(self) -> tuple[float, ...]:
        """Gaps between consecutive text-carrying frames."""
        return tuple((later - earlier) / NS_PER_S for earlier, later in itertools.pairwise(self.token_ns))

    @property
    def e2e_s(self) -> float | None:
        """Arrival to the last frame with content (`[DONE]`): where the bench client stops reading."""
        return None if self.last_frame_ns is None else (self.last_frame_ns - self.arrived_ns) / NS_PER_S

    def to_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "response_id": self.response_id, "status": self.status,
                "received_ns": self.received_ns, "arrived_ns": self.arrived_ns, "token_ns": list(self.token_ns),
                "last_frame_ns": self.last_frame_ns, "end_ns": self.end_ns}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServedTimings:
        return cls(request_id=data["request_id"], response_id=data["response_id"], status=data["status"],
                   received_ns=data["received_ns"], arrived_ns=data["arrived_ns"], token_ns=tuple(data["token_ns"]),
                   last_frame_ns=data["last_frame_ns"], end_ns=data["end_ns"])


class TimingLog:
    """The finished requests' timings, in completion order, at most `capacity` of them."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._records: deque[ServedTimings] = deque(maxlen=capacity)
        self.dropped = 0  # records pushed out by the capacity since the last clear

    def add(self, record: ServedTimings) -> None:
        if len(self._records) == self._records.maxlen:
            self.dropped += 1
        self._records.append(record)

    def records(self) -> list[ServedTimings]:
        return list(self._records)

    def clear(self) -> int:
        """Forget every record; returns how many there were."""
        count = len(self._records)
        self._records.clear()
        self.dropped = 0
        return count

    def to_dict(self) -> dict[str, Any]:
        return {"clock": "perf_counter_ns", "dropped": self.dropped,
                "requests": [record.to_dict() for record in self._records]}


def parse_timings(document: dict[str, Any]) -> list[ServedTimings]:
    """The records of a `GET /sim/timings` answer."""
    return [ServedTimings.from_dict(item) for item in document["requests"]]


class ArrivalStamp:
    """ASGI middleware: stamps each HTTP request's arrival into its scope before anything else runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[ARRIVAL_SCOPE_KEY] = time.perf_counter_ns()
        await self.app(scope, receive, send)


def arrival_ns(scope: Scope) -> int:
    """The stamp `ArrivalStamp` left, or now (an app built without it)."""
    stamp = scope.get(ARRIVAL_SCOPE_KEY)
    return stamp if isinstance(stamp, int) else time.perf_counter_ns()


def stamp_received(scope: dict[str, Any] | None, read_ns: int) -> None:
    """Note the read that brought a request's first bytes; later reads (the rest of its body) keep it."""
    if scope is not None:
        scope.setdefault(RECEIVED_SCOPE_KEY, read_ns)


def received_ns(scope: Scope) -> int | None:
    stamp = scope.get(RECEIVED_SCOPE_KEY)
    return stamp if isinstance(stamp, int) else None


class Stopwatch:
    """Times one response: wrap its chunks with `watch` and its ASGI `send` with `TimedResponse`.

    A frame counts as a token when the chunk last pulled from `watch` carried output text: frames are made
    lazily, one chunk at a time, so the chunk last pulled is the one the frame being sent was made from
    (the usage chunk, or none, before `[DONE]`).
    """

    __slots__ = ("arrived_ns", "end_ns", "last_frame_ns", "pulled_output", "received_ns", "request_id",
                 "response_id", "status", "token_ns")

    def __init__(self, request_id: str, arrived_ns: int, received_ns: int | None = None) -> None:
        self.request_id = request_id
        self.received_ns = received_ns
        self.arrived_ns = arrived_ns
        self.response_id: str | None = None
        self.status = 0
        self.token_ns: list[int] = []
        self.last_frame_ns: int | None = None
        self.end_ns: int | None = None
        self.pulled_output = False

    async def watch(self, chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
        async with contextlib.aclosing(chunks):  # type: ignore[type-var]
            async for chunk in chunks:
                if self.response_id is None:
                    self.response_id = chunk.payload.get("id")
                self.pulled_output = chunk.has_output
                yield chunk
        self.pulled_output = False

    def on_sent(self, message: Message) -> None:
        now_ns = time.perf_counter_ns()
        if message["type"] == "http.response.start":
            self.status = message["status"]
            return
        if message.get("body"):
            self.last_frame_ns = now_ns
            if self.pulled_output:
                self.token_ns.append(now_ns)
                self.pulled_output = False  # one chunk, one frame
        if not message.get("more_body", False):
            self.end_ns = now_ns

    def result(self) -> ServedTimings:
        return ServedTimings(self.request_id, self.response_id, self.status, self.received_ns, self.arrived_ns,
                             tuple(self.token_ns), self.last_frame_ns, self.end_ns)


class TimedResponse:
    """An ASGI response wrapped so every message it sends is stamped; the record is logged when it ends."""

    def __init__(self, response: ASGIApp, stopwatch: Stopwatch, log: TimingLog) -> None:
        self.response = response
        self.stopwatch = stopwatch
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stopwatch = self.stopwatch

        async def timed_send(message: Message) -> None:
            await send(message)
            stopwatch.on_sent(message)

        try:
            await self.response(scope, receive, timed_send)
        finally:
            self.log.add(stopwatch.result())

