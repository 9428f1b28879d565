"""The engine on a virtual clock: hand-computed timings (exact: every constant is a power of two)."""

from __future__ import annotations

import asyncio

import pytest

from sluice.sim.async_engine import AsyncEngine
from sluice.sim.clock import VirtualClock
from sluice.sim.cost import LinearStepCost
from sluice.sim.engine import EngineCore, EngineRequest
from sluice.sim.scheduler import SchedulerConfig
from sluice.sim.virtual import simulate

OVERHEAD = 2**-8  # 3.9 ms per step
PREFILL = 2**-16  # 15 µs per prompt token
DECODE = 2**-12  # 244 µs per decoding sequence
COST = LinearStepCost(kv_blocks_total=4096, max_model_len=8192, overhead_s=OVERHEAD,
                      prefill_token_s=PREFILL, decode_seq_s=DECODE)


def test_one_request_ttft_is_one_prefill_step_and_tpot_one_decode_step() -> None:
    report = simulate(COST, [EngineRequest("a", prompt_tokens=512, output_tokens=5)])
    timing = report.timing("a")
    prefill_step = OVERHEAD + 512 * PREFILL
    decode_step = OVERHEAD + DECODE
    assert timing.ttft_s == prefill_step
    assert timing.itl_s == (decode_step,) * 4
    assert timing.tpot_s == decode_step
    assert timing.e2e_s == prefill_step + 4 * decode_step
    assert (timing.output_tokens, timing.queue_s, timing.num_preemptions) == (5, 0.0, 0)
    assert report.num_steps == 5


def test_two_overlapping_requests_share_steps() -> None:
    a = EngineRequest("a", prompt_tokens=512, output_tokens=4, arrival_s=0.0)
    b = EngineRequest("b", prompt_tokens=256, output_tokens=3, arrival_s=OVERHEAD)  # arrives during a's prefill
    report = simulate(COST, [a, b])
    step1 = OVERHEAD + 512 * PREFILL  # a's prompt alone
    step2 = OVERHEAD + DECODE + 256 * PREFILL  # a decodes while b's prompt runs
    step3 = OVERHEAD + 2 * DECODE  # both decode
    t1, t2, t3, t4 = step1, step1 + step2, step1 + step2 + step3, step1 + step2 + 2 * step3
    timing_a, timing_b = report.timing("a"), report.timing("b")
    assert timing_a.token_times_s == (t1, t2, t3, t4)
    assert timing_a.ttft_s == step1
    assert timing_a.tpot_s == (t4 - t1) / 3
    assert timing_b.token_times_s == (t2, t3, t4)
    assert timing_b.ttft_s == t2 - OVERHEAD
    assert timing_b.queue_s == step1 - OVERHEAD
    assert timing_b.e2e_s == t4 - OVERHEAD
    assert report.duration_s == t4


def test_output_throughput_rises_with_concurrency_then_saturates_at_max_num_seqs() -> None:
    config = SchedulerConfig(max_num_seqs=8, max_num_batched_tokens=2048)

    def throughput(concurrency: int) -> float:
        requests = [EngineRequest(f"r{i}", prompt_tokens=128, output_tokens=128) for i in range(concurrency)]
        return simulate(COST, requests, config).output_throughput_tok_s

    rising = [throughput(n) for n in (1, 2, 4, 8)]
    assert rising == sorted(rising) and rising[-1] > 5 * rising[0]
    for saturated in (throughput(16), throughput(32)):
        assert saturated == pytest.approx(rising[-1], rel=0.02)


def test_preemption_under_a_small_kv_cache_still_completes_every_request() -> None:
    cost = LinearStepCost(kv_blocks_total=16, max_model_len=256, overhead_s=OVERHEAD, decode_seq_s=DECODE)
    requests = [EngineRequest(f"r{i}", prompt_tokens=64, output_tokens=64) for i in range(4)]
    report = simulate(cost, requests, SchedulerConfig(max_num_seqs=4, max_num_batched_tokens=256))
    assert report.num_preemptions > 0
    assert [t.output_tokens for t in report.requests] == [64] * 4
    assert sum(t.num_preemptions for t in report.requests) == report.num_preemptions


def test_slowdown_scales_every_step() -> None:
    core = EngineCore(COST)
    core.slowdown = 2.0
    core.add_request(EngineRequest("a", prompt_tokens=512, output_tokens=1), now_s=0.0)
    assert core.step(0.0).duration_s == 2 * (OVERHEAD + 512 * PREFILL)


def test_a_max_model_len_the_kv_cache_cannot_hold_is_refused_like_vllm() -> None:
    cost = LinearStepCost(kv_blocks_total=10, max_model_len=4096)
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        EngineCore(cost)
    assert EngineCore(cost, SchedulerConfig(max_model_len=160)).max_model_len == 160


async def test_the_asyncio_engine_on_a_virtual_clock_matches_the_batch_simulation() -> None:
    engine = AsyncEngine(EngineCore(COST), clock=VirtualClock())
    await engine.start()

    async def run(request: EngineRequest) -> tuple[float, ...]:
        return tuple([event.time_s async for event in engine.generate(request)])

    try:
        times = await asyncio.gather(run(EngineRequest("a", 512, 4)), run(EngineRequest("b", 256, 3)))
    finally:
        await engine.stop()
    expected = simulate(COST, [EngineRequest("a", 512, 4), EngineRequest("b", 256, 3)])
    assert times == [expected.timing("a").token_times_s, expected.timing("b").token_times_s]


async def test_leaving_a_stream_early_aborts_the_request_and_frees_its_cache() -> None:
    engine = AsyncEngine(EngineCore(COST), clock=VirtualClock())
    await engine.start()
    try:
        stream = engine.generate(EngineRequest("a", 512, 100))
        async for event in stream:
            if event.index == 2:
                break
        await stream.aclose()
        assert not engine.core.has_work() and engine.core.kv_cache_usage == 0.0
    finally:
        await engine.stop()
