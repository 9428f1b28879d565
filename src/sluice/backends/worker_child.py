"""The worker process of a local runtime: `python -m sluice.backends.worker_child`, started by `WorkerBackend`.

It reads the hello (backend name and config) on stdin, loads the runtime in-process here, answers `ready`, then
serves stream/embed/cancel requests concurrently until stdin closes. Its stdout carries only the protocol;
whatever the runtime prints goes to stderr, which is the gateway's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from pydantic import TypeAdapter

from sluice.backends import _worker_protocol as wire
from sluice.backends.base import Backend, ServesAdapter
from sluice.backends.factory import build_runtime
from sluice.config import BackendConfig
from sluice.errors import BackendNotReady

log = logging.getLogger("sluice.worker")
# Fault injection for tests and drills (docs/local-models.md): `crash-on-load` kills the worker with SIGSEGV
# before it loads, the way a runtime built for another CPU dies.
FAULT_ENV = "SLUICE_WORKER_FAULT"


class _Worker:
    def __init__(self, backend: Backend, writer: asyncio.StreamWriter) -> None:
        self.backend = backend
        self.writer = writer
        self.tasks: dict[int, asyncio.Task[None]] = {}

    def send(self, message: dict[str, Any]) -> None:
        self.writer.write(wire.encode(message))

    def handle(self, message: dict[str, Any]) -> None:
        op, request_id = message.get("op"), int(message.get("id", 0))
        if op == "stream":
            self._spawn(request_id, self._stream(request_id, message["call"]))
        elif op == "embed":
            self._spawn(request_id, self._embed(request_id, message["embed"]))
        elif op == "cancel":
            task = self.tasks.pop(request_id, None)
            if task is not None:
                task.cancel()  # closes the runtime's stream: its generation thread stops at the next token
        elif op == "stats":
            generating = sum(thread.name.startswith("sluice-generate-") for thread in threading.enumerate())
            self.send({"id": request_id, "stats": {"requests": len(self.tasks), "generating": generating,
                                                   "pid": os.getpid()}})
        else:
            self.send({"id": request_id, "error": wire.error_to_wire(ValueError(f"unknown op {op!r}"))})

    def _spawn(self, request_id: int, work: Any) -> None:
        task = asyncio.create_task(work)
        self.tasks[request_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(request_id, None))

    async def _stream(self, request_id: int, call_wire: dict[str, Any]) -> None:
        try:
            call = wire.call_from_wire(call_wire)
            async for chunk in self.backend.stream(call):
                self.send({"id": request_id, "chunk": wire.chunk_to_wire(chunk)})
                await self.writer.drain()
            self.send({"id": request_id, "end": True})
        except asyncio.CancelledError:
            pass  # the gateway cancelled it and no longer listens
        except Exception as exc:
            self.send({"id": request_id, "error": wire.error_to_wire(exc)})

    async def _embed(self, request_id: int, embed_wire: dict[str, Any]) -> None:
        from sluice.backends.types import EmbeddingRequest

        try:
            request = EmbeddingRequest.model_validate(embed_wire["request"])
            result = await self.backend.embed(request, embed_wire["upstream_model"])
            self.send({"id": request_id, "embeddings": wire.embeddings_to_wire(result)})
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            self.send({"id": request_id, "error": wire.error_to_wire(exc)})


async def _serve(protocol_fd: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=wire.LINE_LIMIT_BYTES)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin,
                                                        os.fdopen(protocol_fd, "wb", buffering=0))
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    hello = wire.decode(await reader.readline())
    name = str(hello["name"])
    started = time.perf_counter()
    try:
        if os.environ.get(FAULT_ENV) == "crash-on-load":
            os.kill(os.getpid(), signal.SIGSEGV)
        config = TypeAdapter(BackendConfig).validate_python(hello["config"])
        backend = build_runtime(name, config)
        await backend.start()
    except Exception as exc:
        # Our own checks (a missing file or package) fail the same way every time: not worth a retry.
        writer.write(wire.encode({"failed": wire.error_to_wire(exc), "permanent": isinstance(exc, BackendNotReady)}))
        await writer.drain()
        return
    adapter = backend.adapter if isinstance(backend, ServesAdapter) else None
    writer.write(wire.encode({"ready": {"pid": os.getpid(), "load_s": round(time.perf_counter() - started, 3),
                                        "adapter": None if adapter is None else adapter.to_dict()}}))
    worker = _Worker(backend, writer)
    while line := await reader.readline():
        worker.handle(wire.decode(line))
    for task in list(worker.tasks.values()):  # stdin closed: the gateway is closing us, or is gone
        task.cancel()
    await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
    await backend.close()


def main() -> None:
    # fd 1 becomes the protocol channel; anything written to stdout from here on (Python or C) goes to stderr.
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, format=f"sluice-worker[{os.getpid()}] %(levelname)s %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the gateway decides when we stop (stdin EOF)
    asyncio.run(_serve(protocol_fd))


if __name__ == "__main__":
    main()
