"""Canary events to webhooks: a JSON POST per URL, retried with backoff, from a background task.

`send` only puts the event on a bounded queue, so neither the request path nor the canary driver ever
waits on a slow or dead receiver; a full queue drops the event (counted, logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

log = logging.getLogger("sluice.rollout")

ATTEMPTS = 4  # the first try and three retries
BACKOFF_S = (0.5, 1.0, 2.0)  # before retry 1, 2, 3
TIMEOUT_S = 5.0
QUEUE_SIZE = 1000


class WebhookNotifier:
    def __init__(self, *, on_failure: Callable[[], None] | None = None,
                 backoff_s: tuple[float, ...] = BACKOFF_S) -> None:
        self._queue: asyncio.Queue[tuple[tuple[str, ...], dict[str, Any]]] = asyncio.Queue(QUEUE_SIZE)
        self._worker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._on_failure = on_failure or (lambda: None)
        self._backoff_s = backoff_s
        self.delivered = 0
        self.failed = 0

    def send(self, urls: list[str] | tuple[str, ...], event: dict[str, Any]) -> None:
        """Queue `event` for each of `urls`; returns at once."""
        if not urls:
            return
        try:
            self._queue.put_nowait((tuple(urls), event))
        except asyncio.QueueFull:
            self.failed += len(urls)
            self._on_failure()
            log.warning("webhook queue full: dropped %s for %s", event.get("event"), event.get("model"))
            return
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="rollout-webhooks")

    async def drain(self) -> None:
        """Wait until every queued event has been delivered or given up on."""
        await self._queue.join()

    async def close(self, timeout_s: float = 5.0) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout_s)
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _work(self) -> None:
        while True:
            urls, event = await self._queue.get()
            try:
                body = orjson.dumps(event)
                await asyncio.gather(*(self._deliver(url, body) for url in urls))
            finally:
                self._queue.task_done()

    async def _deliver(self, url: str, body: bytes) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        problem = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(self._backoff_s[min(attempt - 1, len(self._backoff_s) - 1)])
            try:
                async with self._session.post(url, data=body, headers={"content-type": "application/json"}) as r:
                    if r.status < 300:
                        self.delivered += 1
                        return
                    problem = f"HTTP {r.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = str(exc) or type(exc).__name__
        self.failed += 1
        self._on_failure()
        log.warning("webhook %s failed after %d attempts: %s", url, ATTEMPTS, problem)


__all__ = ["WebhookNotifier"]
