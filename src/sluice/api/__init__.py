"""HTTP surface: the app factory, OpenAI-compatible and admin routes, error mapping, SSE."""

from sluice.api.app import create_app

__all__ = ["create_app"]
