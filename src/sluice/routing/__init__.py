"""Routing: choose a target for a request (weighted now; canary, fallbacks, retries with the routing issue)."""

from sluice.routing.table import Route, RouteTable, Target

__all__ = ["Route", "RouteTable", "Target"]
