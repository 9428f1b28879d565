"""Planner errors."""

from __future__ import annotations


class PlanError(ValueError):
    """An impossible deployment request (bad flag value, a parallel size the model cannot be split into)."""
