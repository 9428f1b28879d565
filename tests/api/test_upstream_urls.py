"""An upstream's base_url may hold credentials: clients and the request log see the backend's name, never it."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from tests.support.gateway import RunningGateway, records, run_gateway, upstream_config
from tests.support.openai_server import OpenAIUpstream
from tests.support.servers import free_port

SECRETS = ("S3cretPW", "QTOKEN123", "admin:")
CHAT = {"model": "m", "messages": [{"role": "user", "content": "alpha beta gamma delta"}]}


def credentialed(url: str) -> str:
    """The probe's base_url: user:password@ and a query token."""
    return url.replace("http://", "http://admin:S3cretPW@") + "/v1?token=QTOKEN123"


def gateway_config(base_url: str, db: Path) -> dict[str, object]:
    config = upstream_config("unused", db)
    config["backends"] = {"up": {"type": "openai", "base_url": base_url, "read_timeout_s": 0.5}}
    return config


def assert_secret_free(text: str) -> None:
    assert not any(secret in text for secret in SECRETS), text
    assert "127.0.0.1" not in text, text


def chat(gw: RunningGateway, **body: object) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", json={**CHAT, **body}, timeout=10)


def test_an_unreachable_upstream_answers_502_naming_the_backend(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with run_gateway(gateway_config(credentialed(f"http://127.0.0.1:{free_port()}"), db)) as gw:
        whole, streamed = chat(gw), chat(gw, stream=True)
        status = httpx.get(gw.url + "/admin/status")
    rows = [row for row in records(db) if row.status_code == 502]  # a clean shutdown has written every row

    for response in (whole, streamed):
        assert response.status_code == 502
        assert response.json()["error"]["message"] == "cannot connect to upstream `up`: connection refused"
    assert status.status_code == 200 and status.json()["backends"]["up"]["healthy"] is False
    assert_secret_free(status.text)
    assert len(rows) == 2 and all(row.error_message and "`up`" in row.error_message for row in rows)
    for row in rows:
        assert_secret_free(row.error_message or "")


def test_a_silent_upstream_answers_504_naming_the_backend(upstream: tuple[OpenAIUpstream, str],
                                                          tmp_path: Path) -> None:
    upstream[0].fault = "slow_headers:5"
    with run_gateway(gateway_config(credentialed(upstream[1]), tmp_path / "log.db")) as gw:
        response = chat(gw)

    assert response.status_code == 504
    assert response.json()["error"]["message"] == "upstream `up` timed out"


def test_a_stream_cut_by_the_upstream_ends_with_an_error_event_naming_the_backend(
        upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    upstream[0].fault = "drop_mid_stream:2"
    with (run_gateway(gateway_config(credentialed(upstream[1]), tmp_path / "log.db")) as gw,
          httpx.stream("POST", gw.url + "/v1/chat/completions", json={**CHAT, "stream": True},
                       timeout=10) as response):
        events = [line for line in response.iter_lines() if line.startswith("data: ")]

    error = orjson.loads(events[-1].removeprefix("data: "))["error"]
    assert "`up`" in error["message"]
    assert_secret_free(error["message"])


def test_url_credentials_without_an_api_key_reach_the_upstream_as_basic_auth(
        upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    with run_gateway(gateway_config(credentialed(upstream[1]), tmp_path / "log.db")) as gw:
        response = chat(gw)
        status = httpx.get(gw.url + "/admin/status")

    assert response.status_code == 200
    assert status.status_code == 200 and status.json()["backends"]["up"]["healthy"] is True
    (sent,) = [r for r in upstream[0].requests if r.path == "/v1/chat/completions"]
    assert sent.headers["authorization"] == "Basic YWRtaW46UzNjcmV0UFc="  # admin:S3cretPW
