"""Rollouts: deployments as data (stable, candidate, shadow, weights), canary analysis, promote/rollback.

The rollout service and its controller, shadow mode and the shadow report read and write the store
(SQLAlchemy), so their names load on first use; so do the canary run (with its analysis) and the errors the
service raises, which only its callers need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluice.lazy import on_first_use
from sluice.rollout.deployment import ROUTE_OVERRIDE_HEADER, Deployment, Side, Strategy, TargetRef, bucket_of
from sluice.rollout.registry import DeploymentRegistry
from sluice.rollout.shadow import ShadowStage
from sluice.rollout.spec import to_spec

if TYPE_CHECKING:
    from sluice.rollout.canary import CanaryRun
    from sluice.rollout.controller import RolloutControl
    from sluice.rollout.errors import StoreNotOpen
    from sluice.rollout.service import RolloutService
    from sluice.rollout.shadow_mode import ShadowMode
    from sluice.rollout.shadow_report import (
        DEFAULT_SINCE,
        Latency,
        ShadowReport,
        load_report,
        parse_since,
        report_to_json,
    )

_ON_FIRST_USE = {  # name -> module: the store's readers and writers (SQLAlchemy), and what the service uses
    "CanaryRun": "sluice.rollout.canary",
    "StoreNotOpen": "sluice.rollout.errors",
    "RolloutControl": "sluice.rollout.controller",
    "RolloutService": "sluice.rollout.service",
    "ShadowMode": "sluice.rollout.shadow_mode",
    "DEFAULT_SINCE": "sluice.rollout.shadow_report",
    "Latency": "sluice.rollout.shadow_report",
    "ShadowReport": "sluice.rollout.shadow_report",
    "load_report": "sluice.rollout.shadow_report",
    "parse_since": "sluice.rollout.shadow_report",
    "report_to_json": "sluice.rollout.shadow_report",
}


__getattr__ = on_first_use(__name__, _ON_FIRST_USE)


__all__ = [
    "DEFAULT_SINCE",
    "ROUTE_OVERRIDE_HEADER",
    "CanaryRun",
    "Deployment",
    "DeploymentRegistry",
    "Latency",
    "RolloutControl",
    "RolloutService",
    "ShadowMode",
    "ShadowReport",
    "ShadowStage",
    "Side",
    "StoreNotOpen",
    "Strategy",
    "TargetRef",
    "bucket_of",
    "load_report",
    "parse_since",
    "report_to_json",
    "to_spec",
]
