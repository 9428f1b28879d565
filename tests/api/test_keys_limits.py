"""RPM/TPM limits and budgets through a real gateway, on the in-process state and on a real Redis."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sluice.api import create_app
from sluice.config import parse_config
from sluice.state import StateError
from tests.api.test_keys_admin import ADMIN, MASTER, chat, create_key, keyed_config
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.openai_server import OpenAIUpstream
from tests.support.redis import start_redis, stop_redis
from tests.support.servers import free_port

# $1000 per 1M tokens = $0.001 a token: "hello there" with max_tokens 4 costs 4 tokens = $0.004 (the fake
# upstream counts words), and is estimated at up to 11 counted prompt tokens + 4 output tokens = $0.015.
PRICING = {"models": {"up-model": {"input_usd_per_1m": 1000, "output_usd_per_1m": 1000}}}
ONE_REQUEST_USD = 0.004


@pytest.fixture(params=["memory", "redis"])
def state_url(request: pytest.FixtureRequest) -> str:
    return "memory://" if request.param == "memory" else str(request.getfixturevalue("redis_url"))


def priced_config(upstream_url: str, db: Path, state_url: str = "memory://", **overrides: Any) -> dict[str, Any]:
    return keyed_config(upstream_url, db, pricing=PRICING, state={"url": state_url}, **overrides)


def small_chat(gw: RunningGateway, token: str) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", headers={"authorization": f"Bearer {token}"},
                      json={"model": "m", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 4})


def refused_for_budget(gw: RunningGateway) -> float:
    for line in gw.metrics_text().splitlines():
        if line.startswith('sluice_admission_refused_total{limit="day",reason="budget"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_rpm_limit_refuses_with_retry_after(upstream: tuple[OpenAIUpstream, str], tmp_path: Path,
                                            state_url: str) -> None:
    with run_gateway(priced_config(upstream[1], tmp_path / "db.sqlite", state_url)) as gw:
        _, secret = create_key(gw, rpm=3)
        assert [chat(gw, secret).status_code for _ in range(3)] == [200, 200, 200]
        refused = chat(gw, secret)
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert (error["code"], error["type"]) == ("rate_limit_exceeded", "requests")
        assert "requests per min (RPM): limit 3" in error["message"]
        assert 1 <= int(refused.headers["retry-after"]) <= 20  # one request's worth refills in 20 s
        with pytest.raises(openai.RateLimitError):
            gw.client(api_key=secret).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        _, other = create_key(gw, rpm=3)  # limits are per key
        assert chat(gw, other).status_code == 200
        metrics = gw.metrics_text()
        assert 'sluice_admission_refused_total{limit="rpm",reason="rate_limited"} 2.0' in metrics


def test_tpm_counts_prompt_tokens_up_front_and_usage_at_the_end(upstream: tuple[OpenAIUpstream, str],
                                                                tmp_path: Path) -> None:
    with run_gateway(priced_config(upstream[1], tmp_path / "db.sqlite")) as gw:
        _, secret = create_key(gw, tpm=60)
        headers = {"authorization": f"Bearer {secret}"}
        too_large = httpx.post(gw.url + "/v1/chat/completions", headers=headers,
                               json={"model": "m", "messages": [{"role": "user", "content": "word " * 80}]})
        assert too_large.status_code == 429 and too_large.headers["x-should-retry"] == "false"
        assert too_large.json()["error"]["type"] == "tokens"
        assert "Request too large" in too_large.json()["error"]["message"]
        # counted up front: 6 (an empty message and its framing); used: 56 (the fake upstream answers an
        # empty prompt with max_tokens tokens)
        long_answer = httpx.post(gw.url + "/v1/chat/completions", headers=headers, json={
            "model": "m", "messages": [{"role": "user", "content": ""}], "max_tokens": 56})
        assert long_answer.status_code == 200 and long_answer.json()["usage"]["total_tokens"] == 56
        # an 8-token prompt fits in what was counted up front (6 + 8 <= 60), but not after the request
        # settled with its real usage (56 + 8 > 60)
        refused = small_chat(gw, secret)
        assert refused.status_code == 429 and refused.json()["error"]["type"] == "tokens"
        assert "requested" in refused.json()["error"]["message"]


def test_budget_refuses_with_insufficient_quota_and_sdks_do_not_retry(upstream: tuple[OpenAIUpstream, str],
                                                                     tmp_path: Path, state_url: str) -> None:
    fake, url = upstream
    with run_gateway(priced_config(url, tmp_path / "db.sqlite", state_url)) as gw:
        key, secret = create_key(gw, budget_day_usd=0.02)
        statuses = [small_chat(gw, secret).status_code for _ in range(6)]
        # holds of $0.015 each: one fits at $0 spent ... after 2 x $0.004 spent, 0.008 + 0.015 > 0.02
        assert statuses[:2] == [200, 200] and statuses[2:] == [429] * 4
        refused = small_chat(gw, secret)
        error = refused.json()["error"]
        assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
        assert "daily budget of $0.02" in error["message"] and "resets at" in error["message"]
        assert refused.headers["x-should-retry"] == "false"
        assert int(refused.headers["retry-after"]) <= 86_400
        seen = len(fake.requests)
        refusals = refused_for_budget(gw)
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=secret, max_retries=2)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
        assert caught.value.code == "insufficient_quota"
        assert refused_for_budget(gw) == refusals + 1  # the SDK sent it once: no retries into a spent budget
        assert len(fake.requests) == seen  # and it never reached the upstream
        shown = httpx.get(gw.url + f"/admin/keys/{key['id']}", headers=ADMIN).json()
        assert shown["spend"]["reserved_usd"] == pytest.approx(0, abs=1e-12)
        # the master key is not bound by any key's budget
        assert small_chat(gw, MASTER).status_code == 200


def test_200_concurrent_requests_overspend_by_at_most_one_request(upstream: tuple[OpenAIUpstream, str],
                                                                 tmp_path: Path, state_url: str) -> None:
    db = tmp_path / "db.sqlite"
    budget = 0.06
    with run_gateway(priced_config(upstream[1], db, state_url)) as gw:
        key, secret = create_key(gw, budget_total_usd=budget)
        for _ in range(10):  # $0.040 spent, $0.020 left: room for one $0.015 hold at a time
            assert small_chat(gw, secret).status_code == 200

        async def burst() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=200)
            async with httpx.AsyncClient(base_url=gw.url, limits=limits, timeout=30) as client:
                return await asyncio.gather(*(client.post(
                    "/v1/chat/completions", headers={"authorization": f"Bearer {secret}"},
                    json={"model": "m", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 4})
                    for _ in range(200)))

        responses = asyncio.run(burst())
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) + len(refused) == 200
    assert all(r.json()["error"]["code"] == "insufficient_quota" for r in refused)
    assert 1 <= len(ok) <= 5  # $0.020 left is at most 5 requests of $0.004
    with sqlite3.connect(db) as conn:
        spent = conn.execute("SELECT SUM(cost_usd) FROM request_log WHERE key_id = ?", (key["id"],)).fetchone()[0]
    assert spent <= budget + ONE_REQUEST_USD + 1e-9
    assert spent <= budget + 1e-9  # estimates are upper bounds: in fact nothing is overspent


def test_spend_survives_a_restart_seeded_from_the_request_log(upstream: tuple[OpenAIUpstream, str],
                                                             tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    config = priced_config(upstream[1], db)
    with run_gateway(config) as gw:
        _, secret = create_key(gw, budget_month_usd=0.02)
        assert small_chat(gw, secret).status_code == 200
        assert small_chat(gw, secret).status_code == 200  # $0.008 spent
    with run_gateway(config) as gw:  # a fresh in-process state: the counter starts from the log's $0.008
        refused = small_chat(gw, secret)
        assert refused.status_code == 429
        assert "$0.0080 spent" in refused.json()["error"]["message"]


def test_embeddings_are_authenticated_and_limited(upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    with run_gateway(priced_config(upstream[1], tmp_path / "db.sqlite")) as gw:
        _, secret = create_key(gw, rpm=2)
        assert httpx.post(gw.url + "/v1/embeddings", json={"model": "m", "input": "hi"}).status_code == 401
        client = gw.client(api_key=secret)
        assert client.embeddings.create(model="m", input="hi").data
        assert client.embeddings.create(model="m", input=["a", "b"]).data
        with pytest.raises(openai.RateLimitError):
            client.embeddings.create(model="m", input="hi")


def test_unreachable_state_fails_open_when_configured(upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    config = priced_config(upstream[1], tmp_path / "db.sqlite", dead, keys={"fail_open": True})
    with run_gateway(config) as gw:
        _, secret = create_key(gw, rpm=1)
        assert [chat(gw, secret).status_code for _ in range(3)] == [200, 200, 200]  # limits cannot be checked
        assert "sluice_admission_failed_open_total 3.0" in gw.metrics_text()
    # failing closed, the gateway does not start without its state
    app = create_app(parse_config(priced_config(upstream[1], tmp_path / "db.sqlite", dead,
                                                keys={"fail_open": False})))

    async def start() -> None:
        async with app.router.lifespan_context(app):
            pass

    with pytest.raises(StateError, match="cannot reach Redis"):
        asyncio.run(start())


def test_state_lost_mid_run_fails_closed_when_configured(upstream: tuple[OpenAIUpstream, str],
                                                        tmp_path: Path) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not found on PATH")
    process, server, root = start_redis(binary)  # our own Redis, to stop mid-test
    try:
        config = priced_config(upstream[1], tmp_path / "db.sqlite", server.url(), keys={"fail_open": False})
        with run_gateway(config) as gw:
            _, secret = create_key(gw, rpm=100)
            assert chat(gw, secret).status_code == 200
            stop_redis(process, root)
            refused = chat(gw, secret)
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "state_unavailable"
            assert chat(gw, MASTER).status_code == 200  # the master key needs no state
    finally:
        stop_redis(process, root)


def test_cost_is_counted_in_prometheus_by_model_key_and_team(upstream: tuple[OpenAIUpstream, str],
                                                             tmp_path: Path) -> None:
    with run_gateway(priced_config(upstream[1], tmp_path / "db.sqlite")) as gw:
        key, secret = create_key(gw, team="search")
        other, other_secret = create_key(gw, team="ads")
        costs = [float(small_chat(gw, token).headers["x-sluice-cost-usd"]) for token in (secret, secret, other_secret)]
        assert float(small_chat(gw, MASTER).headers["x-sluice-cost-usd"]) == pytest.approx(ONE_REQUEST_USD)
        series = {(s.labels["model"], s.labels["key"], s.labels["team"]): s.value
                  for family in text_string_to_metric_families(gw.metrics_text())
                  for s in family.samples if s.name == "sluice_cost_usd_total"}
    assert series[("m", key["id"], "search")] == pytest.approx(costs[0] + costs[1])
    assert series[("m", other["id"], "ads")] == pytest.approx(costs[2])
    assert series[("m", "", "")] == pytest.approx(ONE_REQUEST_USD)  # the master key: no key, no team
