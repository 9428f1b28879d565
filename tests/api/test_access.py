"""Who may read /metrics, and the admin API's defence against web pages while it has no master key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway import RunningGateway, run_gateway, upstream_config
from tests.support.openai_server import OpenAIUpstream

MASTER = "sk-master"
SCRAPE = "scrape-token"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def guarded(upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> Iterator[RunningGateway]:
    config = upstream_config(upstream[1], tmp_path / "log.db", server={"master_key": MASTER,
                                                                       "metrics_token": SCRAPE})
    with run_gateway(config) as gw:
        yield gw


def test_metrics_need_the_scrape_token_or_the_master_key_once_a_master_key_is_set(guarded: RunningGateway,
                                                                                  ) -> None:
    httpx.post(guarded.url + "/admin/keys", headers=bearer(MASTER), json={"name": "k1", "team": "secret-team"})
    refused = [httpx.get(guarded.url + "/metrics", headers=headers)
               for headers in ({}, bearer("wrong"), {"x-api-key": "wrong"})]
    scraped = httpx.get(guarded.url + "/metrics", headers=bearer(SCRAPE))
    as_admin = httpx.get(guarded.url + "/metrics", headers=bearer(MASTER))

    for response in refused:
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
        assert "secret-team" not in response.text
    assert scraped.status_code == 200 and as_admin.status_code == 200
    assert scraped.text.startswith("# HELP")


def test_the_scrape_token_is_not_an_api_key(guarded: RunningGateway) -> None:
    chat = httpx.post(guarded.url + "/v1/chat/completions", headers=bearer(SCRAPE),
                      json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    admin = httpx.get(guarded.url + "/admin/status", headers=bearer(SCRAPE))

    assert (chat.status_code, admin.status_code) == (401, 401)


def test_a_scrape_token_guards_metrics_without_a_master_key(upstream: tuple[OpenAIUpstream, str],
                                                            tmp_path: Path) -> None:
    config = upstream_config(upstream[1], tmp_path / "log.db", server={"metrics_token": SCRAPE})
    with run_gateway(config) as gw:
        assert httpx.get(gw.url + "/metrics").status_code == 401
        assert httpx.get(gw.url + "/metrics", headers=bearer(SCRAPE)).status_code == 200


def test_metrics_stay_open_with_neither_a_master_key_nor_a_scrape_token(gateway: RunningGateway) -> None:
    assert httpx.get(gateway.url + "/metrics").status_code == 200


@pytest.mark.parametrize("headers", [
    {"origin": "https://evil.example", "sec-fetch-site": "cross-site"},
    {"origin": "http://localhost:3000", "sec-fetch-site": "same-site"},
    {"origin": "null"},  # a sandboxed frame or a file:// page
    {"origin": "https://evil.example"},  # a browser that sends no Sec-Fetch-* headers
    {"sec-fetch-site": "cross-site"},
])
def test_without_a_master_key_admin_routes_refuse_cross_site_browser_requests(gateway: RunningGateway,
                                                                              headers: dict[str, str]) -> None:
    created = httpx.post(gateway.url + "/admin/keys", json={"name": "csrf"}, headers=headers)
    listed = httpx.get(gateway.url + "/admin/keys", headers=headers)

    for response in (created, listed):
        assert response.status_code == 403
        assert response.json()["error"]["type"] == "permission_error"
        assert response.json()["error"]["code"] == "cross_site_request"
    assert httpx.get(gateway.url + "/admin/keys").json()["data"] == []


def same_origin(gw: RunningGateway) -> dict[str, str]:
    return {"origin": gw.url, "sec-fetch-site": "same-origin"}


@pytest.mark.parametrize("browser", [False, True])
def test_without_a_master_key_same_origin_pages_and_non_browser_clients_reach_admin(gateway: RunningGateway,
                                                                                    browser: bool) -> None:
    headers: dict[str, Any] = same_origin(gateway) if browser else {}
    created = httpx.post(gateway.url + "/admin/keys", json={"name": "ok"}, headers=headers)

    assert created.status_code == 201


def test_with_a_master_key_the_key_decides_not_the_origin(guarded: RunningGateway) -> None:
    cross_site = {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}
    anonymous = httpx.get(guarded.url + "/admin/status", headers=cross_site)
    keyed = httpx.get(guarded.url + "/admin/status", headers={**cross_site, **bearer(MASTER)})

    assert (anonymous.status_code, keyed.status_code) == (401, 200)
