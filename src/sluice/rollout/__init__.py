"""Rollouts: deployments as data (stable, candidate, shadow, weights), canary analysis, promote/rollback."""

from sluice.rollout.deployment import ROUTE_OVERRIDE_HEADER, Deployment, Side, Strategy, TargetRef, bucket_of

__all__ = ["ROUTE_OVERRIDE_HEADER", "Deployment", "Side", "Strategy", "TargetRef", "bucket_of"]
