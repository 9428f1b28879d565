"""Who may call the routes beside /v1: admin routes and /metrics."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.requests import Request

from sluice.api.openai_routes import bearer_token, check_key
from sluice.compose import AppState
from sluice.errors import Forbidden, Unauthorized

_SAME_ORIGIN_FETCHES = ("same-origin", "none")  # Sec-Fetch-Site: none is a URL typed or bookmarked


def check_admin(request: Request, state: AppState) -> None:
    """The master key when one is set. Without one the admin API is open to whoever can reach it, but not to
    web pages: a browser's cross-site request (CSRF, e.g. a form creating a key) is refused."""
    if state.master_key is not None:
        check_key(request, state)
        return
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if (site is not None and site not in _SAME_ORIGIN_FETCHES) or (
            origin is not None and urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()):
        raise Forbidden("Admin routes refuse cross-site browser requests while no master key is set "
                        "(server.master_key).", code="cross_site_request")


def check_metrics(request: Request, state: AppState) -> None:
    """/metrics: open while there is neither a master key nor `server.metrics_token`; else either, as a Bearer."""
    metrics_token = state.config.server.metrics_token
    if state.master_key is None and metrics_token is None:
        return
    token = bearer_token(request)
    if metrics_token is not None and hmac.compare_digest(token.encode(), metrics_token.encode()):
        return
    if state.master_key is not None and state.key_matches(token):
        return
    raise Unauthorized("Invalid or missing token for /metrics. Send `Authorization: Bearer <token>` with "
                       "server.metrics_token or the master key.", code="invalid_api_key")


__all__ = ["check_admin", "check_metrics"]
