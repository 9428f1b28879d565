"""The simulator as an in-process gateway backend: chunks, and faults as the gateway's upstream errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sluice.backends.base import Backend
from sluice.cost import count_text_tokens
from sluice.errors import UpstreamRateLimited, UpstreamRejected, UpstreamStreamBroken, UpstreamUnavailable
from sluice.sim import FaultPlan, SimulatorBackend
from tests.sim.support import chat_call, completion_call, make_simulator


@pytest.fixture
async def backend() -> AsyncIterator[SimulatorBackend]:
    backend = SimulatorBackend("h100", make_simulator(max_model_len=256))
    await backend.start()
    yield backend
    await backend.close()


async def test_it_is_a_gateway_backend_that_streams_and_completes(backend: SimulatorBackend) -> None:
    assert isinstance(backend, Backend) and await backend.health()
    chunks = [chunk async for chunk in backend.stream(chat_call("hi", max_tokens=9))]
    assert sum(chunk.has_output for chunk in chunks) == 9 and chunks[-1].usage is not None
    completion = await backend.complete(completion_call("hi", max_tokens=9))
    assert completion.usage is not None and completion.usage.completion_tokens == 9
    assert count_text_tokens(completion.text, "llama-3.1-8b") == 9


async def test_faults_become_upstream_errors(backend: SimulatorBackend) -> None:
    simulator = backend.simulator
    with pytest.raises(UpstreamRejected) as too_long:
        await backend.complete(completion_call("hi", max_tokens=300))
    assert too_long.value.status_code == 400 and too_long.value.param == "max_tokens"
    simulator.set_faults(FaultPlan.model_validate({"errors": [{"status": 429, "rate": 1, "retry_after_s": 4}]}))
    with pytest.raises(UpstreamRateLimited) as limited:
        await backend.complete(completion_call("hi", max_tokens=3))
    assert limited.value.retry_after_s == 4
    simulator.set_faults(FaultPlan.model_validate({"refuse": {"rate": 1}}))
    with pytest.raises(UpstreamUnavailable, match="refused"):
        await backend.complete(completion_call("hi", max_tokens=3))
    simulator.set_faults(FaultPlan.model_validate({"drop": {"after_tokens": 2}}))
    received = []
    with pytest.raises(UpstreamStreamBroken):
        async for chunk in backend.stream(completion_call("hi", max_tokens=5)):
            received.append(chunk)
    assert len(received) == 2
    assert not simulator.core.has_work()
