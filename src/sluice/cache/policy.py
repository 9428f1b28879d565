"""Pure cache decisions: what the client's headers allow, which requests qualify, whose entries they may see."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sluice.errors import InvalidRequest

CACHE_HEADER = "x-sluice-cache"  # request: refresh | bypass; response: hit-exact | hit-semantic | miss | bypass
STORABLE_FINISH_REASONS = frozenset({"stop", "tool_calls", "function_call"})


@dataclass(slots=True, frozen=True)
class Directive:
    """What the client allows for this request."""

    lookup: bool
    store: bool


ALLOW_ALL = Directive(lookup=True, store=True)


def directive_from_headers(headers: Mapping[str, str]) -> Directive:
    """`cache-control: no-cache` skips the lookup and refreshes the entry; `no-store` keeps the answer out of the
    cache; `x-sluice-cache: refresh` is no-cache, `bypass` is both."""
    cache_control = headers.get("cache-control")
    ours = headers.get(CACHE_HEADER)
    if cache_control is None and ours is None:
        return ALLOW_ALL
    tokens = {token.strip().lower() for token in (cache_control or "").split(",")}
    lookup, store = "no-cache" not in tokens, "no-store" not in tokens
    if ours is not None:
        value = ours.strip().lower()
        if value == "refresh":
            lookup = False
        elif value == "bypass":
            lookup = store = False
        else:
            raise InvalidRequest(f"Header {CACHE_HEADER} must be `refresh` or `bypass`, not {ours!r}.",
                                 param=CACHE_HEADER, code="invalid_header")
    return Directive(lookup, store)


def qualifies(when: str, temperature: float | None, seed: int | None) -> bool:
    """`deterministic`: only answers the upstream would give again (temperature 0 or a fixed seed)."""
    return when == "always" or temperature == 0 or seed is not None


def namespace_of(mode: str, key: Any, team: str | None) -> str:
    """Entries are shared only inside a namespace: one virtual key (default), one team, or everyone.

    Requests without a virtual key (master key, or no auth configured) share the `anonymous` namespace; in
    `team` mode a key without a team is a namespace of its own.
    """
    if mode == "global":
        return "global"
    if mode == "team" and team:
        return f"team:{team}"
    key_id = getattr(key, "id", None)
    return f"key:{key_id}" if key_id is not None else "anonymous"


def storable(payload: Mapping[str, Any], *, store_truncated: bool) -> bool:
    """A complete answer: every choice ended normally (or at max_tokens when `store_truncated`)."""
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    for choice in choices:
        reason = choice.get("finish_reason") if isinstance(choice, dict) else None
        if reason not in STORABLE_FINISH_REASONS and not (store_truncated and reason == "length"):
            return False
    return True
