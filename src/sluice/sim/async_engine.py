"""The engine on asyncio: one background loop steps the core in (simulated) time and streams tokens out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from sluice.sim.clock import Clock, MonotonicClock
from sluice.sim.engine import EngineCore, EngineRequest, EngineStep, TokenEvent

# A step may start up to this late against the modelled schedule and still count as on time, so
# event-loop jitter does not accumulate into lost throughput; longer gaps are idle time.
_CATCH_UP_S = 0.05


class EngineFailed(RuntimeError):
    """The engine loop died; every stream in flight ends with this."""


class AsyncEngine:
    """Serves many concurrent `generate` calls from one `EngineCore`, like vLLM's `AsyncLLM`."""

    def __init__(self, core: EngineCore, clock: Clock | None = None,
                 on_step: Callable[[EngineStep], None] | None = None) -> None:
        self.core = core
        self.clock: Clock = clock or MonotonicClock()
        self._on_step = on_step
        self._streams: dict[str, asyncio.Queue[TokenEvent | BaseException]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # How far behind the modelled schedule the last step's tokens went out (event loop busy): a
        # simulator that cannot keep up with its own model says so instead of silently stretching time.
        self.lag_s = 0.0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if not self.running:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="sluice-sim-engine")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for request_id in list(self._streams):
            self.core.abort_request(request_id)
            self._streams.pop(request_id).put_nowait(EngineFailed("the simulator is shutting down"))

    async def generate(self, request: EngineRequest) -> AsyncIterator[TokenEvent]:
        """The request's tokens as the engine produces them; leaving early aborts the request."""
        if not self.running:
            raise EngineFailed("the engine is not running (call start() first)")
        queue: asyncio.Queue[TokenEvent | BaseException] = asyncio.Queue()
        self.core.add_request(request, self.clock.now())
        self._streams[request.request_id] = queue
        self._wake.set()
        finished = False
        try:
            while not finished:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                finished = item.finished
                yield item
        finally:
            self._streams.pop(request.request_id, None)
            if not finished:
                self.core.abort_request(request.request_id)

    async def _run(self) -> None:
        previous_end_s = self.clock.now()
        try:
            while True:
                if not self.core.has_work():
                    self._wake.clear()
                    await self._wake.wait()
                    previous_end_s = self.clock.now()
                    continue
                now_s = self.clock.now()
                start_s = previous_end_s if now_s - previous_end_s < _CATCH_UP_S else now_s
                step = self.core.step(start_s)
                await self.clock.sleep_until(step.end_s)
                self.lag_s = max(0.0, self.clock.now() - step.end_s)
                previous_end_s = step.end_s
                for event in step.tokens:
                    queue = self._streams.get(event.request_id)
                    if queue is not None:
                        queue.put_nowait(event)
                if self._on_step is not None:
                    self._on_step(step)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in the engine must not leave clients waiting forever
            failure = EngineFailed(f"simulator engine failed: {type(exc).__name__}: {exc}")
            for queue in self._streams.values():
                queue.put_nowait(failure)
            raise
