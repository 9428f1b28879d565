"""The deployments the gateway routes by: built from config, replaced atomically when one changes."""

from __future__ import annotations

from sluice.config import SluiceConfig
from sluice.rollout.deployment import Deployment


class DeploymentRegistry:
    """Current `Deployment` per public model. Reads are a dict lookup; a change swaps one entry."""

    def __init__(self, deployments: dict[str, Deployment]) -> None:
        self._current = dict(deployments)

    @classmethod
    def from_config(cls, config: SluiceConfig) -> DeploymentRegistry:
        return cls({name: Deployment.from_config(name, model) for name, model in config.models.items()})

    def get(self, model: str) -> Deployment | None:
        return self._current.get(model)

    def all(self) -> dict[str, Deployment]:
        return dict(self._current)

    def put(self, deployment: Deployment) -> None:
        """Install a new version; requests already routed keep the one they read."""
        self._current[deployment.model] = deployment


__all__ = ["DeploymentRegistry"]
