"""Server-sent-events framing: parse an upstream byte stream into events, encode events for clients."""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(slots=True, frozen=True)
class SSEEvent:
    event: str  # "message" when the upstream sent no `event:` field
    data: str
    # Another complete event arrived in the same read, so there is no wait before it (not part of equality).
    more_buffered: bool = field(default=False, compare=False)


class _EventBuilder:
    """Folds SSE lines (without their line ending) into events, per the WHATWG rules."""

    __slots__ = ("data", "event")

    def __init__(self) -> None:
        self.event = ""
        self.data: list[str] = []

    def feed(self, line: str) -> SSEEvent | None:
        if not line:  # a blank line dispatches the event being built, if it has data
            event = SSEEvent(self.event or "message", "\n".join(self.data)) if self.data else None
            self.event, self.data = "", []
            return event
        if line[0] == ":":
            return None  # comment / keep-alive
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "data":
            self.data.append(value)
        elif name == "event":
            self.event = value
        return None  # `id`, `retry` and unknown fields do not matter to a relay


async def iter_sse(stream: AsyncIterable[bytes]) -> AsyncIterator[SSEEvent]:
    """Yield events from a byte stream cut anywhere: lines (`resp.content`) or raw blocks (`iter_any()`).

    Lines end in LF or CRLF (a lone CR is not taken as a line end). There is no line-length limit. A final
    event without the closing blank line is still yielded. Invalid UTF-8 becomes U+FFFD, as the spec says.
    """
    builder = _EventBuilder()
    pending: list[bytes] = []  # the start of a line whose end has not arrived yet
    first = True
    async for block in stream:
        if first and block:
            first = False
            if block.startswith(codecs.BOM_UTF8):
                block = block[len(codecs.BOM_UTF8):]
        if b"\n" not in block:
            pending.append(block)
            continue
        if pending:
            pending.append(block)
            block = b"".join(pending)
            pending.clear()
        *lines, rest = block.split(b"\n")
        if rest:
            pending.append(rest)
        events = []
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            event = builder.feed(line[:-1] if line[-1:] == "\r" else line)
            if event is not None:
                events.append(event)
        if events:
            last = events.pop()
            for event in events:
                yield SSEEvent(event.event, event.data, True)
            yield last
    if pending:
        line = b"".join(pending).decode("utf-8", "replace")
        builder.feed(line[:-1] if line[-1:] == "\r" else line)
    event = builder.feed("")  # a final event without the closing blank line still counts
    if event is not None:
        yield event


def encode_data(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


DONE = b"data: [DONE]\n\n"
