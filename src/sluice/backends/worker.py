"""`WorkerBackend`: a local runtime (GGUF, transformers, sentence-transformers) in a supervised worker process.

A native crash there (SIGILL from a CPU-specific build, SIGSEGV, the OOM killer) must never take the gateway
down: the requests the worker had end with an OpenAI-shaped 503 (or a stream error event once output has
started), the worker is restarted, and every other model keeps serving. vLLM v1 keeps its engine core in its
own process for the same reason.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from sluice.backends import _worker_protocol as wire
from sluice.backends.base import ServedAdapter
from sluice.backends.chunks import collect
from sluice.backends.factory import local_structured_output
from sluice.backends.types import BackendCall, Chunk, Completion, EmbeddingRequest, Embeddings, Endpoint
from sluice.config import EmbeddingBackendConfig, GGUFBackendConfig, TransformersBackendConfig
from sluice.errors import BackendNotReady, UpstreamStreamBroken

log = logging.getLogger("sluice.backends.worker")

LocalRuntimeConfig = GGUFBackendConfig | TransformersBackendConfig | EmbeddingBackendConfig
MAX_START_ATTEMPTS = 3  # consecutive failed starts before the backend is reported failed
_STABLE_S = 30.0  # a worker that ran this long before dying is restarted at once; quicker deaths back off
_STOP_TIMEOUT_S = 5.0


class WorkerCrashed(UpstreamStreamBroken):
    """The worker process died while streaming an answer: the client's stream ends with this error event."""

    status_code = 503
    error_type = "service_unavailable"


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.restarts = Counter("sluice_backend_worker_restarts", "Local-runtime worker processes that died "
                                "and were restarted, by backend and how they died.", ["backend", "reason"],
                                registry=registry)
        self.lost = Counter("sluice_backend_worker_lost_requests", "Requests in flight in a worker process "
                            "when it died (each answered 503 or ended with an error event).", ["backend"],
                            registry=registry)
        self.up = Gauge("sluice_backend_worker_up", "1 while the backend's worker process is loaded and serving.",
                        ["backend"], registry=registry)


@dataclass(slots=True, eq=False)
class _Process:
    process: asyncio.subprocess.Process
    ready_at: float
    pending: dict[int, asyncio.Queue[dict[str, Any]]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def send(self, message: dict[str, Any]) -> None:
        stdin = self.process.stdin
        if self.alive and stdin is not None and not stdin.is_closing():
            stdin.write(wire.encode(message))


def _exit_label(returncode: int) -> str:
    """The `reason` label of a restart: the signal's name (`SIGKILL`), or `status N`."""
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"status {returncode}"


def describe_exit(returncode: int) -> str:
    """How a worker ended, for logs and errors: `killed by SIGKILL`, `exited with status 1`."""
    label = _exit_label(returncode)
    return f"killed by {label}" if returncode < 0 else f"exited with {label}"


class WorkerBackend:
    """The `Backend` of a local runtime that runs in its own process (`python -m sluice.backends.worker_child`)."""

    def __init__(self, name: str, config: LocalRuntimeConfig, *, metrics: WorkerMetrics | None = None) -> None:
        self.name = name
        self.type: str = config.type
        self.endpoints: frozenset[Endpoint] = (frozenset({"embeddings"}) if isinstance(config, EmbeddingBackendConfig)
                                               else frozenset({"chat", "completions"}))
        self._config = config
        # What it enforces of response_format (structured/support.py); vLLM's constraints: asked for in the prompt.
        self.structured_output, self.unenforced_keywords = local_structured_output(config)
        self.structured_extras: frozenset[str] = frozenset()
        self._metrics = metrics
        self._process: _Process | None = None
        self._starting: asyncio.Task[_Process] | None = None
        self._state, self._reason = "starting", None
        self._closing = False
        self._backing_off = False  # a crash loop: requests get 503 at once rather than wait out the delay
        self._ids = itertools.count(1)
        self._quick_deaths = 0
        self._adapter: ServedAdapter | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._starting is None:
            self._starting = self._start_task(delay_s=0.0)
        await asyncio.shield(self._starting)

    async def close(self) -> None:
        self._closing = True
        if self._starting is not None:
            self._starting.cancel()  # a worker still loading is killed and reaped by its own task
            await asyncio.gather(self._starting, return_exceptions=True)
        worker, self._process = self._process, None
        if worker is not None:
            await _stop(worker)
        self._set_up(False)

    async def health(self) -> bool:
        return self._state == "ready" and self._process is not None and self._process.alive

    def readiness(self) -> tuple[str, str | None]:
        """(`starting` | `ready` | `restarting` | `failed`, why it is not ready) for /health/ready."""
        return self._state, self._reason

    @property
    def adapter(self) -> ServedAdapter | None:
        """The LoRA adapter the worker's model serves with (`ServesAdapter`), as the last start loaded it."""
        return self._adapter

    @property
    def pid(self) -> int | None:
        return self._process.process.pid if self._process is not None else None

    # -- requests --------------------------------------------------------------------------------------------

    async def complete(self, call: BackendCall) -> Completion:
        return await collect(call, self.stream(call))

    async def stream(self, call: BackendCall) -> AsyncIterator[Chunk]:
        worker = await self._ready()
        request_id, queue = self._open(worker)
        worker.send({"op": "stream", "id": request_id, "call": wire.call_to_wire(call)})
        started = done = False
        try:
            while True:
                message = await queue.get()
                if (chunk := message.get("chunk")) is not None:
                    item = wire.chunk_from_wire(chunk)
                    started = started or item.has_output
                    yield item
                    continue
                done = True
                if "end" in message:
                    return
                raise self._failure(message, started)
        finally:
            worker.pending.pop(request_id, None)
            if not done:
                worker.send({"op": "cancel", "id": request_id})  # the client left: stop generating

    async def embed(self, request: EmbeddingRequest, upstream_model: str) -> Embeddings:
        worker = await self._ready()
        request_id, queue = self._open(worker)
        worker.send({"op": "embed", "id": request_id, "embed": wire.embed_to_wire(request, upstream_model)})
        done = False
        try:
            message = await queue.get()
            done = True
            if (result := message.get("embeddings")) is not None:
                return wire.embeddings_from_wire(result)
            raise self._failure(message, started=False)
        finally:
            worker.pending.pop(request_id, None)
            if not done:
                worker.send({"op": "cancel", "id": request_id})

    async def stats(self) -> dict[str, Any]:
        """What the worker is doing now (requests in flight, generation threads, pid): for tests and debugging."""
        worker = await self._ready()
        request_id, queue = self._open(worker)
        worker.send({"op": "stats", "id": request_id})
        try:
            message = await queue.get()
        finally:
            worker.pending.pop(request_id, None)
        if (stats := message.get("stats")) is None:
            raise self._failure(message, started=False)
        return dict(stats)

    def _open(self, worker: _Process) -> tuple[int, asyncio.Queue[dict[str, Any]]]:
        request_id, queue = next(self._ids), asyncio.Queue[dict[str, Any]]()
        worker.pending[request_id] = queue
        return request_id, queue

    def _failure(self, message: dict[str, Any], started: bool) -> Exception:
        if (error := message.get("error")) is not None:
            return wire.error_from_wire(error)
        why = message.get("died", "the worker stopped")
        if started:
            return WorkerCrashed(f"The local runtime of backend `{self.name}` died mid-answer ({why}); it is "
                                 "restarting.", code="backend_crashed")
        return BackendNotReady(f"The local runtime of backend `{self.name}` died ({why}) before answering; it "
                               "is restarting.", code="backend_crashed")

    async def _ready(self) -> _Process:
        """The running worker; a request that arrives while it (re)starts waits for it, like a first load."""
        if self._closing:
            raise BackendNotReady(f"Backend `{self.name}` is shutting down.")
        if (self._process is None and self._starting is not None and not self._starting.done()
                and not self._backing_off):
            await asyncio.shield(self._starting)
        if self._process is None or not self._process.alive:
            raise BackendNotReady(f"The local runtime of backend `{self.name}` is not running ({self._state}); "
                                  "see /health/ready.", code="backend_not_ready")
        return self._process

    # -- supervision -----------------------------------------------------------------------------------------

    def _start_task(self, delay_s: float) -> asyncio.Task[_Process]:
        task = asyncio.create_task(self._start_with_retries(delay_s), name=f"worker-start-{self.name}")
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # read: waiters get it via shield
        return task

    async def _start_with_retries(self, delay_s: float) -> _Process:
        last = ""
        for attempt in range(MAX_START_ATTEMPTS):
            if delay_s or attempt:
                self._backing_off = delay_s > 1.0 and attempt == 0
                await asyncio.sleep(delay_s if attempt == 0 else 0.25 * 2 ** (attempt - 1))
                self._backing_off = False
            try:
                worker = await self._spawn()
            except _StartFailed as exc:
                last = str(exc)
                log.error("backend %s: worker start %d/%d failed: %s", self.name, attempt + 1, MAX_START_ATTEMPTS,
                          last)
                if exc.permanent:
                    self._state, self._reason = "failed", last
                    break
                continue
            self._process, self._state, self._reason = worker, "ready", None
            self._set_up(True)
            return worker
        else:
            self._state = "failed"
            self._reason = f"worker failed to start {MAX_START_ATTEMPTS} times in a row; last: {last}"
        raise BackendNotReady(f"The local runtime of backend `{self.name}` failed to start; see /health/ready "
                              "or the gateway log.", code="backend_failed")

    async def _spawn(self) -> _Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sluice.backends.worker_child", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=wire.LINE_LIMIT_BYTES,
            start_new_session=True)  # a Ctrl-C in the terminal reaches the gateway, which then closes us
        try:
            assert process.stdin is not None and process.stdout is not None
            config = self._config.model_dump(mode="json", exclude_unset=True)  # the child applies the defaults
            process.stdin.write(wire.encode({"name": self.name, "config": config}))
            line = await process.stdout.readline()
            hello = wire.decode(line) if line else {}
            if "ready" not in hello:
                returncode = await process.wait()
                failed = hello.get("failed")
                if failed is None:
                    raise _StartFailed(describe_exit(returncode), permanent=False)
                raise _StartFailed(str(failed["message"]), permanent=bool(hello.get("permanent")))
        except BaseException:
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise
        worker = _Process(process, ready_at=time.monotonic())
        worker.reader = asyncio.create_task(self._read(worker), name=f"worker-read-{self.name}")
        ready = hello["ready"]
        adapter = ready.get("adapter")
        self._adapter = None if adapter is None else ServedAdapter.from_dict(adapter)
        log.info("backend %s: worker pid %d ready (loaded in %.2f s)%s", self.name, process.pid,
                 ready.get("load_s", 0.0), "" if self._adapter is None else
                 f"; LoRA adapter {self._adapter.path} (sha256 {self._adapter.sha256[:12]}…)")
        return worker

    async def _read(self, worker: _Process) -> None:
        stdout = worker.process.stdout
        assert stdout is not None
        try:
            while line := await stdout.readline():
                message = wire.decode(line)
                queue = worker.pending.get(int(message.get("id", 0)))
                if queue is not None:
                    queue.put_nowait(message)
        except (ValueError, asyncio.LimitOverrunError) as exc:  # a protocol fault: this worker can't be trusted
            log.error("backend %s: bad message from worker pid %d (%s); killing it", self.name,
                      worker.process.pid, exc)
            worker.process.kill()
        returncode = await worker.process.wait()
        if self._closing or self._process is not worker:
            return
        self._on_death(worker, returncode)

    def _on_death(self, worker: _Process, returncode: int) -> None:
        why = describe_exit(returncode)
        lost = len(worker.pending)
        for queue in worker.pending.values():
            queue.put_nowait({"died": why})
        self._process = None
        self._set_up(False)
        uptime_s = time.monotonic() - worker.ready_at
        self._quick_deaths = 0 if uptime_s >= _STABLE_S else self._quick_deaths + 1
        delay_s = min(30.0, 0.5 * 2 ** (self._quick_deaths - 1)) if self._quick_deaths else 0.0
        log.error("backend %s: worker pid %d %s with %d request(s) in flight; restarting%s", self.name,
                  worker.process.pid, why, lost, f" in {delay_s:.1f} s" if delay_s else "")
        if self._metrics is not None:
            self._metrics.restarts.labels(self.name, _exit_label(returncode)).inc()
            self._metrics.lost.labels(self.name).inc(lost)
        self._state, self._reason = "restarting", f"worker {why}; restarting"
        self._starting = self._start_task(delay_s)

    def _set_up(self, up: bool) -> None:
        if self._metrics is not None:
            self._metrics.up.labels(self.name).set(1 if up else 0)


class _StartFailed(Exception):
    """One attempt to start the worker failed (it died while loading, or reported a load error)."""

    def __init__(self, why: str, *, permanent: bool) -> None:
        super().__init__(why)
        self.permanent = permanent  # a missing file or package: the next attempt would fail the same way


async def _stop(worker: _Process) -> None:
    """Close the worker's stdin (it finishes cleanly), then kill it if it does not exit in time."""
    stdin = worker.process.stdin
    if stdin is not None and not stdin.is_closing():
        stdin.close()
    try:
        await asyncio.wait_for(worker.process.wait(), _STOP_TIMEOUT_S)
    except TimeoutError:
        worker.process.kill()
        await worker.process.wait()
    if worker.reader is not None:
        await asyncio.gather(worker.reader, return_exceptions=True)
    for queue in worker.pending.values():
        queue.put_nowait({"died": "the gateway is shutting down"})


__all__ = ["LocalRuntimeConfig", "WorkerBackend", "WorkerCrashed", "WorkerMetrics", "describe_exit"]
