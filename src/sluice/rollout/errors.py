"""Errors of the rollout control plane (mapped to HTTP by their status, in api/errors.py)."""

from __future__ import annotations

from sluice.errors import ErrorClass, SluiceError


class RolloutConflict(SluiceError):
    """The change does not fit the deployment's state now (a canary is running), or lost a race."""

    status_code = 409
    error_type = "invalid_request_error"
    error_class = ErrorClass.CLIENT


class StoreNotOpen(SluiceError):
    """Deployment changes need the store, which is not open (yet, or any more)."""

    status_code = 503
    error_type = "service_unavailable"


__all__ = ["RolloutConflict", "StoreNotOpen"]
