"""Request bodies: JSON content types only, size limits on admin routes too, and clients that leave mid-body."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.gateway import RunningGateway, records
from tests.support.polling import wait_for
from tests.support.raw_http import connect

CHAT = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "alpha beta"}]})


@pytest.mark.parametrize("content_type", ["text/plain", "text/plain;charset=UTF-8",
                                          "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
def test_v1_refuses_bodies_that_are_not_declared_json_with_415(gateway: RunningGateway, content_type: str) -> None:
    response = httpx.post(gateway.url + "/v1/chat/completions", content=CHAT,
                          headers={"content-type": content_type})

    assert response.status_code == 415
    assert response.json()["error"] == {
        "message": f"Content-Type `{content_type.partition(';')[0].lower()}` is not supported; "
                   "send `application/json`.",
        "type": "invalid_request_error", "param": None, "code": "unsupported_media_type"}


@pytest.mark.parametrize("headers", [{"content-type": "application/json"},
                                     {"content-type": "Application/JSON; charset=utf-8"},
                                     {"content-type": "application/vnd.api+json"},
                                     {}])  # no Content-Type at all: read as JSON, as FastAPI (vLLM) does
def test_v1_reads_json_bodies_and_bodies_without_a_content_type(gateway: RunningGateway,
                                                                headers: dict[str, str]) -> None:
    response = httpx.post(gateway.url + "/v1/chat/completions", content=CHAT, headers=headers)

    assert response.status_code == 200, response.text


def test_a_text_plain_post_cannot_create_a_key(gateway: RunningGateway) -> None:
    """The probe: with no master key, a cross-origin text/plain form post created a key (CSRF)."""
    response = httpx.post(gateway.url + "/admin/keys", content=b'{"name": "csrf"}',
                          headers={"content-type": "text/plain"})

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert httpx.get(gateway.url + "/admin/keys").json()["data"] == []


def test_admin_routes_have_a_body_limit(gateway: RunningGateway) -> None:
    """The probe sent a 5 MB metadata field to /admin/keys."""
    huge = {"name": "big", "metadata": {"blob": "x" * 5_000_000}}
    response = httpx.post(gateway.url + "/admin/keys", json=huge)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert httpx.get(gateway.url + "/admin/keys").json()["data"] == []


def test_key_metadata_is_limited_to_16_kib(gateway: RunningGateway) -> None:
    too_much = httpx.post(gateway.url + "/admin/keys", json={"name": "k", "metadata": {"notes": "x" * 20_000}})
    enough = httpx.post(gateway.url + "/admin/keys", json={"name": "k", "metadata": {"notes": "x" * 16_000}})

    assert too_much.status_code == 400
    assert too_much.json()["error"]["param"] == "metadata"
    assert too_much.json()["error"]["message"] == "Invalid request: metadata: at most 16384 bytes as JSON"
    assert enough.status_code == 201


def test_a_client_leaving_mid_body_is_a_quiet_499_with_a_log_row(gateway: RunningGateway, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The probe: `Content-Length: 1000`, ten bytes, then close. It logged a traceback and left no row."""
    server_errors = logging.getLogger("uvicorn.error")  # where uvicorn logs "Exception in ASGI application"
    server_errors.addHandler(caplog.handler)
    try:
        with connect(gateway.url) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                         b"X-Request-Id: left-mid-body\r\nContent-Length: 1000\r\n\r\n" + CHAT[:10])
        row = wait_for(lambda: next((r for r in records(tmp_path / "log.db")
                                     if r.client_request_id == "left-mid-body"), None),
                       what="the request-log row of the abandoned request")
        assert httpx.get(gateway.url + "/health/live").status_code == 200  # the server's loop has moved on
    finally:
        server_errors.removeHandler(caplog.handler)

    assert (row.status_code, row.error_class) == (499, "client_disconnect")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
