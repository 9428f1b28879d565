"""Slow and stalled clients (slowloris) against a real gateway: raw sockets, short timeouts, bounded waits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import orjson
import pytest

from sluice.api.listener import HTTPParser
from tests.support.gateway import RunningGateway, records, run_gateway, upstream_config
from tests.support.openai_server import OpenAIUpstream
from tests.support.polling import wait_for
from tests.support.raw_http import connect, read_until_closed, status_and_body, trickle_until_closed

TIMEOUT_S = 0.5  # header_timeout_s and body_timeout_s in these tests
HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
CHAT = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "alpha beta gamma delta"}]})


@pytest.fixture(params=["httptools", "h11"])
def gateway(request: pytest.FixtureRequest, upstream: tuple[OpenAIUpstream, str],
            tmp_path: Path) -> Iterator[RunningGateway]:
    """A gateway with 0.5 s header and body timeouts, on either HTTP parser."""
    parser: HTTPParser = request.param
    config = upstream_config(upstream[1], tmp_path / "log.db",
                             server={"header_timeout_s": TIMEOUT_S, "body_timeout_s": TIMEOUT_S})
    with run_gateway(config, http=parser) as running:
        yield running


def test_idle_and_half_sent_heads_are_closed_after_the_header_timeout(gateway: RunningGateway) -> None:
    with ExitStack() as stack:
        idle = [stack.enter_context(connect(gateway.url)) for _ in range(5)]
        half = [stack.enter_context(connect(gateway.url)) for _ in range(5)]
        for sock in half:
            sock.sendall(HEAD)
        started = time.monotonic()
        answers = [read_until_closed(sock) for sock in idle + half]
        elapsed_s = time.monotonic() - started

    assert answers == [b""] * 10  # closed without a word: there was no request to answer
    assert elapsed_s < 5


def test_a_head_trickled_a_byte_at_a_time_is_cut_at_the_header_timeout(gateway: RunningGateway) -> None:
    with connect(gateway.url) as sock:
        started = time.monotonic()
        trickle_until_closed(sock, HEAD + b"X-Padding: " + b"a" * 200)
        elapsed_s = time.monotonic() - started

    assert TIMEOUT_S * 0.8 < elapsed_s < 5  # every byte did not restart the clock


def test_a_kept_alive_connection_that_starts_a_slow_second_request_is_closed(gateway: RunningGateway) -> None:
    with connect(gateway.url) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: gw\r\n\r\n")
        first = b""
        while not first.endswith(b'{"status":"ok"}'):
            piece = sock.recv(65536)
            assert piece, "closed before the first answer"
            first += piece
        assert trickle_until_closed(sock, b"GET /health/live HTTP/1.1\r\nHost: gw\r\n") == b""

    assert first.startswith(b"HTTP/1.1 200")


def test_a_body_that_stops_coming_is_answered_408_logged_and_closed(gateway: RunningGateway, tmp_path: Path,
                                                                    ) -> None:
    with connect(gateway.url) as sock:
        sock.sendall(HEAD + b"X-Request-Id: stalled-body\r\nContent-Length: 1000\r\n\r\n" + CHAT[:10])
        status, body = status_and_body(read_until_closed(sock))

    assert status == 408
    assert body["error"]["code"] == "body_timeout" and body["error"]["type"] == "invalid_request_error"
    row = wait_for(lambda: next((r for r in records(tmp_path / "log.db") if r.client_request_id == "stalled-body"),
                                None), what="the 408's request-log row")
    assert row.status_code == 408


def test_a_body_trickled_a_byte_at_a_time_is_cut_at_the_body_timeout(gateway: RunningGateway) -> None:
    with connect(gateway.url) as sock:
        sock.sendall(HEAD + b"Content-Length: 100000\r\n\r\n")
        started = time.monotonic()
        answer = trickle_until_closed(sock, b" ")
        elapsed_s = time.monotonic() - started

    assert TIMEOUT_S * 0.8 < elapsed_s < 5  # every byte did not restart the clock
    # The 408 is sent, but a byte still in flight when the gateway closes makes its kernel reset the
    # connection, which may discard the answer on our side: a reset is a close too.
    assert answer == b"" or status_and_body(answer)[1]["error"]["code"] == "body_timeout"


def test_answers_slower_than_the_timeouts_still_finish(gateway: RunningGateway,
                                                       upstream: tuple[OpenAIUpstream, str]) -> None:
    upstream[0].fault = "slow_tokens:0.2"  # four tokens: answers of about 0.8 s, longer than the timeouts
    chunks = list(gateway.client().chat.completions.create(
        model="m", messages=[{"role": "user", "content": "alpha beta gamma delta"}], stream=True))
    whole = gateway.client().chat.completions.create(
        model="m", messages=[{"role": "user", "content": "alpha beta gamma delta"}])

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "alpha beta gamma delta"
    assert whole.choices[0].message.content == "alpha beta gamma delta"


def test_connections_beyond_max_connections_are_refused_with_503(upstream: tuple[OpenAIUpstream, str],
                                                                 tmp_path: Path) -> None:
    config = upstream_config(upstream[1], tmp_path / "log.db", server={"max_connections": 3})
    with run_gateway(config) as gw, ExitStack() as stack:
        held = [stack.enter_context(connect(gw.url)) for _ in range(2)]
        refused = httpx.get(gw.url + "/health/live")
        for sock in held:
            sock.close()
        wait_for(lambda: httpx.get(gw.url + "/health/live").status_code == 200, what="a free connection")

    assert refused.status_code == 503  # uvicorn's own plain-text answer (docs/config.md)


def test_malformed_http_gets_a_plain_400_and_the_gateway_serves_on(gateway: RunningGateway) -> None:
    with connect(gateway.url) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: x\r\n\r\n")
        answer = read_until_closed(sock)

    assert answer.startswith(b"HTTP/1.1 400") and answer.endswith(b"Invalid HTTP request received.")
    assert httpx.get(gateway.url + "/health/live").status_code == 200
