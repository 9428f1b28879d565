"""The stage chain through the real gateway: which stages each model gets, rebuilt when a deployment changes,
stage times in a Server-Timing header and a histogram, and a stream left mid-way that releases its slot."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.gateway import RunningGateway, records, run_gateway, upstream_config
from tests.support.openai_server import OpenAIUpstream, make_openai_upstream
from tests.support.polling import wait_for
from tests.support.servers import serve_app

USER = [{"role": "user", "content": "one two three four five"}]
CACHED = {"cache": {"exact": {"enabled": True}}}  # the default: deterministic requests are cached
UNCACHED = {"cache": {"exact": {"enabled": False}}}


def chains(gw: RunningGateway) -> dict[str, dict[str, list[str]]]:
    return httpx.get(gw.url + "/admin/status").json()["chains"]


def test_each_model_gets_only_the_stages_its_config_turns_on(upstream: tuple[OpenAIUpstream, str],
                                                             tmp_path: Path) -> None:
    config = upstream_config(upstream[1], tmp_path / "log.db")
    config["models"] = {"plain": {"targets": [{"backend": "up", "model": "up-model"}], **UNCACHED},
                        "cached": {"targets": [{"backend": "up", "model": "up-model"}], **CACHED},
                        "unchecked": {"targets": [{"backend": "up", "model": "up-model"}], **UNCACHED,
                                      "structured": {"enforce": False}},
                        "auto": {"router": {"easy": "plain", "hard": "cached"}}}
    with run_gateway(config) as gw:
        found = chains(gw)
    assert found["plain"] == {"generate": ["prompt", "route", "admission", "pricing", "structured", "terminal"],
                              "embed": ["route", "admission", "pricing", "terminal"]}
    assert found["unchecked"]["generate"] == ["prompt", "route", "admission", "pricing", "terminal"]
    assert found["cached"]["generate"] == ["prompt", "route", "admission", "pricing", "cache", "structured", "terminal"]
    assert found["cached"]["embed"] == ["route", "admission", "pricing", "terminal"]  # embeddings are not cached
    assert found["auto"]["generate"][:3] == ["prompt", "cost_router", "route"]


def test_a_deployment_change_rebuilds_the_chain_without_a_restart(upstream: tuple[OpenAIUpstream, str],
                                                                  tmp_path: Path) -> None:
    fake, url = upstream
    with run_gateway(upstream_config(url, tmp_path / "log.db", pricing={"enabled": False}, cache={
            "exact": {"enabled": False}})) as gw:
        client = gw.client()
        client.chat.completions.create(model="m", messages=USER)  # the chain is built (and kept) here
        assert chains(gw)["m"]["generate"] == ["prompt", "route", "admission", "structured", "terminal"]
        response = httpx.post(gw.url + "/admin/deployments/m/set-shadow",
                              json={"shadow": [{"backend": "up", "model": "up-model"}], "sample_rate": 1})
        assert response.status_code == 200, response.text
        assert chains(gw)["m"]["generate"] == ["prompt", "route", "admission", "shadow", "structured", "terminal"]
        fake.reset()
        client.chat.completions.create(model="m", messages=USER)
        wait_for(lambda: [r for r in fake.requests if r.headers.get("x-sluice-shadow") == "1"],
                 what="the mirrored call")
        response = httpx.post(gw.url + "/admin/deployments/m/set-shadow", json={"shadow": []})
        assert response.status_code == 200, response.text
        assert chains(gw)["m"]["generate"] == ["prompt", "route", "admission", "structured", "terminal"]


def test_stage_times_in_server_timing_when_asked_and_in_the_stage_histogram(upstream: tuple[OpenAIUpstream, str],
                                                                            tmp_path: Path) -> None:
    with run_gateway(upstream_config(upstream[1], tmp_path / "log.db", models={
            "m": {"targets": [{"backend": "up", "model": "up-model"}], **CACHED}})) as gw:
        body = {"model": "m", "messages": USER, "temperature": 0}
        plain = httpx.post(gw.url + "/v1/chat/completions", json=body)
        assert plain.status_code == 200 and "server-timing" not in plain.headers
        timed = httpx.post(gw.url + "/v1/chat/completions", json=body, headers={"x-sluice-debug": "timing"})
        assert timed.status_code == 200 and timed.headers["x-sluice-cache"] == "hit-exact"
        names = [part.split(";")[0] for part in timed.headers["server-timing"].split(", ")]
        # pricing: at the end
        assert names == ["prompt", "route", "admission", "cache", "pricing", "upstream", "overhead"]
        streamed = httpx.post(gw.url + "/v1/chat/completions", json={**body, "stream": True, "temperature": 1},
                              headers={"x-sluice-debug": "timing"})
        assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
        assert "cache;dur=" in streamed.headers["server-timing"]

        def counts() -> dict[str, float] | None:
            found = {sample.labels["stage"]: sample.value
                     for family in text_string_to_metric_families(gw.metrics_text())
                     for sample in family.samples if sample.name == "sluice_stage_seconds_count"}
            return found if found.get("route") == 3 else None

        found = wait_for(counts, what="three requests in the stage histogram")
    assert found == {"prompt": 3, "route": 3, "admission": 3, "pricing": 3, "cache": 3,
                     "structured": 2}  # the hit stops at cache


def test_a_client_leaving_a_wrapped_stream_releases_the_backend_slot(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    fake = make_openai_upstream(models=["up-model"], token_delay_s=0.2)
    with serve_app(fake) as url:
        config = upstream_config(url, db, models={"m": {"targets": [{"backend": "up", "model": "up-model"}],
                                                        **CACHED}})
        config["backends"]["up"]["max_concurrency"] = 1  # a slot kept by the stream that was left blocks the next
        with run_gateway(config) as gw:
            body = {"model": "m", "messages": USER, "stream": True, "temperature": 0}  # cached: a capturing stage
            with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body,
                              headers={"x-request-id": "leaver"}) as response:
                assert response.headers["x-sluice-cache"] == "miss"
                for line in response.iter_lines():
                    if "one" in line:
                        break  # leave after the first word
            again = httpx.post(gw.url + "/v1/chat/completions", json={**body, "stream": False},
                               headers={"x-request-id": "next"}, timeout=10)
            assert again.status_code == 200
            assert again.headers["x-sluice-cache"] == "miss"  # the partial stream was not stored
    by_id = {r.client_request_id: r for r in records(db)}
    assert by_id["leaver"].error_class == "client_disconnect"
    assert by_id["next"].status_code == 200
