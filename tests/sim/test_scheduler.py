"""The scheduler: continuous batching, max_num_seqs, token budget, chunked prefill, preemption."""

from __future__ import annotations

import pytest

from sluice.sim.kv_cache import KVCacheManager
from sluice.sim.scheduler import Scheduler, SchedulerConfig, SchedulerOutput, SeqStatus, Sequence


def make(num_blocks: int = 1000, **config: int) -> Scheduler:
    settings = {"max_num_seqs": 8, "max_num_batched_tokens": 512, "max_model_len": 4096, **config}
    return Scheduler(SchedulerConfig(**settings), KVCacheManager(num_blocks))  # type: ignore[arg-type]


def chunks(output: SchedulerOutput) -> dict[str, int]:
    return {c.seq.request_id: c.num_tokens for c in output.chunks}


def run_step(scheduler: Scheduler) -> SchedulerOutput:
    output = scheduler.schedule()
    scheduler.update_from_output(output)
    return output


def test_a_new_request_joins_the_running_batch_mid_flight() -> None:
    scheduler = make()
    scheduler.add(Sequence("a", num_prompt_tokens=100, max_output_tokens=10))
    assert chunks(run_step(scheduler)) == {"a": 100}
    assert chunks(run_step(scheduler)) == {"a": 1}
    scheduler.add(Sequence("b", num_prompt_tokens=50, max_output_tokens=10))
    output = run_step(scheduler)
    assert chunks(output) == {"a": 1, "b": 50}
    assert (output.num_decode_seqs, output.num_prefill_tokens) == (1, 50)
    assert chunks(run_step(scheduler)) == {"a": 1, "b": 1}


def test_running_sequences_never_exceed_max_num_seqs() -> None:
    scheduler = make(max_num_seqs=2)
    for name in "abc":
        scheduler.add(Sequence(name, num_prompt_tokens=10, max_output_tokens=3))
    assert chunks(run_step(scheduler)) == {"a": 10, "b": 10}
    assert (scheduler.num_running, scheduler.num_waiting) == (2, 1)
    run_step(scheduler)
    run_step(scheduler)  # a and b finish with their third token
    assert chunks(run_step(scheduler)) == {"c": 10}


def test_the_token_budget_caps_a_step_and_splits_the_last_prompt() -> None:
    scheduler = make(max_num_batched_tokens=64)
    scheduler.add(Sequence("a", num_prompt_tokens=40, max_output_tokens=5))
    scheduler.add(Sequence("b", num_prompt_tokens=40, max_output_tokens=5))
    output = run_step(scheduler)
    assert chunks(output) == {"a": 40, "b": 24}
    assert output.num_scheduled_tokens == 64
    assert chunks(run_step(scheduler)) == {"a": 1, "b": 16}


def test_chunked_prefill_spreads_a_long_prompt_over_steps_and_samples_only_at_the_end() -> None:
    scheduler = make(max_num_batched_tokens=32)
    seq = Sequence("long", num_prompt_tokens=100, max_output_tokens=2)
    scheduler.add(seq)
    sizes = []
    while seq.num_output_tokens == 0:
        sizes.append(chunks(run_step(scheduler))["long"])
    assert sizes == [32, 32, 32, 4]
    assert seq.num_computed_tokens == 100


def test_without_chunked_prefill_a_prompt_waits_for_a_budget_it_fits_in() -> None:
    scheduler = make(max_num_batched_tokens=64, enable_chunked_prefill=False, max_model_len=64)
    scheduler.add(Sequence("a", num_prompt_tokens=40, max_output_tokens=5))
    scheduler.add(Sequence("b", num_prompt_tokens=40, max_output_tokens=5))
    assert chunks(run_step(scheduler)) == {"a": 40}
    assert chunks(run_step(scheduler)) == {"a": 1, "b": 40}


def test_full_kv_cache_preempts_the_newest_sequence_which_later_recomputes_and_finishes() -> None:
    # 4 blocks = 64 slots; each sequence ends at 16 + 30 = 46 tokens (3 blocks): both cannot fit.
    scheduler = make(num_blocks=4)
    a = Sequence("a", num_prompt_tokens=16, max_output_tokens=30)
    b = Sequence("b", num_prompt_tokens=16, max_output_tokens=30)
    scheduler.add(a)
    scheduler.add(b)
    preempted: list[str] = []
    steps = 0
    while scheduler.has_unfinished():
        output = run_step(scheduler)
        preempted += output.preempted
        steps += 1
        assert scheduler.kv_cache.num_used_blocks <= 4
    assert preempted and set(preempted) == {"b"}
    assert scheduler.num_preemptions_total == len(preempted) == b.num_preemptions
    assert a.status == b.status == SeqStatus.FINISHED
    assert (a.num_output_tokens, b.num_output_tokens) == (30, 30)
    assert scheduler.kv_cache.usage == 0.0


def test_a_resumed_sequence_recomputes_its_prompt_and_the_tokens_it_already_had() -> None:
    scheduler = make(num_blocks=4)
    a = Sequence("a", num_prompt_tokens=16, max_output_tokens=30)
    b = Sequence("b", num_prompt_tokens=16, max_output_tokens=30)
    scheduler.add(a)
    scheduler.add(b)
    while not b.num_preemptions:
        run_step(scheduler)
    assert b.status == SeqStatus.PREEMPTED and b.num_computed_tokens == 0
    generated = b.num_output_tokens
    while b.status != SeqStatus.RUNNING:
        output = run_step(scheduler)
    assert chunks(output)["b"] == 16 + generated
    assert b.num_output_tokens == generated + 1


def test_abort_frees_the_sequence_wherever_it_is() -> None:
    scheduler = make(max_num_seqs=1)
    scheduler.add(Sequence("a", num_prompt_tokens=20, max_output_tokens=5))
    scheduler.add(Sequence("b", num_prompt_tokens=20, max_output_tokens=5))
    run_step(scheduler)
    assert scheduler.abort("a") and scheduler.abort("b")
    assert not scheduler.abort("a")
    assert not scheduler.has_unfinished() and scheduler.kv_cache.usage == 0.0


def test_requests_longer_than_max_model_len_are_refused() -> None:
    scheduler = make(max_model_len=128)
    with pytest.raises(ValueError, match="max_model_len"):
        scheduler.add(Sequence("a", num_prompt_tokens=100, max_output_tokens=29))


def test_vllm_refuses_a_token_budget_below_max_num_seqs() -> None:
    with pytest.raises(ValueError, match="must be greater than or equal to max_num_seqs"):
        SchedulerConfig(max_num_seqs=256, max_num_batched_tokens=128)
