"""The simulator in-process: deterministic text, real token counts, vLLM's context checks, the chunk stream."""

from __future__ import annotations

import asyncio

import pytest

from sluice.cost import count_message_tokens, count_text_tokens
from sluice.sim import (
    ContextLengthExceeded,
    EngineRequest,
    LinearStepCost,
    SchedulerConfig,
    Simulator,
    VirtualClock,
    simulate,
)
from sluice.sim.errors import BadRequest
from sluice.sim.text import TextGenerator
from tests.sim.support import COST, MODEL, chat_call, completion_call, make_simulator


async def collect_stream(call_factory, **kwargs):  # type: ignore[no-untyped-def]
    sim = make_simulator(**kwargs)
    await sim.start()
    try:
        return [chunk async for chunk in sim.stream(call_factory())]
    finally:
        await sim.stop()


def test_every_generated_piece_is_one_real_token_for_each_tokenizer_family() -> None:
    for model in ("llama-3.1-8b", "qwen3-8b", "gpt-4o", "mistral-7b"):
        generator = TextGenerator(model)
        for seed in range(10):
            for length in (1, 2, 9, 64, 333):
                pieces = generator.pieces(seed, length)
                assert len(pieces) == length
                assert count_text_tokens("".join(pieces), model) == length


def test_same_seed_same_text_other_seed_other_text() -> None:
    generator = TextGenerator("llama-3.1-8b")
    assert generator.pieces(7, 100) == generator.pieces(7, 100)
    assert generator.pieces(7, 100) != generator.pieces(8, 100)
    assert generator.pieces(7, 100)[:10] == generator.pieces(7, 10)


async def test_usage_counts_the_real_tokens_of_the_streamed_text() -> None:
    chunks = await collect_stream(lambda: chat_call("Tell me about queues.", max_tokens=57))
    text = "".join(chunk.text for chunk in chunks)
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.completion_tokens == 57 == count_text_tokens(text, "llama-3.1-8b")
    assert usage.prompt_tokens == count_message_tokens([{"role": "user", "content": "Tell me about queues."}],
                                                      "llama-3.1-8b")
    content_chunks = [chunk for chunk in chunks if chunk.has_output]
    assert len(content_chunks) == 57  # one chunk per token, as vLLM streams without speculative decoding
    assert chunks[0].payload["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert content_chunks[-1].finish_reason == "length"


async def test_the_answer_depends_on_the_request_seed_or_else_on_the_prompt() -> None:
    async def text_of(call_factory, seed: int = 0) -> str:  # type: ignore[no-untyped-def]
        return "".join(chunk.text for chunk in await collect_stream(call_factory, seed=seed))

    same = await text_of(lambda: chat_call("hello", max_tokens=30))
    assert same == await text_of(lambda: chat_call("hello", max_tokens=30))
    assert same != await text_of(lambda: chat_call("hello!", max_tokens=30))
    assert same != await text_of(lambda: chat_call("hello", max_tokens=30), seed=1)
    seeded = await text_of(lambda: chat_call("a", max_tokens=30, seed=42))
    assert seeded == await text_of(lambda: chat_call("b", max_tokens=30, seed=42))


async def test_the_timing_is_the_engine_timing() -> None:
    sim = make_simulator()
    await sim.start()
    try:
        call = completion_call("one two three four", max_tokens=6)
        admission = sim.admit(call)
        times = [sim.clock.now() async for chunk in sim.run(admission) if chunk.has_output]
    finally:
        await sim.stop()
    expected = simulate(COST, [EngineRequest("x", admission.answer.prompt_tokens, 6)])
    assert tuple(times) == expected.timing("x").token_times_s


async def test_without_max_tokens_the_answer_stops_on_its_own() -> None:
    chunks = await collect_stream(lambda: chat_call("hi"))
    assert chunks[-2].finish_reason == "stop"
    assert 32 <= chunks[-1].usage.completion_tokens <= 512  # type: ignore[union-attr]


async def test_a_stop_string_ends_the_answer_like_vllm() -> None:
    chunks = await collect_stream(lambda: chat_call("hi", max_tokens=200, stop=["."]))
    text = "".join(chunk.text for chunk in chunks)
    usage = chunks[-1].usage
    assert "." not in text and chunks[-2].finish_reason == "stop"
    assert usage is not None and usage.completion_tokens == count_text_tokens(text, "llama-3.1-8b") + 1


def test_prompt_plus_max_tokens_beyond_max_model_len_is_refused_with_vllms_message() -> None:
    sim = make_simulator(max_model_len=64)
    call = completion_call(" ".join(["word"] * 10), max_tokens=60)
    with pytest.raises(ContextLengthExceeded) as caught:
        sim.admit(call)
    assert caught.value.status_code == 400 and caught.value.param == "max_tokens"
    assert caught.value.message == (
        "'max_tokens' or 'max_completion_tokens' is too large: 60. This model's maximum context length is 64 "
        "tokens and your request has 10 input tokens (60 > 64 - 10). (parameter=max_tokens, value=60)")
    with pytest.raises(ContextLengthExceeded, match="your request has 70 input tokens"):
        sim.admit(completion_call(" ".join(["word"] * 70)))


def test_requests_the_simulator_cannot_honour_are_bad_requests() -> None:
    sim = make_simulator()
    with pytest.raises(BadRequest, match="n=1"):
        sim.admit(chat_call("hi", n=2))
    with pytest.raises(BadRequest, match="one prompt"):
        sim.admit(completion_call(["a", "b"]))  # type: ignore[arg-type]


async def test_preemptions_under_a_full_kv_cache_reach_the_metrics() -> None:
    cost = LinearStepCost(kv_blocks_total=16, max_model_len=256, overhead_s=2**-10, decode_seq_s=2**-16)
    sim = Simulator(cost, SchedulerConfig(max_num_seqs=8, max_num_batched_tokens=256), served_model_name=MODEL,
                    tokenizer_model="llama-3.1-8b", clock=VirtualClock())
    await sim.start()

    async def one(index: int) -> int:
        chunks = [chunk async for chunk in sim.stream(completion_call(f"prompt {index}", max_tokens=100))]
        return chunks[-1].usage.completion_tokens  # type: ignore[union-attr]

    try:
        assert await asyncio.gather(*(one(i) for i in range(4))) == [100] * 4
    finally:
        await sim.stop()
    labels = {"model_name": MODEL, "engine": "0"}
    preemptions = sim.metrics.registry.get_sample_value("vllm:num_preemptions_total", labels)
    assert preemptions == sim.core.num_preemptions_total > 0
