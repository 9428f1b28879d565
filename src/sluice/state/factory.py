"""Pick the shared-state implementation from `state.url`."""

from __future__ import annotations

from sluice.config import StateConfig
from sluice.errors import ConfigError
from sluice.state.memory import MemoryState
from sluice.state.types import SharedState


def open_state(config: StateConfig) -> SharedState:
    """`memory://` -> one process; `redis://` / `rediss://` / `unix://` -> Redis (connects in `start()`)."""
    url = config.url
    if url == "memory://":
        return MemoryState()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from sluice.state.redis_state import RedisState

        return RedisState(url, prefix=config.key_prefix, timeout_s=config.timeout_s,
                          max_connections=config.max_connections)
    raise ConfigError(f"state.url: unsupported {url!r}; use memory:// or redis://host:6379/0")


__all__ = ["open_state"]
