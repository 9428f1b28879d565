"""Routing's own error: every replica of a model is out of rotation (breaker open or failing health checks)."""

from __future__ import annotations

from sluice.errors import UpstreamError


class NoHealthyTarget(UpstreamError):
    """No replica may take a request now; a fallback model is tried next, else the client gets a fast 503."""

    status_code = 503
    error_type = "service_unavailable"

    def __init__(self, model: str) -> None:
        super().__init__(f"No healthy target for model `{model}`: every replica is failing health checks or "
                         "has its circuit breaker open. Try again shortly.", code="no_healthy_target")
        self.model = model


__all__ = ["NoHealthyTarget"]
