"""Deployments changed at run time, as clients see them: sticky canaries, blue-green switches under
in-flight streams, and replicas sharing one store."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest

from sluice.store import request_log
from tests.rollout.support import chat, rollout_config, wait_for
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.openai_server import OpenAIUpstream
from tests.support.postgres import database_url, postgres_server, postgres_url  # noqa: F401

SIDE_OF_TARGET = {"blue": "stable", "green": "candidate"}


def route_many(gw: RunningGateway, users: list[str]) -> list[tuple[str, str, str]]:
    """(user, request id, side from x-sluice-target) for one chat request per entry of `users`."""
    def one(client: httpx.Client, user: str) -> tuple[str, str, str]:
        response = chat(client, user)
        assert response.status_code == 200, response.text
        return user, response.headers["x-request-id"], SIDE_OF_TARGET[response.headers["x-sluice-target"]]

    with httpx.Client(base_url=gw.url, timeout=10) as client, ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda user: one(client, user), users))


def logged_roles(gw: RunningGateway, request_ids: set[str]) -> dict[str, str | None]:
    engine = gw.state.engine
    assert engine is not None

    async def read() -> dict[str, str | None]:
        records = await request_log.recent(engine, len(request_ids) + 100, model="m")
        return {r.request_id: r.route_role for r in records if r.request_id in request_ids}

    def all_flushed() -> dict[str, str | None] | None:
        roles = asyncio.run(read())
        return roles if len(roles) == len(request_ids) else None

    return wait_for(all_flushed, what="request log rows")


def test_canary_sticks_to_user_across_1000_requests_and_raising_the_weight_keeps_the_first_group(
        upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    _, url = upstream
    with run_gateway(rollout_config(url, f"sqlite:///{tmp_path / 's.db'}", weight=10)) as gw:
        users = [f"user-{i}" for i in range(250)]
        first = route_many(gw, users * 4)  # 1,000 requests, each user four times, interleaved
        sides: dict[str, set[str]] = defaultdict(set)
        for user, _, side in first:
            sides[user].add(side)
        assert all(len(seen) == 1 for seen in sides.values())  # every user always on one side
        on_candidate = {user for user, seen in sides.items() if seen == {"candidate"}}
        assert 10 <= len(on_candidate) <= 45  # ~10 % of 250 users (binomial sd ~4.7)
        roles = logged_roles(gw, {request_id for _, request_id, _ in first})
        assert all(roles[request_id] == side for _, request_id, side in first)  # the record agrees

        response = httpx.post(f"{gw.url}/admin/deployments/m/set-weight", json={"weight": 25})
        assert response.status_code == 200, response.text
        second = route_many(gw, users * 2)
        now: dict[str, set[str]] = defaultdict(set)
        for user, _, side in second:
            now[user].add(side)
        assert all(len(seen) == 1 for seen in now.values())
        now_candidate = {user for user, seen in now.items() if seen == {"candidate"}}
        assert on_candidate < now_candidate  # the first 10 % stay; only new users move over
        assert 40 <= len(now_candidate) <= 90  # ~25 % of 250
        print(f"\nsticky canary: {len(on_candidate)}/250 users on the candidate at 10 %, "
              f"{len(now_candidate)}/250 at 25 %, all of the first group kept; "
              f"sides per request {Counter(side for _, _, side in first)}")


def test_an_in_flight_stream_finishes_on_its_original_target_across_a_blue_green_switch(
        upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    _, url = upstream
    config = rollout_config(url, f"sqlite:///{tmp_path / 's.db'}", strategy="blue_green",
                            blue_model="fault/slow_tokens:0.15")  # blue streams one word per 150 ms
    with run_gateway(config) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "one two three four"}]}
        with client.stream("POST", "/v1/chat/completions", json=body) as stream:
            assert stream.headers["x-sluice-target"] == "blue"
            lines = stream.iter_lines()
            first = next(line for line in lines if line.startswith("data:"))
            switched = client.post("/admin/deployments/m/switch", json={"reason": "go green"})
            assert switched.status_code == 200, switched.text
            assert switched.json()["deployment"]["candidate_weight"] == 100
            fresh = chat(client, "someone")
            assert fresh.headers["x-sluice-target"] == "green"  # new requests: the new deployment
            rest = [line for line in lines if line.startswith("data:")]
        assert rest[-1] == "data: [DONE]"
        words = "".join(_content(line) for line in [first, *rest[:-1]])
        assert words.split() == ["one", "two", "three", "four"]  # the whole answer, after the switch
        assert sum(1 for line in rest[:-1] if _content(line).strip()) >= 2  # words still arrived after the switch
        request_id = stream.headers["x-request-id"]

        async def record() -> object:
            assert gw.state.engine is not None
            return await request_log.get(gw.state.engine, request_id)

        logged = wait_for(lambda: asyncio.run(record()), what="the stream's log row")
        assert (logged.target, logged.route_role, logged.error_class) == ("blue", "stable", None)  # type: ignore[attr-defined]


def _content(line: str) -> str:
    payload = orjson.loads(line.removeprefix("data: "))
    choices = payload.get("choices") or [{}]
    return choices[0].get("delta", {}).get("content") or ""


def test_a_change_through_one_gateway_is_applied_by_another_without_restart(
        upstream: tuple[OpenAIUpstream, str], database_url: str) -> None:  # noqa: F811
    _, url = upstream
    config = rollout_config(url, database_url)
    with run_gateway(config) as a, run_gateway(config) as b, httpx.Client(timeout=10) as client:
        assert chat(httpx.Client(base_url=b.url), "u").headers["x-sluice-target"] == "blue"
        response = client.post(f"{a.url}/admin/deployments/m/set-weight", json={"weight": 100, "reason": "r"},
                               headers={"x-sluice-actor": "carol"})
        assert response.status_code == 200, response.text
        seen = wait_for(lambda: client.get(f"{b.url}/admin/deployments/m").json()["version"] == 1 or None,
                        timeout_s=5, what="replica b to pick up version 1")
        assert seen
        with httpx.Client(base_url=b.url) as on_b:
            assert {chat(on_b, f"u{i}").headers["x-sluice-target"] for i in range(20)} == {"green"}
        history = client.get(f"{b.url}/admin/deployments/m/history").json()["data"]
        assert [(e["actor"], e["action"]) for e in history] == [("carol", "set-weight")]
        # and back the other way: b changes, a follows
        assert client.post(f"{b.url}/admin/deployments/m/rollback", json={}).status_code == 200
        wait_for(lambda: client.get(f"{a.url}/admin/deployments/m").json()["candidate_weight"] == 0 or None,
                 timeout_s=5, what="replica a to pick up the rollback")
        with httpx.Client(base_url=a.url) as on_a:
            assert {chat(on_a, f"u{i}").headers["x-sluice-target"] for i in range(20)} == {"blue"}


@pytest.mark.parametrize("weight", [0])
def test_header_override_pins_a_side(upstream: tuple[OpenAIUpstream, str], tmp_path: Path, weight: float) -> None:
    _, url = upstream
    with run_gateway(rollout_config(url, f"sqlite:///{tmp_path / 's.db'}", weight=weight)) as gw, \
            httpx.Client(base_url=gw.url) as client:
        assert chat(client, "u", **{"x-sluice-route": "candidate"}).headers["x-sluice-target"] == "green"
        assert chat(client, "u").headers["x-sluice-target"] == "blue"
