"""The Starlette app factory: routes, the lifespan that starts and closes what the composition root built,
error handling."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice import compose
from sluice.api import (
    admin_deploy,
    admin_evals,
    admin_keys,
    admin_models,
    admin_prompts,
    admin_routes,
    admin_shadow,
    openai_routes,
)
from sluice.api.access import check_metrics
from sluice.api.errors import error_response
from sluice.compose import AppState, build_state
from sluice.config import SluiceConfig
from sluice.errors import InternalError, MethodNotAllowed, RouteNotFound, SluiceError
from sluice.telemetry import Tracing

log = logging.getLogger("sluice.api")


def create_app(config: SluiceConfig, *, tracing: Tracing | None = None) -> Starlette:
    """Build the gateway app; `tracing` overrides the configured exporter (tests pass an in-memory one)."""
    state = build_state(config, tracing=tracing)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await compose.start(state)  # the store and record bus, keys, stored deployments, then backends
        try:
            yield
        finally:
            await compose.close(state)  # in reverse; the record bus drains into the store last

    app = Starlette(
        routes=[*openai_routes.routes, *admin_routes.routes, *admin_shadow.routes, *admin_keys.routes,
                *admin_models.routes,
                *admin_prompts.routes,
                *admin_evals.routes,
                Route("/health/live", live, methods=["GET"]),
                Route("/health/ready", ready, methods=["GET"]),
                Route("/metrics", metrics, methods=["GET"]),
                *admin_deploy.routes],  # last: its GET /admin/deployments/{model:path} would shadow later ones
        lifespan=lifespan,
        exception_handlers={Exception: _internal_error, SluiceError: _sluice_error, 404: _not_found,
                            405: _method_not_allowed},
    )
    app.state.sluice = state
    return app


async def live(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def ready(request: Request) -> Response:
    """Ready when the store is open, every backend has started (local models loaded) and the semantic cache's
    embedder and index have loaded."""
    state: AppState = request.app.state.sluice
    statuses = {name: state.backend_status(name) for name in state.backends}
    backends = {name: status for name, (status, _) in statuses.items()}
    store_ok = state.log_writer is not None
    cache = dict(state.cache.starts) if state.cache is not None else {}  # the semantic cache's embedder, index
    ok = store_ok and all(value == "ready" for value in (*backends.values(), *cache.values()))
    body = {"status": "ready" if ok else "not_ready", "store": "ready" if store_ok else "not_ready",
            "backends": backends, "cache": cache}
    reasons = {name: why for name, (_, why) in statuses.items() if why}
    if reasons:
        body["backend_errors"] = reasons
    return Response(orjson.dumps(body), status_code=200 if ok else 503, media_type="application/json")


async def metrics(request: Request) -> Response:
    state: AppState = request.app.state.sluice
    try:
        check_metrics(request, state)  # it names keys, teams and their spend
    except SluiceError as error:
        return error_response(error)
    writer = state.log_writer
    if writer is not None:
        state.metrics.log_queue_depth.set(writer.queue_depth)
    return Response(state.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def _sluice_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SluiceError)  # a route that let one escape
    return error_response(exc)


async def _internal_error(request: Request, exc: Exception) -> Response:
    return error_response(InternalError("The gateway failed to handle this request."))


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(RouteNotFound(request.url.path))


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return error_response(MethodNotAllowed(request.method, request.url.path))
