"""Fixtures the backend tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sluice.backends import build_backend
from sluice.backends.worker import WorkerBackend
from sluice.config import GGUFBackendConfig


@pytest.fixture
async def smollm2() -> AsyncIterator[WorkerBackend]:
    """The bundled SmolLM2-135M GGUF in its worker process, started, closed after the test."""
    backend = build_backend("smollm2", GGUFBackendConfig(type="gguf", path="builtin:smollm2"))
    assert isinstance(backend, WorkerBackend)
    await backend.start()
    yield backend
    await backend.close()
