"""A zero-latency OpenAI-compatible upstream: raw asyncio + uvloop, canned answers, for overhead benchmarks.

Run: python benchmarks/zero_upstream.py PORT [CHUNKS]. Answers /v1/chat/completions with a fixed JSON body,
or (when the body asks for "stream": true) with CHUNKS SSE chunks, a usage chunk and [DONE].
It does as little work per request as possible so the gateway, not the upstream, is what gets measured.
"""

from __future__ import annotations

import asyncio
import sys

import orjson

CHUNKS = int(sys.argv[2]) if len(sys.argv) > 2 else 16

_answer = orjson.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok " * CHUNKS},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 8, "completion_tokens": CHUNKS, "total_tokens": 8 + CHUNKS},
})
JSON_RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                 + str(len(_answer)).encode() + b"\r\n\r\n" + _answer)


def _sse_body() -> bytes:
    def frame(obj: dict) -> bytes:
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": "bench"}
    parts = [frame({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                         "finish_reason": None}]})]
    parts += [frame({**base, "choices": [{"index": 0, "delta": {"content": "ok "}, "finish_reason": None}]})
              for _ in range(CHUNKS)]
    parts.append(frame({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    parts.append(frame({**base, "choices": [],
                        "usage": {"prompt_tokens": 8, "completion_tokens": CHUNKS,
                                  "total_tokens": 8 + CHUNKS}}))
    parts.append(b"data: [DONE]\n\n")
    # chunked transfer encoding, one HTTP chunk per SSE event, like a real streaming server
    out = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    return out


SSE_RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                + _sse_body())


class Upstream(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            length = 0
            start = head.find(b"content-length:")
            if start >= 0:
                length = int(head[start + 15:head.find(b"\r\n", start) if head.find(b"\r\n", start) > 0
                                  else len(head)].strip())
            total = head_end + 4 + length
            if len(self.buffer) < total:
                return
            body = self.buffer[head_end + 4:total]
            self.buffer = self.buffer[total:]
            if head.startswith(b"get"):
                self.transport.write(JSON_RESPONSE)  # type: ignore[attr-defined]
            elif b'"stream":true' in body.replace(b" ", b""):
                self.transport.write(SSE_RESPONSE)  # type: ignore[attr-defined]
            else:
                self.transport.write(JSON_RESPONSE)  # type: ignore[attr-defined]


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(int(sys.argv[1])))
