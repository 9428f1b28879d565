"""Per-request telemetry: stream timings, Prometheus series, GenAI spans, and the durable log row."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from sluice.config import TracingConfig
from sluice.records import RequestRecord
from sluice.telemetry.tracing import Tracing
from tests.support.gateway import RunningGateway, records, run_gateway, upstream_config
from tests.support.openai_server import OpenAIUpstream

USER = [{"role": "user", "content": "one two three four five"}]


def _samples(gw: RunningGateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(gw.url + "/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _records(db: Path) -> list[RequestRecord]:
    return records(db)


def test_stream_record_has_vllm_timings_and_upstream_usage(upstream: tuple[OpenAIUpstream, str],
                                                           tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with run_gateway(upstream_config(upstream[1], db)) as gw:
        list(gw.client().chat.completions.create(model="m", messages=USER, stream=True,
                                                 extra_headers={"x-request-id": "timed"}))
    (record,) = [r for r in _records(db) if r.client_request_id == "timed"]
    assert record.completion_tokens == 5 and record.prompt_tokens == 5
    assert record.tokens_estimated is False
    assert record.status_code == 200 and record.error_class is None
    assert record.ttft_s is not None and 0 < record.ttft_s <= record.e2e_s
    assert len(record.itl_s) == 4  # five output chunks -> four gaps
    assert record.tpot_s == pytest.approx((record.e2e_s - record.ttft_s) / 4)
    assert record.overhead_s == pytest.approx(record.e2e_s - record.upstream_s - record.queue_s, abs=1e-9)
    assert record.target == "up" and record.upstream_model == "up-model" and record.backend_type == "openai"
    assert record.response_body == "one two three four five"
    assert record.finish_reason == "stop"


def test_metrics_count_requests_tokens_errors_and_latency(gateway: RunningGateway,
                                                         upstream: tuple[OpenAIUpstream, str]) -> None:
    client = gateway.client()
    list(client.chat.completions.create(model="m", messages=USER, stream=True))
    client.chat.completions.create(model="m", messages=USER)
    upstream[0].fault, upstream[0].fault_times = "http_500", 1
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=USER)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="ghost", messages=USER)
    samples = _samples(gateway)
    mt = (("model", "m"), ("target", "up"))
    assert samples[("sluice_time_to_first_token_seconds_count", mt)] == 1
    assert samples[("sluice_inter_token_latency_seconds_count", mt)] == 4
    assert samples[("sluice_e2e_request_latency_seconds_count", mt)] == 3
    assert samples[("sluice_completion_tokens_total", mt)] == 10
    assert samples[("sluice_requests_total", (("endpoint", "chat"), ("model", "m"), ("status_class", "2xx")))] == 2
    assert samples[("sluice_requests_total", (("endpoint", "chat"), ("model", "m"), ("status_class", "5xx")))] == 1
    assert samples[("sluice_request_errors_total", (("error_class", "5xx"), ("model", "m")))] == 1
    assert samples[("sluice_request_errors_total", (("error_class", "4xx"), ("model", "_unrouted")))] == 1
    assert samples[("sluice_requests_in_flight", (("model", "m"),))] == 0


def test_spans_follow_genai_conventions(upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing(TracingConfig(exporter="memory"), exporter=exporter)
    fake, url = upstream
    with run_gateway(upstream_config(url, tmp_path / "db.sqlite"), tracing=tracing) as gw:
        reply = gw.client().chat.completions.with_raw_response.create(
            model="m", messages=USER, max_tokens=3, temperature=0.5, extra_headers={"x-request-id": "traced"})
    (span,) = exporter.get_finished_spans()
    assert span.name == "chat m"
    attrs = span.attributes or {}
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "m"
    assert attrs["gen_ai.response.model"] == "up-model"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.max_tokens"] == 3
    assert attrs["gen_ai.request.temperature"] == 0.5
    assert attrs["gen_ai.usage.output_tokens"] == 3
    assert attrs["gen_ai.usage.input_tokens"] == 5
    assert attrs["sluice.request_id"] == reply.headers["x-request-id"]
    assert attrs["sluice.client_request_id"] == "traced"
    assert "traceparent" in fake.requests[-1].headers  # the upstream joins the trace


def test_tracing_off_builds_no_spans(gateway: RunningGateway) -> None:
    assert gateway.state.recorder.tracing.enabled is False
    gateway.client().chat.completions.create(model="m", messages=USER)


def test_client_disconnect_mid_stream_is_recorded(tmp_path: Path) -> None:
    from tests.support.openai_server import make_openai_upstream
    from tests.support.servers import serve_app

    db = tmp_path / "log.db"
    fake = make_openai_upstream(models=["up-model"], token_delay_s=0.2)
    with (serve_app(fake) as url, run_gateway(upstream_config(url, db)) as gw,
          httpx.stream("POST", gw.url + "/v1/chat/completions", headers={"x-request-id": "leaver"},
                       json={"model": "m", "messages": USER, "stream": True}) as response):
        for line in response.iter_lines():
            if "one" in line:
                break  # leave after the first word
    (record,) = [r for r in _records(db) if r.client_request_id == "leaver"]
    assert record.error_class == "client_disconnect"
    assert record.response_body is not None and record.response_body.startswith("one")


def test_queue_time_recorded_when_backend_is_full(tmp_path: Path) -> None:
    from tests.support.openai_server import make_openai_upstream
    from tests.support.servers import serve_app

    db = tmp_path / "log.db"
    fake = make_openai_upstream(models=["up-model"], token_delay_s=0.05)
    with serve_app(fake) as url:
        config = upstream_config(url, db)
        config["backends"]["up"]["max_concurrency"] = 1
        with run_gateway(config) as gw:
            barrier = threading.Barrier(3)

            def call(i: int) -> None:
                barrier.wait()
                gw.client().chat.completions.create(model="m", messages=USER,
                                                    extra_headers={"x-request-id": f"q{i}"})

            threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    records = [r for r in _records(db) if (r.client_request_id or "").startswith("q")]
    assert len(records) == 3
    waited = sorted(r.queue_s for r in records)
    assert waited[0] == 0.0 and waited[2] > 0  # with one slot, at least one request queued
    assert all(r.overhead_s == pytest.approx(r.e2e_s - r.upstream_s - r.queue_s, abs=1e-9) for r in records)


def test_bad_requests_are_logged_too(upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with run_gateway(upstream_config(upstream[1], db)) as gw:
        httpx.post(gw.url + "/v1/chat/completions", content=b"{oops", headers={"x-request-id": "broken"})
    (record,) = [r for r in _records(db) if r.client_request_id == "broken"]
    assert record.status_code == 400 and record.error_class == "4xx"
    assert record.request_body == "{oops"


def test_gateway_logs_to_postgres_as_to_sqlite(upstream: tuple[OpenAIUpstream, str], database_url: str,
                                               tmp_path: Path) -> None:
    from sluice.store import create_engine, request_log

    config = upstream_config(upstream[1], tmp_path / "unused.db")
    config["store"]["url"] = database_url
    with run_gateway(config) as gw:
        client = gw.client()
        for i in range(5):
            list(client.chat.completions.create(model="m", messages=USER, stream=True,
                                                extra_headers={"x-request-id": f"pg-{i}"}))

    async def read() -> list[RequestRecord]:
        engine = create_engine(database_url)
        try:
            return await request_log.recent(engine, limit=100)
        finally:
            await engine.dispose()

    records = {r.client_request_id: r for r in asyncio.run(read())}
    assert {f"pg-{i}" for i in range(5)} <= set(records)
    assert all(records[f"pg-{i}"].completion_tokens == 5 and len(records[f"pg-{i}"].itl_s) == 4 for i in range(5))


def test_tokens_are_counted_with_a_real_tokenizer_when_upstream_reports_no_usage(
        upstream: tuple[OpenAIUpstream, str], tmp_path: Path) -> None:
    from sluice.cost import count_text_tokens

    fake, url = upstream
    fake.fault = "no_usage"
    db = tmp_path / "log.db"
    with run_gateway(upstream_config(url, db)) as gw:
        chunks = list(gw.client().chat.completions.create(
            model="m", messages=USER, stream=True, stream_options={"include_usage": True},
            extra_headers={"x-request-id": "counted"}))
        whole = gw.client().chat.completions.create(model="m", messages=USER,
                                                    extra_headers={"x-request-id": "counted-whole"})
    expected = count_text_tokens("one two three four five", "up-model")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == expected  # estimated usage
    assert whole.usage is None  # a whole answer is relayed as the upstream sent it
    records = {r.client_request_id: r for r in _records(db)}
    for client_id in ("counted", "counted-whole"):
        assert records[client_id].tokens_estimated is True
        assert records[client_id].completion_tokens == expected
        assert records[client_id].prompt_tokens and records[client_id].prompt_tokens > 5
    assert records["counted"].tpot_s == pytest.approx((records["counted"].e2e_s - records["counted"].ttft_s)
                                                      / (expected - 1))


def test_a_client_chosen_request_id_never_displaces_another_requests_row(upstream: tuple[OpenAIUpstream, str],
                                                                        tmp_path: Path) -> None:
    # The probe: a caller sends another request's gateway id, or an id some other caller sends too.
    db = tmp_path / "log.db"
    with run_gateway(upstream_config(upstream[1], db)) as gw:
        client = gw.client()
        first = client.chat.completions.with_raw_response.create(model="m", messages=USER)
        taken = first.headers["x-request-id"]
        client_ids = [taken, "dup", "dup"]
        replies = [client.chat.completions.with_raw_response.create(
            model="m", messages=USER, extra_headers={"x-request-id": client_id}) for client_id in client_ids]
        writer = gw.state.log_writer
    assert "x-client-request-id" not in first.headers
    assert [reply.headers["x-client-request-id"] for reply in replies] == client_ids  # echoed back
    gateway_ids = [taken] + [reply.headers["x-request-id"] for reply in replies]
    assert len(set(gateway_ids)) == 4  # the gateway's own id, whatever the client sent
    records = _records(db)
    assert sorted(r.request_id for r in records) == sorted(gateway_ids)
    by_id = {r.request_id: r.client_request_id for r in records}
    assert [by_id[gateway_id] for gateway_id in gateway_ids] == [None, *client_ids]
    assert writer is not None and writer.rows_dropped == 0


def test_the_user_field_is_stored_redacted_in_redacted_mode(upstream: tuple[OpenAIUpstream, str],
                                                           tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with run_gateway(upstream_config(upstream[1], db, store={"log_bodies": "redacted"})) as gw:
        reply = gw.client().chat.completions.with_raw_response.create(model="m", messages=USER,
                                                                       user="john.doe@example.com")
    (record,) = [r for r in _records(db) if r.request_id == reply.headers["x-request-id"]]
    assert record.user == "[EMAIL]"
