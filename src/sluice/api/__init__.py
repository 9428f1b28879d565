"""HTTP surface: the app factory, OpenAI-compatible and admin routes, error mapping, SSE."""

from sluice.api.app import create_app
from sluice.api.listener import HTTPParser, uvicorn_config

__all__ = ["HTTPParser", "create_app", "uvicorn_config"]
