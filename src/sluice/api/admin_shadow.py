"""Admin route of shadow mode: `GET /admin/deployments/{model}/shadow-report` (master key when one is set)."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice.api.access import check_admin
from sluice.api.errors import error_response
from sluice.compose import AppState
from sluice.errors import BackendNotReady, InvalidRequest, ModelNotFound, SluiceError
from sluice.rollout import DEFAULT_SINCE, load_report, parse_since, report_to_json

MAX_WORST = 100


async def shadow_report(request: Request) -> Response:
    """Query: `since` (30m, 24h, 7d, ISO-8601, unix seconds or `all`; default 24h), `worst` (0-100, default 5)."""
    state: AppState = request.app.state.sluice
    try:
        check_admin(request, state)
        model = request.path_params["model"]
        if model not in state.config.models:
            raise ModelNotFound(model)
        try:
            since = parse_since(request.query_params.get("since", DEFAULT_SINCE))
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="since", code="invalid_value") from None
        worst_text = request.query_params.get("worst", "5")
        if not worst_text.isdigit() or int(worst_text) > MAX_WORST:
            raise InvalidRequest(f"worst: expected a whole number from 0 to {MAX_WORST}, not {worst_text!r}",
                                 param="worst", code="invalid_value")
        if state.engine is None:
            raise BackendNotReady("The store is not open yet; try again in a moment.", code="store_not_ready")
        report = await load_report(state.engine, model, since=since, worst=int(worst_text))
    except SluiceError as error:
        return error_response(error)
    return Response(orjson.dumps(report_to_json(report)), media_type="application/json")


# `path`: public model names may contain "/" (meta-llama/Llama-3.1-8B)
routes = [Route("/admin/deployments/{model:path}/shadow-report", shadow_report, methods=["GET"])]
