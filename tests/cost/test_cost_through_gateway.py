"""Every request gets a cost: response header, the stream's final usage chunk (read with the openai SDK), the log
row and Prometheus — against the loopback OpenAI upstream, the Anthropic one and the in-process simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sluice.records import RequestRecord
from tests.support.anthropic_server import API_KEY, CACHE_READ_TOKENS, CACHE_WRITE_TOKENS, INPUT_TOKENS, AnthropicServer
from tests.support.gateway import RunningGateway, run_gateway, upstream_config
from tests.support.gateway import records as log_rows
from tests.support.openai_server import OpenAIUpstream, make_openai_upstream
from tests.support.servers import serve_app

MINI_IN, MINI_OUT = 0.15, 0.60  # prices.yaml: gpt-4o-mini, USD per 1M tokens
HAIKU_IN, HAIKU_CACHED, HAIKU_WRITE, HAIKU_OUT = 0.80, 0.08, 1.00, 4.00  # claude-3-5-haiku
USER = [{"role": "user", "content": "one two three four five"}]  # the fake upstream: 5 tokens in, 5 out


def mini_cost(prompt: int, completion: int) -> float:
    return (prompt * MINI_IN + completion * MINI_OUT) / 1e6


def records(db: Path) -> dict[str, RequestRecord]:
    """Log rows by the client's `x-request-id` (the gateway's own id where the client sent none)."""
    return {record.client_request_id or record.request_id: record for record in log_rows(db)}


def samples(gw: RunningGateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(gw.url + "/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def mini_upstream() -> Any:
    app = make_openai_upstream(models=["gpt-4o-mini", "text-embedding-3-small"])
    with serve_app(app) as url:
        yield app, url


def priced_config(url: str, db: Path, **overrides: Any) -> dict[str, Any]:
    models = {"mini": {"targets": [{"backend": "up", "model": "gpt-4o-mini"}]},
              "local": {"targets": [{"backend": "up", "model": "our-finetune"}]},
              "embed": {"targets": [{"backend": "up", "model": "text-embedding-3-small"}]}}
    return upstream_config(url, db, models=models, **overrides)


def test_a_whole_answer_carries_its_cost_in_a_header_and_on_the_log_row(
        mini_upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with run_gateway(priced_config(mini_upstream[1], db)) as gw:
        raw = gw.client().chat.completions.with_raw_response.create(
            model="mini", messages=USER, max_tokens=3, extra_headers={"x-request-id": "whole"})
        answer = raw.parse()
        assert answer.usage is not None and (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (5, 3)
        assert float(raw.headers["x-sluice-cost-usd"]) == pytest.approx(mini_cost(5, 3), abs=1e-10)
        metrics = samples(gw)
    assert metrics[("sluice_cost_usd_total", (("key", ""), ("model", "mini"), ("team", "")))] == pytest.approx(
        mini_cost(5, 3))
    assert metrics[("sluice_cost_tokens_total", (("key", ""), ("model", "mini"), ("team", ""),
                                                 ("type", "completion")))] == 3
    assert records(db)["whole"].cost_usd == pytest.approx(mini_cost(5, 3))


def test_a_stream_reports_its_cost_in_the_final_usage_chunk(mini_upstream: tuple[OpenAIUpstream, str],
                                                            tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with run_gateway(priced_config(mini_upstream[1], db)) as gw:
        chunks = list(gw.client().chat.completions.create(
            model="mini", messages=USER, stream=True, stream_options={"include_usage": True},
            extra_headers={"x-request-id": "streamed"}))
        plain = list(gw.client().chat.completions.create(model="mini", messages=USER, stream=True,
                                                         extra_headers={"x-request-id": "no-usage-asked"}))
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    assert usage.cost_usd == pytest.approx(mini_cost(5, 5))  # type: ignore[attr-defined]  # SDK keeps extra fields
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert all(chunk.usage is None for chunk in plain)  # not asked: no usage chunk, cost only in the log
    rows = records(db)
    assert rows["streamed"].cost_usd == pytest.approx(mini_cost(5, 5))
    assert rows["no-usage-asked"].cost_usd == pytest.approx(mini_cost(5, 5))


def test_the_streamed_figure_is_the_logged_figure_and_counted_once(mini_upstream: tuple[OpenAIUpstream, str],
                                                                   tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with run_gateway(priced_config(mini_upstream[1], db)) as gw:
        for index in range(3):
            list(gw.client().chat.completions.create(model="mini", messages=USER, stream=True,
                                                     stream_options={"include_usage": True},
                                                     extra_headers={"x-request-id": f"s{index}"}))
        metrics = samples(gw)
    assert metrics[("sluice_cost_usd_total", (("key", ""), ("model", "mini"), ("team", "")))] == pytest.approx(
        3 * mini_cost(5, 5))
    assert sum(row.cost_usd or 0 for row in records(db).values()) == pytest.approx(3 * mini_cost(5, 5))


def test_without_upstream_usage_the_cost_uses_tokenizer_counts(mini_upstream: tuple[OpenAIUpstream, str],
                                                               tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    config = priced_config(mini_upstream[1], db, pricing={"targets": {"up:fault/no_usage": {
        "input_usd_per_1m": MINI_IN, "output_usd_per_1m": MINI_OUT}}})  # the upstream never reports usage
    config["models"]["silent"] = {"targets": [{"backend": "up", "model": "fault/no_usage"}]}
    with run_gateway(config) as gw:
        chunks = list(gw.client().chat.completions.create(
            model="silent", messages=USER, stream=True, stream_options={"include_usage": True},
            extra_headers={"x-request-id": "counted"}))
    usage = chunks[-1].usage
    assert usage is not None
    row = records(db)["counted"]
    assert row.tokens_estimated is True
    expected = mini_cost(row.prompt_tokens or 0, row.completion_tokens or 0)
    assert expected > 0
    assert usage.cost_usd == pytest.approx(expected)  # type: ignore[attr-defined]
    assert row.cost_usd == pytest.approx(expected)


def test_an_unpriced_target_gets_no_header_and_a_null_cost(mini_upstream: tuple[OpenAIUpstream, str],
                                                           tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with run_gateway(priced_config(mini_upstream[1], db)) as gw:
        raw = gw.client().chat.completions.with_raw_response.create(model="local", messages=USER,
                                                                    extra_headers={"x-request-id": "free"})
        assert "x-sluice-cost-usd" not in raw.headers
        chunks = list(gw.client().chat.completions.create(model="local", messages=USER, stream=True,
                                                          stream_options={"include_usage": True}))
        assert chunks[-1].usage is not None and "cost_usd" not in (chunks[-1].usage.model_extra or {})
        metrics = samples(gw)
    assert records(db)["free"].cost_usd is None
    assert metrics[("sluice_cost_unpriced_requests_total", (("key", ""), ("model", "local"), ("team", "")))] == 2


def test_a_config_override_prices_a_model_the_catalog_does_not_know(mini_upstream: tuple[OpenAIUpstream, str],
                                                                    tmp_path: Path) -> None:
    pricing = {"models": {"our-finetune": {"input_usd_per_1m": 1.0, "output_usd_per_1m": 3.0}}}
    with run_gateway(priced_config(mini_upstream[1], tmp_path / "log.db", pricing=pricing)) as gw:
        raw = gw.client().chat.completions.with_raw_response.create(model="local", messages=USER)
    assert float(raw.headers["x-sluice-cost-usd"]) == pytest.approx((5 * 1.0 + 5 * 3.0) / 1e6, abs=1e-10)


def test_embeddings_are_priced_by_their_input_tokens(mini_upstream: tuple[OpenAIUpstream, str],
                                                     tmp_path: Path) -> None:
    with run_gateway(priced_config(mini_upstream[1], tmp_path / "log.db")) as gw:
        raw = gw.client().embeddings.with_raw_response.create(model="embed", input="alpha beta gamma delta")
    assert float(raw.headers["x-sluice-cost-usd"]) == pytest.approx(4 * 0.02 / 1e6, abs=1e-10)


def test_pricing_can_be_switched_off(mini_upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with run_gateway(priced_config(mini_upstream[1], db, pricing={"enabled": False})) as gw:
        raw = gw.client().chat.completions.with_raw_response.create(model="mini", messages=USER,
                                                                    extra_headers={"x-request-id": "off"})
        assert "x-sluice-cost-usd" not in raw.headers
        assert "sluice_cost_usd" not in httpx.get(gw.url + "/metrics").text
    assert records(db)["off"].cost_usd is None


def test_anthropic_cache_reads_and_writes_flow_into_usage_and_the_price(tmp_path: Path) -> None:
    upstream = AnthropicServer()
    db = tmp_path / "log.db"
    with serve_app(upstream.app) as base_url:
        config = {"store": {"url": f"sqlite:///{db}", "flush_interval_s": 0.05},
                  "backends": {"claude": {"type": "anthropic", "base_url": base_url, "api_key": API_KEY}},
                  "models": {"haiku": {"targets": [{"backend": "claude", "model": "claude-3-5-haiku-latest"}]}}}
        with run_gateway(config) as gw:
            raw = gw.client().chat.completions.with_raw_response.create(
                model="haiku", messages=[{"role": "user", "content": "hello there"}], max_tokens=50,
                extra_headers={"x-request-id": "claude"})
            answer = raw.parse()
            chunks = list(gw.client().chat.completions.create(
                model="haiku", messages=[{"role": "user", "content": "hello there"}], max_tokens=50, stream=True,
                stream_options={"include_usage": True}, extra_headers={"x-request-id": "claude-stream"}))
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == INPUT_TOKENS + CACHE_READ_TOKENS + CACHE_WRITE_TOKENS
    assert answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == CACHE_READ_TOKENS
    output = answer.usage.completion_tokens
    expected = (INPUT_TOKENS * HAIKU_IN + CACHE_READ_TOKENS * HAIKU_CACHED + CACHE_WRITE_TOKENS * HAIKU_WRITE
                + output * HAIKU_OUT) / 1e6
    assert float(raw.headers["x-sluice-cost-usd"]) == pytest.approx(expected, abs=1e-10)
    streamed = chunks[-1].usage
    assert streamed is not None and streamed.completion_tokens == output
    assert streamed.cost_usd == pytest.approx(expected)  # type: ignore[attr-defined]
    rows = records(db)
    assert rows["claude"].cached_tokens == CACHE_READ_TOKENS
    assert rows["claude"].cost_usd == pytest.approx(expected)
    assert rows["claude-stream"].cost_usd == pytest.approx(expected)


def test_a_cache_hit_costs_nothing(mini_upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with run_gateway(priced_config(mini_upstream[1], db)) as gw:
        client = gw.client()
        first = client.chat.completions.with_raw_response.create(model="mini", messages=USER, temperature=0,
                                                                 extra_headers={"x-request-id": "miss"})
        again = client.chat.completions.with_raw_response.create(model="mini", messages=USER, temperature=0,
                                                                 extra_headers={"x-request-id": "hit"})
        replay = list(client.chat.completions.create(model="mini", messages=USER, temperature=0, stream=True,
                                                     stream_options={"include_usage": True},
                                                     extra_headers={"x-request-id": "hit-stream"}))
        metrics = samples(gw)
    assert float(first.headers["x-sluice-cost-usd"]) == pytest.approx(mini_cost(5, 5), abs=1e-10)
    assert again.headers["x-sluice-cost-usd"] == "0.0000000000"
    assert replay[-1].usage is not None and replay[-1].usage.cost_usd == 0.0  # type: ignore[attr-defined]
    rows = records(db)
    assert (rows["hit"].cache_hit, rows["hit"].cost_usd) == ("exact", 0.0)
    assert (rows["hit-stream"].cache_hit, rows["hit-stream"].cost_usd) == ("exact", 0.0)
    assert rows["miss"].cost_usd == pytest.approx(mini_cost(5, 5))
    labels = (("key", ""), ("model", "mini"), ("team", ""))
    assert metrics[("sluice_cost_usd_total", labels)] == pytest.approx(mini_cost(5, 5))  # the miss only
    assert metrics[("sluice_cost_tokens_total", (*labels, ("type", "completion")))] == 5
