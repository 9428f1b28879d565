"""Rollouts: deployments as data (stable, candidate, shadow, weights), canary analysis, promote/rollback."""

from sluice.rollout.deployment import ROUTE_OVERRIDE_HEADER, Deployment, Side, Strategy, TargetRef, bucket_of
from sluice.rollout.registry import DeploymentRegistry
from sluice.rollout.shadow import ShadowStage

__all__ = ["ROUTE_OVERRIDE_HEADER", "Deployment", "DeploymentRegistry", "ShadowStage", "Side", "Strategy", "TargetRef",
           "bucket_of"]
