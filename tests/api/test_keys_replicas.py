"""Three `sluice serve` processes sharing one real Redis and one store: limits, budgets and revocation hold
across replicas, as they would behind a load balancer."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.test_keys_admin import ADMIN, MASTER, keyed_config
from tests.api.test_keys_limits import ONE_REQUEST_USD, PRICING
from tests.support.openai_server import make_openai_upstream
from tests.support.replicas import serve_replicas
from tests.support.servers import serve_app

BODY = {"model": "m", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 4}
REPLICAS = 3


@pytest.fixture
def replicas(tmp_path: Path, redis_url: str) -> Iterator[list[str]]:
    """Three gateways on one Redis and one SQLite store (migrated first, so they start side by side)."""
    db = tmp_path / "store.db"
    with serve_app(make_openai_upstream(models=["up-model"])) as upstream_url:
        config = keyed_config(upstream_url, db, pricing=PRICING, state={"url": redis_url})
        with serve_replicas(config, tmp_path, REPLICAS) as urls:
            yield urls


def create_key(url: str, **settings: object) -> tuple[str, str]:
    response = httpx.post(url + "/admin/keys", headers=ADMIN, json={"name": "replicated", **settings})
    assert response.status_code == 201, response.text
    return response.json()["key"]["id"], response.json()["secret"]


async def spread(urls: list[str], secret: str, count: int) -> tuple[list[httpx.Response], float]:
    """`count` concurrent requests, round-robin over the replicas; returns them and the burst's seconds."""
    headers = {"authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=count)) as client:
        started = time.monotonic()
        responses = await asyncio.gather(*(client.post(url + "/v1/chat/completions", headers=headers, json=BODY)
                                           for url, _ in zip(itertools.cycle(urls), range(count))))
        return list(responses), time.monotonic() - started


def test_limits_budgets_and_revocation_hold_across_three_replicas(replicas: list[str]) -> None:
    # RPM 30, 90 requests spread over three processes: exactly 30 pass. (GCRA refills one request every
    # 2 s; a burst that took longer than that may see one more per 2 s, never more.)
    _, secret = create_key(replicas[0], rpm=30)
    responses, burst_s = asyncio.run(spread(replicas, secret, 90))
    passed = sum(r.status_code == 200 for r in responses)
    refused = [r for r in responses if r.status_code == 429]
    assert passed + len(refused) == 90
    assert 30 <= passed <= 30 + math.floor(burst_s / 2.0)
    if burst_s < 2.0:
        assert passed == 30
    assert all(r.json()["error"]["code"] == "rate_limit_exceeded" and int(r.headers["retry-after"]) >= 1
               for r in refused)

    # A budget holds across them: a key with $0.06 has $0.04 spent (ten requests, spread), leaving $0.02 for
    # requests estimated at $0.015 and costing $0.004; then 200 at once, round-robin over the three.
    budget = 0.06
    key_id, secret = create_key(replicas[1], budget_total_usd=budget)
    for index in range(10):
        served = httpx.post(replicas[index % REPLICAS] + "/v1/chat/completions", json=BODY,
                            headers={"authorization": f"Bearer {secret}"})
        assert served.status_code == 200, served.text
    responses, _ = asyncio.run(spread(replicas, secret, 200))
    costs = [float(r.headers["x-sluice-cost-usd"]) for r in responses if r.status_code == 200]
    assert costs and all(r.json()["error"]["code"] == "insufficient_quota"
                         for r in responses if r.status_code != 200)
    assert len(costs) <= 5  # $0.02 left is at most five requests of $0.004
    spent = 10 * ONE_REQUEST_USD + sum(costs)
    assert spent <= budget + ONE_REQUEST_USD + 1e-9  # at most one request's worth over ...
    assert spent <= budget + 1e-9  # ... and with upper-bound estimates, nothing over

    def logged() -> dict[str, float] | None:  # the durable record, written by all three replicas
        spend = httpx.get(replicas[0] + f"/admin/keys/{key_id}", headers=ADMIN).json()["spend"]
        return spend if spend["requests"] == 210 else None

    deadline = time.monotonic() + 10
    while (spend := logged()) is None:
        assert time.monotonic() < deadline, "the request log did not catch up"
        time.sleep(0.1)
    assert spend["total_usd"] == pytest.approx(spent) and spend["total_usd"] <= budget + 1e-9

    # A revoked key stops working on every replica within the notification delay.
    key_id, secret = create_key(replicas[2])
    headers = {"authorization": f"Bearer {secret}"}
    for url in replicas:  # each replica has the key cached now
        assert httpx.post(url + "/v1/chat/completions", headers=headers, json=BODY).status_code == 200
    assert httpx.post(replicas[0] + f"/admin/keys/{key_id}/revoke", headers=ADMIN).status_code == 200
    revoked_at = time.monotonic()
    delays = []
    for url in replicas:
        while httpx.post(url + "/v1/chat/completions", headers=headers, json=BODY).status_code == 200:
            assert time.monotonic() - revoked_at < 1.0, f"{url} still accepts a key revoked a second ago"
        delays.append(time.monotonic() - revoked_at)
    assert all(delay < 1.0 for delay in delays)
    # and the master key still works everywhere
    assert all(httpx.post(url + "/v1/chat/completions", headers={"authorization": f"Bearer {MASTER}"},
                          json=BODY).status_code == 200 for url in replicas)
