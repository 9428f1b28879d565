"""The simulator as a gateway `Backend`, in-process: no HTTP, the gateway's error types."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sluice.backends import BackendCall, Chunk, Completion, EmbeddingRequest, Embeddings, Endpoint
from sluice.errors import (
    UpstreamError,
    UpstreamRejected,
    UpstreamStreamBroken,
    UpstreamUnavailable,
    upstream_error_for_status,
)
from sluice.sim.errors import SimError, StreamDropped
from sluice.sim.simulator import Admission, Simulator


class SimulatorBackend:
    """Serves chat and completions from a `Simulator` in the gateway's own event loop.

    Faults surface as they would through HTTP: injected statuses as the matching upstream errors,
    refused connections as `UpstreamUnavailable`, dropped streams as `UpstreamStreamBroken`.
    """

    type = "sim"
    endpoints: frozenset[Endpoint] = frozenset({"chat", "completions"})
    structured_output = "json_schema"  # it answers with JSON the schema accepts (sim/structured.py)
    structured_extras = frozenset({"json", "regex", "choice"})  # vLLM's constraints it honours (not grammars)
    # Keywords its JSON generator does not honour (docs/simulator.md#structured-output): the gateway checks them.
    unenforced_keywords = frozenset({"not", "if", "then", "else", "dependentSchemas", "maxContains",
                                     "unevaluatedProperties", "unevaluatedItems"})

    def __init__(self, name: str, simulator: Simulator) -> None:
        self.name = name
        self.simulator = simulator

    async def start(self) -> None:
        await self.simulator.start()

    async def close(self) -> None:
        await self.simulator.stop()

    async def health(self) -> bool:
        return self.simulator.engine.running

    async def complete(self, call: BackendCall) -> Completion:
        admission = self._admit(call)
        try:
            return await self.simulator.collect(call, self.simulator.run(admission))
        except StreamDropped as exc:
            raise UpstreamUnavailable(f"simulator `{self.name}` closed the connection: {exc}") from exc

    async def stream(self, call: BackendCall) -> AsyncIterator[Chunk]:
        admission = self._admit(call)
        try:
            async with contextlib.aclosing(self.simulator.run(admission)) as chunks:
                async for chunk in chunks:
                    yield chunk
        except StreamDropped as exc:
            raise UpstreamStreamBroken(f"simulator `{self.name}` dropped the stream: {exc}") from exc

    async def embed(self, request: EmbeddingRequest, upstream_model: str) -> Embeddings:
        raise UpstreamRejected(f"simulator `{self.name}` serves no embeddings", status_code=400)

    def _admit(self, call: BackendCall) -> Admission:
        if self.simulator.refuse_connection():
            raise UpstreamUnavailable(f"cannot connect to simulator `{self.name}`: connection refused (injected)")
        try:
            return self.simulator.admit(call)
        except SimError as exc:
            raise upstream_error(exc) from exc


def upstream_error(error: SimError) -> UpstreamError:
    """A simulator error answer as the gateway's upstream error (as if it had come over HTTP)."""
    return upstream_error_for_status(error.status_code, error.message, param=error.param,
                                     retry_after_s=error.retry_after_s)
