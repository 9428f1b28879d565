"""The simulator's OpenAI-compatible HTTP server (vLLM's routes, error shapes and /metrics) plus fault admin."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from sluice import __version__
from sluice.backends import (
    DONE,
    BackendCall,
    ChatCompletionRequest,
    Chunk,
    Completion,
    CompletionRequest,
    Endpoint,
    encode_data,
)
from sluice.sim.errors import BadRequest, InjectedError, ModelNotServed, SimError, StreamDropped
from sluice.sim.faults import FaultPlan
from sluice.sim.metrics import CONTENT_TYPE
from sluice.sim.simulator import Simulator
from sluice.sim.timings import ArrivalStamp, Stopwatch, TimedResponse, TimingLog, arrival_ns, received_ns

FAULT_HEADER = "x-sluice-sim-faults"  # names the faults injected into a response, for the tests downstream
SIMULATOR_NOTE = ("Simulated GPU server (sluice sim): timings come from a cost model of the GPU and the text is "
                  "synthetic. No model runs here.")


def create_app(simulator: Simulator, timings: TimingLog | None = None) -> Starlette:
    """The ASGI app. Its lifespan starts and stops the simulator's engine loop.

    With `timings`, every generation request's arrival and frame times go there, served at `/sim/timings`.
    """
    _quiet_dropped_streams()

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await simulator.start()
        try:
            yield
        finally:
            await simulator.stop()

    async def chat(request: Request) -> Response:
        return await _generate(simulator, request, "chat", timings)

    async def completions(request: Request) -> Response:
        return await _generate(simulator, request, "completions", timings)

    async def models(_: Request) -> Response:
        card = {"id": simulator.model_name, "object": "model", "created": int(time.time()),
                "owned_by": "sluice-simulator", "root": simulator.model_name, "parent": None,
                "max_model_len": simulator.max_model_len, "permission": [],
                "simulated": True, "description": SIMULATOR_NOTE + (f" {simulator.description}."
                                                                     if simulator.description else "")}
        return _json({"object": "list", "data": [card]})

    async def health(_: Request) -> Response:
        return Response(status_code=200 if simulator.engine.running else 503)

    async def version(_: Request) -> Response:
        return _json({"version": f"sluice-sim {__version__}", "simulated": True})

    async def metrics(_: Request) -> Response:
        return Response(simulator.metrics.render(), media_type=CONTENT_TYPE)

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            try:
                simulator.set_faults(FaultPlan.model_validate_json(await request.body() or b"{}"))
            except (ValidationError, ValueError) as exc:
                return _error(BadRequest(f"Invalid fault plan: {exc}"))
        elif request.method == "DELETE":
            simulator.set_faults(FaultPlan())
        return _json(simulator.faults.plan.model_dump(mode="json"))

    async def state(_: Request) -> Response:
        core = simulator.core
        return _json({"model": simulator.model_name, "simulated": True, "description": simulator.description,
                      "num_requests_running": core.num_running, "num_requests_waiting": core.num_waiting,
                      "kv_cache_usage": core.kv_cache_usage, "num_preemptions": core.num_preemptions_total,
                      "kv_blocks_total": core.kv_cache.num_blocks, "block_size": core.kv_cache.block_size,
                      "max_model_len": core.max_model_len, "max_num_seqs": core.config.max_num_seqs,
                      "max_num_batched_tokens": core.config.max_num_batched_tokens, "slowdown": core.slowdown,
                      "request_overhead_s": simulator.request_overhead_s, "engine_lag_s": simulator.engine.lag_s})

    async def timing_records(request: Request) -> Response:
        if timings is None:
            return _json({"error": {"message": "Timings are not recorded: start the simulator with --record-timings.",
                                    "type": "NotFoundError", "param": None, "code": 404}}, status_code=404)
        if request.method == "DELETE":
            return _json({"cleared": timings.clear()})
        return _json(timings.to_dict())

    routes = [
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/sim/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/sim/state", state, methods=["GET"]),
        Route("/sim/timings", timing_records, methods=["GET", "DELETE"]),
    ]
    middleware = [Middleware(ArrivalStamp)] if timings is not None else []
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware)


async def _generate(simulator: Simulator, request: Request, endpoint: Endpoint,
                    timings: TimingLog | None = None) -> Response:
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    if timings is None:
        return await _answer(simulator, request, endpoint, request_id)
    stopwatch = Stopwatch(request_id, arrival_ns(request.scope), received_ns(request.scope))
    answer = await _answer(simulator, request, endpoint, request_id, stopwatch)
    return TimedResponse(answer, stopwatch, timings)  # type: ignore[return-value]


async def _answer(simulator: Simulator, request: Request, endpoint: Endpoint, request_id: str,
                  stopwatch: Stopwatch | None = None) -> Response:
    try:
        body = orjson.loads(await request.body())
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        parsed = (ChatCompletionRequest if endpoint == "chat" else CompletionRequest).model_validate(body)
        if parsed.model != simulator.model_name:
            raise ModelNotServed(parsed.model)
        call = BackendCall(endpoint=endpoint, request=parsed, upstream_model=simulator.model_name,
                           request_id=request_id, raw_body=body)
        admission = simulator.admit(call)
    except orjson.JSONDecodeError as exc:
        return _error(BadRequest(f"Invalid JSON body: {exc}"))
    except ValidationError as exc:
        return _error(BadRequest(_validation_message(exc)))
    except SimError as exc:
        return _error(exc)
    headers = {FAULT_HEADER: ",".join(admission.faults.kinds)} if admission.faults.kinds else {}
    chunks = simulator.run(admission) if stopwatch is None else stopwatch.watch(simulator.run(admission))
    if parsed.stream:
        return EventStream(sse_frames(chunks, parsed.include_usage), headers)  # type: ignore[return-value]
    return WholeAnswer(simulator.collect(admission.call, chunks), headers)  # type: ignore[return-value]


async def sse_frames(chunks: AsyncIterator[Chunk], include_usage: bool) -> AsyncIterator[bytes]:
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            if chunk.usage is not None and not include_usage:
                continue
            yield encode_data(chunk.payload)
    yield DONE


class EventStream:
    """An SSE response that stops (and so aborts the engine request) as soon as the client leaves.

    Headers go out at once, as vLLM sends them; frames follow as the engine produces tokens.
    """

    def __init__(self, frames: AsyncIterator[bytes], headers: dict[str, str]) -> None:
        self.frames = frames
        self.headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
        self.headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pump = asyncio.ensure_future(self._pump(send))
        listen = asyncio.ensure_future(_wait_for_disconnect(receive))
        try:
            await asyncio.wait((pump, listen), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, listen):
                task.cancel()
            await asyncio.gather(pump, listen, return_exceptions=True)
            await self.frames.aclose()  # type: ignore[attr-defined]
        if not pump.cancelled() and pump.exception() is not None:
            raise pump.exception()  # type: ignore[misc]  # a dropped stream: uvicorn closes the connection

    async def _pump(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        async for frame in self.frames:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class WholeAnswer:
    """A non-streamed answer, abandoned (and its engine request aborted) if the client leaves first,
    as vLLM's `with_cancellation` does."""

    def __init__(self, answer: Awaitable[Completion], headers: dict[str, str]) -> None:
        self.answer = answer
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        work = asyncio.ensure_future(self.answer)
        listen = asyncio.ensure_future(_wait_for_disconnect(receive))
        try:
            await asyncio.wait((work, listen), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (work, listen):
                task.cancel()
            await asyncio.gather(work, listen, return_exceptions=True)
        if work.cancelled():
            return  # the client left: nobody to answer
        if isinstance(work.exception(), StreamDropped):
            await DroppedResponse(self.headers)(scope, receive, send)
            return
        await _json(work.result().payload, self.headers)(scope, receive, send)


class DroppedResponse:
    """A non-streamed answer cut by a fault: headers promise a body the connection never finishes."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        self.headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        await send({"type": "http.response.body", "body": b'{"id":"', "more_body": True})
        raise StreamDropped("injected fault: response dropped mid-body")


def _json(payload: dict[str, Any], headers: dict[str, str] | None = None, status_code: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status_code, media_type="application/json",
                    headers=headers)


def _error(error: SimError) -> Response:
    headers = {FAULT_HEADER: "error"} if isinstance(error, InjectedError) else {}
    if error.retry_after_s is not None:
        headers["retry-after"] = str(max(1, math.ceil(error.retry_after_s)))
    return _json(error.to_body(), headers, status_code=error.status_code)


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"Invalid request: {where or 'body'}: {first['msg']}"


class _DroppedStreamFilter(logging.Filter):
    """Streams cut on purpose are not server errors: keep them out of uvicorn's error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamDropped))


def _quiet_dropped_streams() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DroppedStreamFilter) for f in logger.filters):
        logger.addFilter(_DroppedStreamFilter())
