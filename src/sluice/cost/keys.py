"""Virtual keys: the key record, its secret's format and hash, and which models it may call.

A secret looks like `sk-sluice-<id>-<secret>`: a 12-hex public id (the row's primary key, safe to log)
and 48 hex characters (192 random bits). Only SHA-256 of the whole string is stored; see docs/keys.md for
why a plain (unpeppered, fast) hash is the right choice for random secrets of this length.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

TOKEN_PREFIX = "sk-sluice-"
ID_HEX = 12  # 48 bits: a public identifier, not a secret
SECRET_HEX = 48  # 192 bits from the OS CSPRNG
TOKEN_LENGTH = len(TOKEN_PREFIX) + ID_HEX + 1 + SECRET_HEX
_HEX = frozenset("0123456789abcdef")

# What an admin sets on a key (create / update), in the order the API and CLI show them.
SETTINGS = ("name", "owner", "team", "models", "budget_day_usd", "budget_month_usd", "budget_total_usd",
            "rpm", "tpm", "expires_at", "metadata")

KeyStatus = Literal["active", "revoked", "expired"]


@dataclass(slots=True, frozen=True)
class VirtualKey:
    id: str
    name: str
    owner: str | None = None
    team: str | None = None
    models: tuple[str, ...] = ()  # glob patterns of public model names; empty: every model
    budget_day_usd: float | None = None  # UTC calendar day
    budget_month_usd: float | None = None  # UTC calendar month
    budget_total_usd: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    expires_at: float | None = None  # unix seconds
    metadata: Mapping[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    last_used_at: float | None = None
    revoked_at: float | None = None
    secret_hash: str = field(default="", repr=False)
    previous_hash: str | None = field(default=None, repr=False)  # the secret before the last rotation
    previous_valid_until: float | None = None  # ... accepted until then (rotation grace period)

    @property
    def has_budget(self) -> bool:
        return (self.budget_day_usd is not None or self.budget_month_usd is not None
                or self.budget_total_usd is not None)

    def allows_model(self, model: str) -> bool:
        return not self.models or model_matcher(self.models)(model)

    def status(self, now: float) -> KeyStatus:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"

    def accepts(self, token_hash: str, now: float) -> bool:
        """The token's hash is this key's secret, or its previous one within the rotation grace period."""
        if secrets.compare_digest(token_hash, self.secret_hash):
            return True
        return (self.previous_hash is not None and self.previous_valid_until is not None
                and now < self.previous_valid_until and secrets.compare_digest(token_hash, self.previous_hash))

    def public(self, now: float) -> dict[str, Any]:
        """The key as the admin API shows it: settings and timestamps, never a hash."""
        body: dict[str, Any] = {"id": self.id, "display": display_token(self.id), "status": self.status(now)}
        for name in SETTINGS:
            value = getattr(self, name)
            body[name] = list(value) if name == "models" else dict(value) if name == "metadata" else value
        body.update(created_at=self.created_at, updated_at=self.updated_at, last_used_at=self.last_used_at,
                    revoked_at=self.revoked_at, rotation_grace_until=self.previous_valid_until)
        return body


def new_key_id() -> str:
    return secrets.token_hex(ID_HEX // 2)


def new_token(key_id: str) -> str:
    """A fresh secret for `key_id`; shown to the caller once, then only its hash exists."""
    return f"{TOKEN_PREFIX}{key_id}-{secrets.token_hex(SECRET_HEX // 2)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_key_id(token: str) -> str | None:
    """The public id inside a well-formed virtual key secret, else None (no lookup is worth doing)."""
    if len(token) != TOKEN_LENGTH or not token.startswith(TOKEN_PREFIX) or token[-SECRET_HEX - 1] != "-":
        return None
    key_id = token[len(TOKEN_PREFIX):len(TOKEN_PREFIX) + ID_HEX]
    if not _HEX.issuperset(key_id) or not _HEX.issuperset(token[-SECRET_HEX:]):
        return None
    return key_id


def display_token(key_id: str) -> str:
    return f"{TOKEN_PREFIX}{key_id}-…"


class ModelMatcher:
    """Whether a public model name matches a key's allowed patterns (`gpt-4o*`, `llama-*`, exact names)."""

    __slots__ = ("_exact", "_pattern")

    def __init__(self, patterns: tuple[str, ...]) -> None:
        globs = [p for p in patterns if any(c in p for c in "*?[")]
        self._exact = frozenset(p for p in patterns if p not in globs)
        self._pattern = re.compile("|".join(fnmatch.translate(p) for p in globs)) if globs else None

    def __call__(self, model: str) -> bool:
        if model in self._exact:
            return True
        return self._pattern is not None and self._pattern.match(model) is not None


@lru_cache(maxsize=4096)
def model_matcher(patterns: tuple[str, ...]) -> ModelMatcher:
    """One compiled matcher per distinct pattern list, shared by every key that has it."""
    return ModelMatcher(patterns)


__all__ = [
    "SETTINGS",
    "TOKEN_PREFIX",
    "KeyStatus",
    "ModelMatcher",
    "VirtualKey",
    "display_token",
    "hash_token",
    "model_matcher",
    "new_key_id",
    "new_token",
    "parse_key_id",
]
