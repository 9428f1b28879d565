"""Shadow pairs in the store: the batched writer, body modes, a full queue, and the report over a known set."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from sluice.rollout import shadow_store
from sluice.rollout.shadow_metrics import ShadowMetrics
from sluice.rollout.shadow_pair import ShadowPair
from sluice.rollout.shadow_report import load_report, parse_since, summarize
from sluice.rollout.shadow_writer import ShadowPairWriter
from sluice.store import current_revision, head_revision

NOW = 1_750_000_000.0
PII = "write to jane@example.com"


def pair(request_id: str, **overrides: object) -> ShadowPair:
    values: dict[str, object] = dict(
        request_id=request_id, created_at=NOW, model="m", endpoint="chat", primary_target="up",
        primary_model="up-model", shadow_target="shadow-up", shadow_model="big-model", primary_stream=False,
        primary_status=200, shadow_status=200,
    )
    values.update(overrides)
    return ShadowPair(**values)  # type: ignore[arg-type]


def known_set() -> list[ShadowPair]:
    """Five pairs of `m` in the window, one of another model, one of `m` before the window."""
    return [
        pair("p1", primary_e2e_s=0.1, shadow_e2e_s=0.2, primary_ttft_s=0.05, primary_stream=True,
             primary_prompt_tokens=10, primary_completion_tokens=4, shadow_prompt_tokens=10,
             shadow_completion_tokens=6, primary_cost_usd=0.001, shadow_cost_usd=0.003, exact_match=True,
             length_ratio=1.0, similarity=1.0, primary_body="a b c d", shadow_body="a b c d"),
        pair("p2", primary_e2e_s=0.2, shadow_e2e_s=0.4, primary_prompt_tokens=10, primary_completion_tokens=4,
             shadow_prompt_tokens=10, shadow_completion_tokens=2, primary_cost_usd=0.001, exact_match=False,
             length_ratio=3 / 7, similarity=0.5, primary_body="a b c d", shadow_body="a b"),
        pair("p3", primary_e2e_s=0.3, shadow_e2e_s=0.3, primary_prompt_tokens=20, primary_completion_tokens=8,
             shadow_prompt_tokens=20, shadow_completion_tokens=8, primary_cost_usd=0.002, shadow_cost_usd=0.001,
             exact_match=False, length_ratio=1 / 3, similarity=0.0, primary_body="x y", shadow_body="z"),
        pair("p4", primary_e2e_s=0.4, shadow_e2e_s=1.0, shadow_status=504, shadow_error_type="UpstreamTimeout",
             shadow_error="shadow call exceeded shadow.timeout_s (1 s)", primary_body="q"),
        pair("p5", primary_status=502, primary_error_type="UpstreamUnavailable", primary_error="upstream 500",
             shadow_e2e_s=0.2, shadow_body="r"),
        pair("other-model", model="other", primary_e2e_s=9.0, shadow_e2e_s=9.0, exact_match=True,
             similarity=1.0, length_ratio=1.0),
        pair("too-old", created_at=NOW - 7200, primary_e2e_s=9.0, shadow_e2e_s=9.0, exact_match=False,
             similarity=0.0, length_ratio=9.0),
    ]


def writer_for(engine: AsyncEngine, **kwargs: object) -> tuple[ShadowPairWriter, ShadowMetrics]:
    metrics = ShadowMetrics(CollectorRegistry())
    return ShadowPairWriter(engine, metrics=metrics, flush_interval_s=0.05, **kwargs), metrics  # type: ignore[arg-type]


async def test_migrations_create_an_empty_shadow_pairs_table(database_url: str, engine: AsyncEngine) -> None:
    assert current_revision(database_url) == head_revision()
    assert await shadow_store.count(engine) == 0


async def test_pairs_round_trip_through_the_writer_with_redacted_bodies_by_default(engine: AsyncEngine) -> None:
    writer, metrics = writer_for(engine)
    await writer.start()
    original = pair("pii", request_body=f'{{"content": "{PII}"}}', primary_body=PII, shadow_body=PII,
                    shadow_error_type="UpstreamRejected", shadow_error=f"rejected: {PII}", exact_match=None,
                    tokens_estimated=True)
    writer.submit(original)
    await writer.close(timeout_s=10)
    (stored,) = await shadow_store.recent(engine, model="m")
    assert stored.primary_body == stored.shadow_body == "write to [EMAIL]"
    assert stored.request_body == '{"content": "write to [EMAIL]"}'
    assert stored.shadow_error == "rejected: write to [EMAIL]"
    assert stored.tokens_estimated is True and stored.exact_match is None and stored.primary_stream is False
    assert writer.pairs_written == 1 and metrics.pairs_written._value.get() == 1  # type: ignore[attr-defined]


async def test_full_and_none_body_modes(engine: AsyncEngine) -> None:
    for mode, request_id in (("full", "kept"), ("none", "dropped")):
        writer, _ = writer_for(engine, log_bodies=mode)
        writer.submit(pair(request_id, primary_body=PII, shadow_body=PII, request_body="{}"))
        await writer.close(timeout_s=10)
    stored = {p.request_id: p for p in await shadow_store.recent(engine)}
    assert stored["kept"].primary_body == PII and stored["kept"].request_body == "{}"
    assert (stored["dropped"].primary_body, stored["dropped"].shadow_body, stored["dropped"].request_body) == (
        None, None, None)


async def test_a_full_queue_drops_new_pairs_and_counts_them(engine: AsyncEngine) -> None:
    writer, metrics = writer_for(engine, queue_size=3)
    for index in range(5):  # the drainer has not started: the queue holds three
        writer.submit(pair(f"q{index}"))
    assert writer.pairs_dropped == 2 and metrics.pairs_dropped._value.get() == 2  # type: ignore[attr-defined]
    await writer.close(timeout_s=10)
    assert await shadow_store.count(engine) == 3
    writer.submit(pair("after-close"))
    assert writer.pairs_dropped == 3


async def test_many_pairs_are_written_in_batches(engine: AsyncEngine) -> None:
    writer, _ = writer_for(engine, batch_size=50, queue_size=1000)
    await writer.start()
    for index in range(230):
        writer.submit(pair(f"b{index:03d}", created_at=NOW + index))
    await writer.close(timeout_s=10)
    assert writer.pairs_written == 230 and await shadow_store.count(engine, model="m") == 230
    newest = await shadow_store.recent(engine, model="m", limit=2, bodies=False)
    assert [p.request_id for p in newest] == ["b229", "b228"]


def check_known_report(report) -> None:  # type: ignore[no-untyped-def]
    assert (report.pairs, report.compared, report.shadow_errors, report.primary_errors) == (5, 3, 1, 1)
    assert report.shadow_error_rate == pytest.approx(0.2)
    assert report.shadow_errors_by_type == {"UpstreamTimeout": 1}
    # numpy linear percentiles over the three compared pairs
    assert report.primary_e2e.p50_s == pytest.approx(0.2) and report.primary_e2e.p99_s == pytest.approx(0.298)
    assert report.shadow_e2e.p50_s == pytest.approx(0.3) and report.shadow_e2e.p99_s == pytest.approx(0.398)
    assert report.primary_e2e.mean_s == pytest.approx(0.2) and report.shadow_e2e.mean_s == pytest.approx(0.3)
    assert report.primary_ttft.count == 1 and report.primary_ttft.p50_s == pytest.approx(0.05)
    assert report.primary_prompt_tokens_mean == pytest.approx(40 / 3)
    assert report.primary_completion_tokens_mean == pytest.approx(16 / 3)
    assert report.shadow_completion_tokens_mean == pytest.approx(16 / 3)
    assert report.completion_tokens_delta_mean == pytest.approx(0.0)  # +2, -2, 0
    assert report.priced == 2  # p2's shadow has no price
    assert report.primary_cost_usd == pytest.approx(0.003) and report.shadow_cost_usd == pytest.approx(0.004)
    assert report.cost_delta_usd == pytest.approx(0.001)
    assert report.exact_match_rate == pytest.approx(1 / 3)
    assert report.length_ratio_mean == pytest.approx((1 + 3 / 7 + 1 / 3) / 3)
    assert report.similarity_mean == pytest.approx(0.5)
    assert [(w.request_id, w.similarity) for w in report.worst] == [("p3", 0.0), ("p2", 0.5)]


def test_the_report_over_a_known_set_matches_hand_computed_values() -> None:
    in_window = [p for p in known_set() if p.model == "m" and p.created_at >= NOW - 3600]
    report = summarize("m", in_window, since=NOW - 3600)
    check_known_report(report)
    assert (report.worst[0].primary_preview, report.worst[0].shadow_preview) == ("x y", "z")


async def test_the_report_read_from_the_store_matches_the_same_values(engine: AsyncEngine) -> None:
    writer, _ = writer_for(engine, log_bodies="full")
    for item in known_set():
        writer.submit(item)
    await writer.close(timeout_s=10)
    one = await load_report(engine, "m", since=NOW - 3600, worst=1)
    assert [(w.request_id, w.primary_preview, w.shadow_preview) for w in one.worst] == [("p3", "x y", "z")]
    full = await load_report(engine, "m", since=NOW - 3600)
    check_known_report(full)
    everything = await load_report(engine, "m", since=None)
    assert everything.pairs == 6 and everything.worst[0].request_id in {"p3", "too-old"}


def test_an_empty_window_has_no_numbers() -> None:
    report = summarize("m", [])
    assert report.pairs == 0 and report.shadow_error_rate is None and report.primary_e2e.p50_s is None
    assert report.exact_match_rate is None and report.worst == []


def test_since_takes_durations_iso_times_and_unix_seconds() -> None:
    assert parse_since("30m", now=NOW) == NOW - 1800
    assert parse_since("24h", now=NOW) == NOW - 86400
    assert parse_since("2d", now=NOW) == NOW - 172800
    assert parse_since("1750000000", now=NOW) == NOW
    assert parse_since("2025-06-15T15:06:40", now=NOW) == 1_750_000_000.0  # UTC unless it says
    assert parse_since("2025-06-15T17:06:40+02:00", now=NOW) == 1_750_000_000.0
    assert parse_since("all") is None and parse_since(None) is None
    with pytest.raises(ValueError, match="since: expected a duration"):
        parse_since("yesterday")
    assert time.time() - 61 < (parse_since("1m") or 0) < time.time()
