"""The deployments the gateway routes by: built from config, replaced atomically when one changes.

Stored deployments (changed at run time, rollout/service.py) are applied on top of the config's: the
stored one wins, but the config still decides which backends and models exist, so a stored deployment
that names a backend no longer configured is reported and skipped rather than routed to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sluice.config import SluiceConfig
from sluice.rollout.deployment import Deployment
from sluice.rollout.spec import unknown_backends


class DeploymentRegistry:
    """Current `Deployment` per public model. Reads are a dict lookup; a change swaps one entry."""

    def __init__(self, deployments: dict[str, Deployment], *, backends: Iterable[str] | None = None) -> None:
        self._current = dict(deployments)
        self._config = dict(deployments)  # what the config says, before stored changes
        self.backends: frozenset[str] | None = None if backends is None else frozenset(backends)
        self.problems: dict[str, str] = {}  # model -> why its stored deployment is not applied
        self._listeners: list[Callable[[str], None]] = []

    @classmethod
    def from_config(cls, config: SluiceConfig) -> DeploymentRegistry:
        return cls({name: Deployment.from_config(name, model) for name, model in config.models.items()
                    if model.router is None},  # router models resolve to another model's deployment
                   backends=config.backends)

    def get(self, model: str) -> Deployment | None:
        return self._current.get(model)

    def all(self) -> dict[str, Deployment]:
        return dict(self._current)

    def put(self, deployment: Deployment) -> None:
        """Install a new version; requests already routed keep the one they read."""
        self._current[deployment.model] = deployment
        self.problems.pop(deployment.model, None)
        for listener in self._listeners:
            listener(deployment.model)

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call `listener(model)` after each new version is installed (the stage chains are rebuilt from it)."""
        self._listeners.append(listener)

    def from_store(self, model: str) -> bool:
        """Whether the deployment in force came from the store (else it is the config's)."""
        current = self._current.get(model)
        return current is not None and current is not self._config.get(model)

    def check(self, deployment: Deployment) -> str | None:
        """Why `deployment` cannot be routed by this gateway (unknown model or backend), or None."""
        if deployment.model not in self._config:
            return f"model {deployment.model!r} is not in this gateway's config"
        if self.backends is not None:
            unknown = unknown_backends(deployment, self.backends)
            if unknown:
                return "unknown backend " + ", ".join(unknown) + " (not in this gateway's config)"
        return None

    def apply_stored(self, deployment: Deployment) -> str | None:
        """Put a stored deployment in force unless `check` objects; returns the objection (also kept in
        `problems`), leaving the deployment in force as it was."""
        problem = self.check(deployment)
        if problem is not None:
            self.problems[deployment.model] = f"stored version {deployment.version} ignored: {problem}"
            return self.problems[deployment.model]
        self.put(deployment)
        return None


__all__ = ["DeploymentRegistry"]
