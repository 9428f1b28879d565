"""`sluice_stage_seconds`: counts kept by hand, exported as a Prometheus histogram that parsers accept."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sluice.backends import Completion, Usage, Whole
from sluice.telemetry.stage_metrics import STAGE_BUCKETS_S, StageMetrics


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_buckets_are_cumulative_inclusive_of_their_bound_and_end_in_inf() -> None:
    registry = CollectorRegistry()
    stages = StageMetrics(registry)
    stages.observe({"route": 0.00001, "cache": 0.002})  # 10 µs: exactly a bound, counted in it
    stages.observe({"route": 0.00002})
    stages.observe({"route": 5.0})  # past the last bound: only +Inf
    found = samples(registry)
    assert found[("sluice_stage_seconds_bucket", (("le", "5e-06"), ("stage", "route")))] == 0
    assert found[("sluice_stage_seconds_bucket", (("le", "1e-05"), ("stage", "route")))] == 1
    assert found[("sluice_stage_seconds_bucket", (("le", "2.5e-05"), ("stage", "route")))] == 2
    assert found[("sluice_stage_seconds_bucket", (("le", "1.0"), ("stage", "route")))] == 2
    assert found[("sluice_stage_seconds_bucket", (("le", "+Inf"), ("stage", "route")))] == 3
    assert found[("sluice_stage_seconds_count", (("stage", "route"),))] == 3
    assert abs(found[("sluice_stage_seconds_sum", (("stage", "route"),))] - 5.00003) < 1e-12
    assert found[("sluice_stage_seconds_count", (("stage", "cache"),))] == 1
    assert len([key for key in found if key[0] == "sluice_stage_seconds_bucket" and ("stage", "cache") in key[1]]) \
        == len(STAGE_BUCKETS_S) + 1


def test_no_series_before_a_stage_is_observed() -> None:
    registry = CollectorRegistry()
    StageMetrics(registry)
    assert not [key for key in samples(registry) if key[0].startswith("sluice_stage_seconds")]


def test_a_whole_answer_iterates_as_one_chunk_once() -> None:
    answer = Completion({"choices": []}, "hi", Usage(1, 1), "stop")

    async def read(reply: Whole) -> list[str]:
        return [chunk.text async for chunk in reply]

    reply = Whole(answer)
    assert asyncio.run(read(reply)) == ["hi"]
    assert asyncio.run(read(reply)) == []  # read once, like any generator
    closed = Whole(answer)
    asyncio.run(closed.aclose())
    assert asyncio.run(read(closed)) == []
