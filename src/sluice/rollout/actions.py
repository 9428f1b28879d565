"""The changes an operator (or the canary controller) makes to a deployment, as pure functions.

Each takes the deployment in force and returns the next one (same version: the service numbers it when
it stores it), or raises `InvalidRequest` naming the bad parameter.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from sluice.errors import InvalidRequest
from sluice.rollout.deployment import Deployment, Side, Strategy, TargetRef

Action = Literal["set-weight", "set-candidate", "set-shadow", "switch", "start-canary", "promote", "rollback",
                 "canary-step"]


def check_weight(weight: object, param: str = "weight") -> float:
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 100:
        raise InvalidRequest(f"`{param}` must be a percentage between 0 and 100, not {weight!r}.", param=param,
                             code="invalid_weight")
    return float(weight)


def set_weight(deployment: Deployment, weight: float) -> Deployment:
    weight = check_weight(weight)
    _need_candidate(deployment, "set a weight")
    if deployment.strategy == "blue_green" and weight not in (0.0, 100.0):
        raise InvalidRequest(f"`{deployment.model}` is a blue-green deployment: its candidate takes 0 or 100 % "
                             "(use switch), or make it a canary with set-candidate.", param="weight",
                             code="invalid_weight")
    return replace(deployment, candidate_weight=weight)


def set_candidate(deployment: Deployment, candidate: tuple[TargetRef, ...], *, strategy: Strategy | None = None,
                  weight: float = 0.0) -> Deployment:
    """Place a new candidate version (at `weight`, 0 by default), optionally changing the strategy."""
    if not candidate:
        raise InvalidRequest("`candidate` needs at least one target.", param="candidate", code="invalid_targets")
    changed = replace(deployment, candidate=candidate, strategy=strategy or deployment.strategy)
    return set_weight(changed, weight)


def set_shadow(deployment: Deployment, shadow: tuple[TargetRef, ...], *, sample_rate: float | None = None,
               max_concurrency: int | None = None) -> Deployment:
    """Mirror the model's requests to `shadow` (none: stop mirroring), at a sample rate and concurrency bound
    (unchanged when not given). Independent of the stable/candidate split, so allowed during a canary."""
    rate = deployment.shadow_sample_rate if sample_rate is None else sample_rate
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise InvalidRequest(f"`sample_rate` must be between 0 and 1, not {rate!r}.", param="sample_rate",
                             code="invalid_value")
    bound = deployment.shadow_max_concurrency if max_concurrency is None else max_concurrency
    if isinstance(bound, bool) or not isinstance(bound, int) or bound < 1:
        raise InvalidRequest(f"`max_concurrency` must be a whole number of at least 1, not {bound!r}.",
                             param="max_concurrency", code="invalid_value")
    return replace(deployment, shadow=shadow, shadow_sample_rate=float(rate), shadow_max_concurrency=bound)


def switch(deployment: Deployment, to: Side | None = None) -> Deployment:
    """Blue-green: send all traffic to the other side (or to `to`) in one atomic change."""
    _need_candidate(deployment, "switch")
    if deployment.strategy != "blue_green":
        raise InvalidRequest(f"`{deployment.model}` is a canary deployment; switch flips blue-green ones. Use "
                             "set-weight, promote or rollback (or set-candidate with strategy blue_green).",
                             param="model", code="not_blue_green")
    if to is None:
        to = "stable" if deployment.candidate_weight >= 100 else "candidate"
    if to not in ("stable", "candidate"):
        raise InvalidRequest(f"`to` must be stable or candidate, not {to!r}.", param="to", code="invalid_value")
    return replace(deployment, candidate_weight=100.0 if to == "candidate" else 0.0)


def start_canary(deployment: Deployment, candidate: tuple[TargetRef, ...] | None, first_weight: float,
                 ) -> Deployment:
    """The first step of a progressive canary: the candidate (new, or the one in place) at `first_weight`."""
    if candidate is not None:
        deployment = replace(deployment, candidate=candidate)
    _need_candidate(deployment, "start a canary", hint=" Pass `candidate` targets.")
    return replace(deployment, strategy="canary", candidate_weight=check_weight(first_weight, "steps.0"))


def promote(deployment: Deployment) -> Deployment:
    """The candidate becomes the stable version; no candidate is left."""
    _need_candidate(deployment, "promote")
    return replace(deployment, stable=deployment.candidate, candidate=(), candidate_weight=0.0)


def rollback(deployment: Deployment) -> Deployment:
    """All traffic back to stable; the candidate's targets stay in place (at weight 0) for inspection."""
    _need_candidate(deployment, "roll back")
    return replace(deployment, candidate_weight=0.0)


def _need_candidate(deployment: Deployment, what: str, hint: str = "") -> None:
    if not deployment.candidate:
        raise InvalidRequest(f"Cannot {what}: `{deployment.model}` has no candidate.{hint}", param="candidate",
                             code="no_candidate")


__all__ = ["Action", "check_weight", "promote", "rollback", "set_candidate", "set_shadow", "set_weight",
           "start_canary", "switch"]
