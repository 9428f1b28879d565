"""What `sluice eval run|gate --target` names, resolved to where the runner sends each case:

- a gateway model (`chat`), optionally pinned to one side of its deployment with `--side`;
- a registry version (`support@3`, `support@production`): the deployment that serves its targets is found (the
  side whose replicas are the version's targets), requests are pinned to that side (`x-sluice-route`), and the
  version's generation params apply under each case's own;
- a raw OpenAI-compatible backend (`http://vllm:8000/v1` with `--model` naming what it serves), called directly.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from sluice.cli.common import admin_call, exit_with
from sluice.registry import RegistryError, parse_ref
from sluice.rollout import ROUTE_OVERRIDE_HEADER

SIDES = ("stable", "candidate")


@dataclass(frozen=True, slots=True)
class Target:
    label: str  # what the results header and reports call it
    base_url: str  # the gateway, or the raw backend's API root
    model: str  # the `model` of each request
    raw: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # a registry version's generation params
    registry: tuple[str, int] | None = None  # (model, version) when the target is a registry version


def resolve_target(target: str, *, url: str, master_key: str | None, model: str | None = None,
                   side: str | None = None) -> Target:
    """The target `target` names; exit 2 with what to type when it cannot be resolved."""
    if side is not None and side not in SIDES:
        exit_with(f"--side {side!r}: stable or candidate", code=2)
    if target.startswith(("http://", "https://")):
        if not model:
            exit_with(f"--target {target}: a raw backend needs --model, the model name it serves", code=2)
        return Target(f"{model} at {target}", target.rstrip("/"), model, raw=True)
    if "@" in target:
        return _registry_target(target, url=url, master_key=master_key, deployment=model, side=side)
    headers = {ROUTE_OVERRIDE_HEADER: side} if side else {}
    return Target(target + (f" ({side})" if side else ""), url, target, headers=headers)


def _registry_target(ref: str, *, url: str, master_key: str | None, deployment: str | None,
                     side: str | None) -> Target:
    try:
        name, version_ref = parse_ref(ref)
    except RegistryError as error:
        exit_with(str(error), code=2)
    version = admin_call("GET", url, f"/admin/models/{_seg(name)}/versions/{_seg(str(version_ref))}", master_key,
                         code=2)
    number = version["version"]
    wanted = {(target["backend"], target["model"]) for target in version.get("targets") or ()}
    if not wanted:
        exit_with(f"{name}@{number} has no serving targets: register it with --target BACKEND:MODEL", code=2)
    deployments = admin_call("GET", url, "/admin/deployments", master_key, code=2)["data"]
    found = [(spec["model"], role) for spec in deployments for role in SIDES
             if (deployment is None or spec["model"] == deployment) and (side is None or role == side)
             and {(target["backend"], target["model"]) for target in spec.get(role) or ()} == wanted]
    if not found:
        where = f"deployment {deployment!r}" if deployment else "any deployment"
        exit_with(f"{name}@{number} is not served by {where}: put it in place with `sluice deploy set-candidate "
                  f"{deployment or 'DEPLOYMENT'} --version {name}@{number}` (at 0 % it takes no user traffic), "
                  "then run again", code=2)
    served_by, role = found[0]
    return Target(f"{name}@{number} via {served_by} ({role})", url, served_by,
                  headers={ROUTE_OVERRIDE_HEADER: role}, params=dict(version.get("params") or {}),
                  registry=(name, number))


def _seg(text: str) -> str:
    return urllib.parse.quote(text, safe="")


__all__ = ["Target", "resolve_target"]
