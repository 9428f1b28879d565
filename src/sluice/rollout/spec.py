"""A `Deployment` as JSON-ready data (what the store keeps and the admin API shows), and back.

Every field of `Deployment` but `model` and `version` goes into the spec, so fields added later are stored
without touching this module; tuples of `TargetRef` become lists of `{backend, model, weight}`. Reading
ignores unknown keys and takes the default for missing ones, so specs written by other versions load.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import MISSING, fields
from typing import Any

from sluice.config import is_sticky_key
from sluice.rollout.deployment import Deployment, TargetRef

_OUTSIDE_SPEC = ("model", "version")
_TARGET_FIELDS = frozenset(f.name for f in fields(Deployment) if "TargetRef" in str(f.type))
_SPEC_FIELDS = tuple(f for f in fields(Deployment) if f.name not in _OUTSIDE_SPEC)


class SpecError(ValueError):
    """A stored or submitted spec that does not describe a deployment; the message names the key."""


def to_spec(deployment: Deployment) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for field in _SPEC_FIELDS:
        value = getattr(deployment, field.name)
        spec[field.name] = [target_to_dict(t) for t in value] if field.name in _TARGET_FIELDS else value
    return spec


def from_spec(model: str, version: int, spec: dict[str, Any]) -> Deployment:
    """The deployment a spec describes; `SpecError` names the first bad key."""
    values: dict[str, Any] = {}
    for field in _SPEC_FIELDS:
        if field.name not in spec:
            if field.default is MISSING:
                raise SpecError(f"{field.name}: missing")
            continue
        value = spec[field.name]
        values[field.name] = targets_from(value, field.name) if field.name in _TARGET_FIELDS else value
    if not values.get("stable"):
        raise SpecError("stable: a deployment needs at least one stable target")
    weight = values.get("candidate_weight", 0.0)
    if not isinstance(weight, int | float) or not 0 <= weight <= 100:
        raise SpecError(f"candidate_weight: {weight!r} is not a percentage in [0, 100]")
    if values.get("strategy", "canary") not in ("canary", "blue_green"):
        raise SpecError(f"strategy: {values['strategy']!r} is not canary or blue_green")
    sticky = values.get("sticky_key", "user")
    if not is_sticky_key(sticky):
        raise SpecError(f"sticky_key: {sticky!r} is not user, random or header:<name>")
    rate = values.get("shadow_sample_rate", 1.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise SpecError(f"shadow_sample_rate: {rate!r} is not a rate in [0, 1]")
    bound = values.get("shadow_max_concurrency", 1)
    if isinstance(bound, bool) or not isinstance(bound, int) or bound < 1:
        raise SpecError(f"shadow_max_concurrency: {bound!r} is not a whole number of at least 1")
    return Deployment(model=model, version=version, **values)


def target_to_dict(target: TargetRef) -> dict[str, Any]:
    return {"backend": target.backend, "model": target.model, "weight": target.weight}


def targets_from(value: object, where: str, *, default_model: str | None = None) -> tuple[TargetRef, ...]:
    """`[{backend, model?, weight?}]` as target refs; `model` defaults to `default_model` when given."""
    if not isinstance(value, list):
        raise SpecError(f"{where}: expected a list of targets")
    targets = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("backend"), str) or not item["backend"]:
            raise SpecError(f"{where}.{index}: a target is {{backend, model, weight}}")
        upstream = item.get("model", default_model)
        if not isinstance(upstream, str) or not upstream:
            raise SpecError(f"{where}.{index}.model: the upstream model name is required")
        weight = item.get("weight", 100.0)
        if not isinstance(weight, int | float) or isinstance(weight, bool) or weight < 0:
            raise SpecError(f"{where}.{index}.weight: {weight!r} is not a non-negative number")
        unknown = set(item) - {"backend", "model", "weight"}
        if unknown:
            raise SpecError(f"{where}.{index}: unknown key {sorted(unknown)[0]!r}")
        targets.append(TargetRef(item["backend"], upstream, float(weight)))
    return tuple(targets)


def unknown_backends(deployment: Deployment, backends: Iterable[str]) -> list[str]:
    """`stable.0.backend: 'x'`-style paths of targets naming a backend not in `backends`."""
    known = set(backends)
    problems = []
    for name in sorted(_TARGET_FIELDS):
        for index, target in enumerate(getattr(deployment, name)):
            if target.backend not in known:
                problems.append(f"{name}.{index}.backend: {target.backend!r}")
    return problems


__all__ = ["SpecError", "from_spec", "target_to_dict", "targets_from", "to_spec",
           "unknown_backends"]
