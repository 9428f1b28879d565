"""Admin routes (master key required when one is set): gateway status and the request log."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice.api.access import check_admin
from sluice.api.errors import error_response
from sluice.backends import ServesAdapter, Supervised
from sluice.compose import AppState
from sluice.errors import SluiceError


async def status(request: Request) -> Response:
    state: AppState = request.app.state.sluice
    try:
        check_admin(request, state)
    except SluiceError as error:
        return error_response(error)
    backends = {}
    for name, backend in state.backends.items():
        slots = state.gateway.terminal.slots[name]
        healthy = await backend.health() if state.backend_ready(name) else False
        backends[name] = {"type": backend.type, "started": state.backend_ready(name), "healthy": healthy,
                          "queued": slots.waiting}
        if isinstance(backend, Supervised):  # a local runtime in its worker process
            worker_state, why = backend.readiness()
            backends[name]["worker"] = {"state": worker_state, "reason": why, "pid": backend.pid}
        if isinstance(backend, ServesAdapter) and backend.adapter is not None:  # a local runtime's LoRA adapter
            backends[name]["adapter"] = backend.adapter.to_dict()
    writer = state.log_writer
    body = {
        "backends": backends,
        "models": sorted(state.gateway.deployments.all()),
        "chains": state.gateway.describe(state.config.models),  # each model's stages, in order
        "request_log": None if writer is None else {
            "queue_depth": writer.queue_depth,
            "rows_written": writer.rows_written,
            "write_errors": writer.write_errors,
            "rows_dropped": writer.rows_dropped,
        },
    }
    return Response(orjson.dumps(body), media_type="application/json")


routes = [Route("/admin/status", status, methods=["GET"])]
