"""The request-time side of the prompt registry: a `name@ref` resolved once and kept, dropped on every replica
when the prompt changes — a new version or a label move, announced on the shared state's `prompts` channel.

A kept resolution is a dict lookup; rendering uses the version compiled once per content (templates.py).
`benchmarks/prompt_render.py` measures both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.errors import BackendNotReady
from sluice.prompts.refs import parse_ref
from sluice.prompts.store import get_version
from sluice.prompts.templates import Rendered, compiled
from sluice.prompts.versions import PromptVersion
from sluice.state import SharedState, StateError

CHANGES_CHANNEL = "prompts"  # message: the prompt's name
log = logging.getLogger("sluice.prompts")


async def announce_change(state: SharedState | None, name: str) -> None:
    """Tell every replica (this one included) that `name` changed, so their resolvers drop what they kept of it.
    A failed publish is logged, not raised: the change is stored, and other replicas re-read within their TTL."""
    if state is None:
        return
    try:
        await state.publish(CHANGES_CHANNEL, name)
    except StateError as error:
        log.warning("could not announce a change of prompt %s (other replicas re-read it within their TTL): %s",
                    name, error)


@dataclass(slots=True)
class _Kept:
    version: PromptVersion
    at: float


class PromptResolver:
    """`name@ref` -> the version it names, kept until the prompt changes (or `ttl_s`, should a notice be lost)."""

    def __init__(self, engine: AsyncEngine | None, *, ttl_s: float = 60.0, max_kept: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self.max_kept = max_kept
        self._clock = clock
        self._kept: dict[str, dict[str, _Kept]] = {}  # name -> ref as written -> its version
        self._count = 0
        self._changes: dict[str, int] = {}  # name -> changes seen: a read that a change overtook is not kept
        self._epoch = 0  # changes of everything (a lost notice)

    def listen(self, state: SharedState) -> None:
        state.subscribe(CHANGES_CHANNEL, self.changed)

    def changed(self, name: str | None) -> None:
        """A notice from the channel: drop what is kept of `name`; None (notices may have been lost): of all."""
        if name is None:
            self._kept.clear()
            self._count = 0
            self._epoch += 1
            return
        dropped = self._kept.pop(name, None)
        if dropped:
            self._count -= len(dropped)
        self._changes[name] = self._changes.get(name, 0) + 1

    async def resolve(self, ref: str) -> PromptVersion:
        """The version `ref` names now; PromptNotFound / PromptError as `get_version` raises them."""
        name = ref.partition("@")[0]
        kept = self._kept.get(name)
        if kept is not None:
            found = kept.get(ref)
            if found is not None and self._clock() - found.at < self.ttl_s:
                return found.version
        if self.engine is None:  # the gateway opens the store before it serves: only a resolver used too early
            raise BackendNotReady("The store is not open yet; try again in a moment.", code="store_not_ready")
        seen = (self._epoch, self._changes.get(name, 0))
        version = await get_version(self.engine, parse_ref(ref))
        if seen == (self._epoch, self._changes.get(name, 0)):
            self._keep(name, ref, version)
        return version

    async def render(self, ref: str, variables: Mapping[str, Any]) -> tuple[PromptVersion, Rendered]:
        """The version `ref` names, rendered with `variables` (TemplateError naming any missing or unknown one)."""
        version = await self.resolve(ref)
        return version, compiled(version.spec, version.content_hash).render(variables)

    def _keep(self, name: str, ref: str, version: PromptVersion) -> None:
        if self._count >= self.max_kept:  # refs come from requests: bounded, then started afresh
            self._kept.clear()
            self._count = 0
        kept = self._kept.setdefault(name, {})
        if ref not in kept:
            self._count += 1
        kept[ref] = _Kept(version, self._clock())


__all__ = ["CHANGES_CHANNEL", "PromptResolver", "announce_change"]
