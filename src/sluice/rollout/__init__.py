"""Rollouts: deployments as data (stable, candidate, shadow, weights), canary analysis, promote/rollback."""

from sluice.rollout.deployment import ROUTE_OVERRIDE_HEADER, Deployment, Side, Strategy, TargetRef, bucket_of
from sluice.rollout.registry import DeploymentRegistry

__all__ = ["ROUTE_OVERRIDE_HEADER", "Deployment", "DeploymentRegistry", "Side", "Strategy", "TargetRef", "bucket_of"]
