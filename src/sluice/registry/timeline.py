"""What served a deployment at a moment: its sides then (the rollout's audit trail), the registry versions behind
their targets, and the traffic each side actually took around that moment (the request log).

A side's targets are matched to registry versions by their registered `targets`: the version a `set-candidate
--version` named (the audit trail says `registry version NAME@N`) wins for the side it was set on; otherwise the
latest version registered by then that lists the target. A target no version lists is reported as unregistered.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.registry.store import get_version, list_models, list_versions
from sluice.registry.versions import ModelVersion, RegistryError
from sluice.store import deployments

_NAMED = re.compile(r"^registry version (?P<model>[^@\s]+)@(?P<version>\d+)")
_HISTORY_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class ServedTarget:
    backend: str
    model: str
    weight: float
    version: ModelVersion | None  # the registry version behind it, if any

    def to_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": self.model, "weight": self.weight,
                "version": None if self.version is None else self.version.to_json()}


@dataclass(frozen=True, slots=True)
class Side:
    role: str  # stable | candidate
    configured_share: float  # percent of traffic the deployment gave it
    targets: tuple[ServedTarget, ...]
    observed_share: float | None = None  # percent of the requests it took in the window (None: no requests)

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "configured_share": self.configured_share, "observed_share": self.observed_share,
                "targets": [target.to_json() for target in self.targets]}


@dataclass(frozen=True, slots=True)
class Timeline:
    model: str
    at: float
    deployment_version: int | None  # None: no change stored by then (the config's deployment served)
    since: float | None  # when that version took effect
    change: dict[str, Any] | None  # the change that made it: action, actor, reason
    sides: tuple[Side, ...]
    window_s: float
    requests: int  # routed requests in the window, cache hits excluded
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "at": self.at, "deployment_version": self.deployment_version,
                "since": self.since, "change": self.change, "sides": [side.to_json() for side in self.sides],
                "window_s": self.window_s, "requests": self.requests, "notes": self.notes}


async def timeline_at(engine: AsyncEngine, model: str, at: float, *, config_spec: dict[str, Any] | None,
                      window_s: float = 300.0) -> Timeline:
    """The deployment of `model` in force at `at` (unix seconds): its sides, their registry versions and the
    traffic they took in the `window_s` around `at`. `config_spec` is the config's deployment (what served before
    any stored change); RegistryError when neither says anything about `model`."""
    events = [event for event in await deployments.history(engine, model, limit=_HISTORY_LIMIT)
              if event.created_at <= at]  # newest first
    in_force = events[0] if events else None
    spec = in_force.after if in_force is not None else config_spec
    if spec is None:
        raise RegistryError(f"unknown deployment {model!r}: neither the config nor the rollout history has it")
    named: dict[str, ModelVersion] = {}
    for role, (name, number) in _named_versions(events).items():
        with contextlib.suppress(RegistryError):  # named in the trail but not here: matched by targets instead
            named[role] = await get_version(engine, name, number)
    registered = await _versions_by_then(engine, at)
    sides = []
    weight = float(spec.get("candidate_weight") or 0.0)
    for role, share in (("stable", 100.0 - weight), ("candidate", weight)):
        targets = spec.get(role) or []
        if not targets:
            continue
        served = tuple(ServedTarget(t["backend"], t.get("model") or model, float(t.get("weight", 100.0)),
                                    named.get(role) if _lists(named.get(role), t, model)
                                    else _latest_listing(registered, t, model))
                       for t in targets)
        sides.append(Side(role, share if spec.get(role) else 0.0, served))
    rows = await deployments.role_rows(engine, model, at - window_s / 2, at + window_s / 2)
    counts = Counter(row.route_role for row in rows)
    total = sum(counts.values())
    sides = [Side(side.role, side.configured_share, side.targets,
                  100.0 * counts[side.role] / total if total else None) for side in sides]
    notes = [] if in_force is not None else ["no stored change by then: the config's deployment"]
    change = None if in_force is None else {"action": in_force.action, "actor": in_force.actor,
                                             "reason": in_force.reason}
    return Timeline(model, at, in_force.version if in_force else None, in_force.created_at if in_force else None,
                    change, tuple(sides), window_s, total, notes)


def _named_versions(events: list[deployments.AuditEvent]) -> dict[str, tuple[str, int]]:
    """The registry version on each side, as `set-candidate --version` named it and later changes moved it
    (`events` newest first: replayed oldest first)."""
    named: dict[str, tuple[str, int]] = {}
    for event in reversed(events):
        match = _NAMED.match(event.reason or "")
        if event.action == "set-candidate":
            if match is not None:
                named["candidate"] = (match["model"], int(match["version"]))
            else:
                named.pop("candidate", None)
        elif event.action == "promote" and "candidate" in named:
            named["stable"] = named.pop("candidate")
        elif event.action == "switch":  # blue-green: the sides trade places
            stable, candidate = named.pop("stable", None), named.pop("candidate", None)
            named.update({role: ref for role, ref in (("stable", candidate), ("candidate", stable)) if ref})
        elif event.action == "rollback":
            named.pop("candidate", None)
    return named


async def _versions_by_then(engine: AsyncEngine, at: float) -> list[ModelVersion]:
    found: list[ModelVersion] = []
    for row in await list_models(engine):
        found.extend(version for version in await list_versions(engine, row["model"]) if version.created_at <= at)
    return found


def _lists(version: Any, target: dict[str, Any], model: str) -> bool:
    return isinstance(version, ModelVersion) and any(
        t.get("backend") == target["backend"] and t.get("model") == (target.get("model") or model)
        for t in version.spec.targets)


def _latest_listing(versions: list[ModelVersion], target: dict[str, Any], model: str) -> ModelVersion | None:
    listing = [version for version in versions if _lists(version, target, model)]
    return max(listing, key=lambda version: version.created_at) if listing else None


__all__ = ["ServedTarget", "Side", "Timeline", "timeline_at"]
