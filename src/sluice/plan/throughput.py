"""Latency and throughput from the step-time model: TTFT/TPOT at a concurrency, and sweeps over batch size.

The steady state of a closed loop (what `vllm bench serve --max-concurrency C` measures): C clients each
send an `input_len`-token prompt and read `output_len` tokens, then send the next. vLLM runs up to
`running` of them at once (limited by max_num_seqs and the KV cache); the rest queue. Every step decodes
one token for each running sequence and, with chunked prefill, fits prompt chunks of the arriving
requests into the remaining token budget — so other requests' prefills slow everyone's decode steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sluice.plan.deployment import Deployment
from sluice.plan.errors import PlanError
from sluice.plan.step_time import step_breakdown

# Fixed part of TTFT outside the engine step (HTTP, tokenisation, scheduling, the first streamed chunk),
# from Qwen3-0.6B on an H100 whose 512-token prefill computes in ~1 ms yet shows a 38.9 ms mean TTFT at
# 16 req/s (vLLM 0.19, ovg-project/kvcached benchmarks/bench_layout/H100_results.md, 2026), less one step.
REQUEST_OVERHEAD_S = 0.035
_BISECTION_ROUNDS = 32


@dataclass(slots=True, frozen=True)
class Workload:
    """Closed-loop load: `concurrency` clients, each prompt `input_len` tokens, each answer `output_len`."""

    input_len: int = 1024
    output_len: int = 128
    concurrency: int = 1

    def __post_init__(self) -> None:
        if self.input_len < 1 or self.output_len < 1 or self.concurrency < 1:
            raise PlanError("input-len, output-len and concurrency must be at least 1")


@dataclass(slots=True, frozen=True)
class LatencyEstimate:
    """Steady-state latencies (seconds) and output throughput at one concurrency; definitions as vLLM's
    `bench serve`: TTFT includes queueing, TPOT excludes the first token."""

    workload: Workload
    running: int
    ttft_s: float
    tpot_s: float
    e2e_s: float
    output_tokens_per_s: float
    queue_s: float
    bound: str

    @property
    def kv_limited(self) -> bool:
        return self.running < self.workload.concurrency


@dataclass(slots=True, frozen=True)
class BatchPoint:
    """One row of a sweep: pure decode at batch size B, prefill of B prompts, and the closed loop at C = B."""

    batch_size: int
    decode_step_s: float
    decode_tokens_per_s: float
    prefill_s: float
    fits_in_kv: bool
    latency: LatencyEstimate


def max_running(deployment: Deployment, kv_capacity_tokens: int, workload: Workload) -> int:
    """Sequences that can run at once: max_num_seqs, and whole sequences in the KV cache."""
    length = workload.input_len + workload.output_len
    if length > deployment.max_model_len:
        raise PlanError(f"input-len + output-len ({length}) exceeds max-model-len ({deployment.max_model_len})")
    return min(workload.concurrency, deployment.max_num_seqs, kv_capacity_tokens // length)


def estimate_latency(deployment: Deployment, workload: Workload, kv_capacity_tokens: int) -> LatencyEstimate:
    """TTFT, TPOT and output tokens/s at `workload.concurrency`, the fixed point found by bisection.

    Decode steps carry one token per running sequence. When another client's prompt arrives, vLLM puts it
    (in chunks of the token budget left after the decodes, several prompts together when they queue up)
    into a step alongside the decodes; those steps are compute-heavy and stall every running sequence.
    TPOT is the mean step time over a request's decode phase, prefill steps included.
    """
    running = max_running(deployment, kv_capacity_tokens, workload)
    if running < 1:
        raise PlanError("the KV cache cannot hold one input-len + output-len sequence")
    prompt, output = workload.input_len, workload.output_len
    context = prompt + output / 2  # mean context of a decoding sequence
    others = running - 1
    room = max(1, deployment.max_num_batched_tokens - others)  # prefill tokens a step can take
    chunk = min(prompt, room)
    chunks = math.ceil(prompt / chunk)
    packable = max(1, room // prompt)  # whole prompts that fit in one step's budget
    decode = step_breakdown(deployment, 0, running, int(running * context))

    def prefill_step(prompts: float) -> float:
        """One step carrying `prompts` prompt chunks next to the other sequences' decodes."""
        prior = prompt / 2 if chunks > 1 else 0
        return step_breakdown(deployment, int(prompts * chunk), others, int(others * context + prompts * prior),
                              prefill_attention_pairs=prompts * prompt**2 / (2 * chunks)).total_s

    single = prefill_step(1)

    def implied(tpot: float) -> tuple[float, float, float]:
        """(TPOT implied by a guessed TPOT, TTFT, end-to-end) — decreasing in the guess."""
        ttft_guess = REQUEST_OVERHEAD_S + tpot / 2 + chunks * single
        arrivals_s = others / (ttft_guess + (output - 1) * tpot)  # other clients' prompts per second
        packed = min(float(packable), 1 + arrivals_s * single)
        packed_step = prefill_step(packed)
        # share of time in prefill steps (capped: in a closed loop arrivals slow down instead)
        stall = min(0.95, arrivals_s * chunks / packed * max(0.0, packed_step - decode.total_s))
        ttft = REQUEST_OVERHEAD_S + tpot / 2 + chunks * packed_step
        return decode.total_s / (1 - stall), ttft, ttft + (output - 1) * tpot

    low, high = decode.total_s, decode.total_s * 20
    for _ in range(_BISECTION_ROUNDS):
        middle = (low + high) / 2
        low, high = (middle, high) if implied(middle)[0] > middle else (low, middle)
    tpot = (low + high) / 2
    _, ttft, e2e = implied(tpot)
    queue = max(0.0, workload.concurrency / running - 1) * e2e
    return LatencyEstimate(
        workload=workload, running=running, ttft_s=ttft + queue, tpot_s=tpot if output > 1 else 0.0,
        e2e_s=e2e + queue, output_tokens_per_s=running * output / e2e, queue_s=queue, bound=decode.bound,
    )


def prefill_time_s(deployment: Deployment, prompts: int, prompt_len: int) -> float:
    """Time to prefill `prompts` prompts of `prompt_len` tokens back to back, max_num_batched_tokens per step."""
    budget = deployment.max_num_batched_tokens
    total = prompts * prompt_len
    full, rest = divmod(total, budget)
    seconds = 0.0
    for tokens, count in ((budget, full), (rest, 1 if rest else 0)):
        if count:
            pairs = tokens * min(tokens, prompt_len) / 2
            seconds += count * step_breakdown(deployment, tokens, 0, 0, prefill_attention_pairs=pairs).total_s
    return seconds


def sweep_batch_sizes(deployment: Deployment, kv_capacity_tokens: int, input_len: int, output_len: int,
                      batch_sizes: list[int]) -> list[BatchPoint]:
    """The throughput table: for each batch size, decode step time and tokens/s, prefill time, closed loop."""
    context = input_len + output_len / 2
    points = []
    for batch in batch_sizes:
        step = step_breakdown(deployment, 0, batch, int(batch * context))
        workload = Workload(input_len, output_len, batch)
        points.append(BatchPoint(
            batch_size=batch, decode_step_s=step.total_s, decode_tokens_per_s=batch / step.total_s,
            prefill_s=prefill_time_s(deployment, batch, input_len),
            fits_in_kv=batch <= max_running(deployment, kv_capacity_tokens, workload),
            latency=estimate_latency(deployment, workload, kv_capacity_tokens),
        ))
    return points


def default_batch_sizes(limit: int) -> list[int]:
    """Powers of two up to `limit` (max_num_seqs), and `limit` itself."""
    sizes = [2**power for power in range(0, 16) if 2**power < limit]
    return [*sizes, limit]
