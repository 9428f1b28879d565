"""The engine core: scheduler + KV cache + cost model, advanced one step at a time on any clock."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field

from sluice.sim.cost import StepCost
from sluice.sim.kv_cache import BLOCK_SIZE, KVCacheManager
from sluice.sim.scheduler import Scheduler, SchedulerConfig, Sequence


@dataclass(slots=True, frozen=True)
class EngineRequest:
    """What the engine is asked to run: token counts only (the text is the output processor's business).

    The engine produces exactly `output_tokens` tokens and then reports `finish_reason`.
    `arrival_s` is when the request reached the server (on the engine's clock); None: when added.
    """

    request_id: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: str = "length"
    arrival_s: float | None = None


@dataclass(slots=True, frozen=True)
class RequestTiming:
    """A finished request's timeline, with the latency definitions of vLLM's `bench serve`."""

    request_id: str
    arrival_s: float
    first_scheduled_s: float
    token_times_s: tuple[float, ...]
    prompt_tokens: int
    finish_reason: str
    num_preemptions: int

    @property
    def output_tokens(self) -> int:
        return len(self.token_times_s)

    @property
    def first_token_s(self) -> float:
        return self.token_times_s[0]

    @property
    def finish_s(self) -> float:
        return self.token_times_s[-1]

    @property
    def ttft_s(self) -> float:
        return self.first_token_s - self.arrival_s

    @property
    def e2e_s(self) -> float:
        return self.finish_s - self.arrival_s

    @property
    def itl_s(self) -> tuple[float, ...]:
        """Gaps between consecutive output tokens."""
        times = self.token_times_s
        return tuple(later - earlier for earlier, later in itertools.pairwise(times))

    @property
    def tpot_s(self) -> float:
        """Mean time per output token after the first (0 for a one-token answer)."""
        n = self.output_tokens
        return (self.finish_s - self.first_token_s) / (n - 1) if n > 1 else 0.0

    @property
    def queue_s(self) -> float:
        return self.first_scheduled_s - self.arrival_s

    @property
    def prefill_s(self) -> float:
        return self.first_token_s - self.first_scheduled_s

    @property
    def decode_s(self) -> float:
        return self.finish_s - self.first_token_s

    @property
    def inference_s(self) -> float:
        return self.finish_s - self.first_scheduled_s


@dataclass(slots=True, frozen=True)
class TokenEvent:
    """Request `request_id` has its `index`-th output token (0-based) at `time_s`.

    `latency_s` is the time since the previous token, or since arrival for the first (TTFT).
    """

    request_id: str
    index: int
    time_s: float
    latency_s: float
    finished: bool
    finish_reason: str | None = None
    timing: RequestTiming | None = None  # on the last event


@dataclass(slots=True, frozen=True)
class EngineStep:
    """One step: the batch that ran, how long it took, and what came out of it."""

    start_s: float
    duration_s: float
    num_prefill_tokens: int
    num_decode_seqs: int
    num_context_tokens: int
    preempted: tuple[str, ...]
    tokens: tuple[TokenEvent, ...]
    num_prompt_tokens_done: int  # prompt tokens of the requests that got their first token this step
    num_running: int
    num_waiting: int
    kv_cache_usage: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    @property
    def finished(self) -> tuple[RequestTiming, ...]:
        return tuple(event.timing for event in self.tokens if event.timing is not None)


@dataclass(slots=True)
class _Tracked:
    request: EngineRequest
    seq: Sequence
    arrival_s: float
    first_scheduled_s: float | None = None
    token_times_s: list[float] = field(default_factory=list)


class EngineCore:
    """vLLM's `EngineCore` in miniature. It owns no clock: callers say when each step starts."""

    def __init__(self, cost: StepCost, config: SchedulerConfig | None = None) -> None:
        config = config or SchedulerConfig()
        max_model_len = config.max_model_len or cost.max_model_len
        if max_model_len > cost.max_model_len:
            raise ValueError(f"max_model_len {max_model_len} is longer than the model's context "
                             f"({cost.max_model_len} tokens)")
        kv_cache = KVCacheManager(cost.kv_blocks_total, BLOCK_SIZE)
        if max_model_len > kv_cache.capacity_tokens:
            raise ValueError(f"To serve at least one request with the model's max seq len ({max_model_len}), "
                             f"the KV cache must hold {max_model_len} tokens, but it holds "
                             f"{kv_cache.capacity_tokens} ({cost.kv_blocks_total} blocks of {BLOCK_SIZE}). "
                             "Try increasing `gpu_memory_utilization` or decreasing `max_model_len`.")
        self.cost = cost
        self.config = dataclasses.replace(config, max_model_len=max_model_len)
        self.max_model_len: int = max_model_len
        self.kv_cache = kv_cache
        self.scheduler = Scheduler(self.config, kv_cache)
        self.slowdown = 1.0  # every step takes this many times the cost model's time (degraded mode)
        self._tracked: dict[str, _Tracked] = {}

    @property
    def num_running(self) -> int:
        return self.scheduler.num_running

    @property
    def num_waiting(self) -> int:
        return self.scheduler.num_waiting

    @property
    def kv_cache_usage(self) -> float:
        return self.kv_cache.usage

    @property
    def num_preemptions_total(self) -> int:
        return self.scheduler.num_preemptions_total

    def has_work(self) -> bool:
        return self.scheduler.has_unfinished()

    def add_request(self, request: EngineRequest, now_s: float) -> None:
        """Queue a request; ValueError when it could never run (too long, duplicate id)."""
        seq = Sequence(request.request_id, request.prompt_tokens, request.output_tokens)
        self.scheduler.add(seq)
        arrival_s = now_s if request.arrival_s is None else request.arrival_s
        self._tracked[request.request_id] = _Tracked(request, seq, arrival_s)

    def abort_request(self, request_id: str) -> bool:
        self._tracked.pop(request_id, None)
        return self.scheduler.abort(request_id)

    def step(self, now_s: float) -> EngineStep:
        """Run one step starting at `now_s`; its tokens exist at `now_s + duration_s`."""
        batch = self.scheduler.schedule()
        if batch.is_empty:
            raise RuntimeError("the scheduler found nothing to run although requests are pending")
        duration_s = self.slowdown * self.cost.step_time_s(
            batch.num_prefill_tokens, batch.num_decode_seqs, batch.num_context_tokens,
            batch.num_prefill_attention_pairs)
        end_s = now_s + duration_s
        for chunk in batch.chunks:
            tracked = self._tracked[chunk.seq.request_id]
            if tracked.first_scheduled_s is None:
                tracked.first_scheduled_s = now_s
        events: list[TokenEvent] = []
        prompt_tokens_done = 0
        for new in self.scheduler.update_from_output(batch):
            tracked = self._tracked[new.seq.request_id]
            latency_s = end_s - (tracked.token_times_s[-1] if tracked.token_times_s else tracked.arrival_s)
            tracked.token_times_s.append(end_s)
            if new.index == 0:
                prompt_tokens_done += tracked.request.prompt_tokens
            if new.finished:
                del self._tracked[new.seq.request_id]
                timing = self._timing(tracked)
                events.append(TokenEvent(new.seq.request_id, new.index, end_s, latency_s, True,
                                         tracked.request.finish_reason, timing))
            else:
                events.append(TokenEvent(new.seq.request_id, new.index, end_s, latency_s, False))
        return EngineStep(now_s, duration_s, batch.num_prefill_tokens, batch.num_decode_seqs,
                          batch.num_context_tokens, batch.preempted, tuple(events), prompt_tokens_done,
                          self.num_running, self.num_waiting, self.kv_cache_usage)

    @staticmethod
    def _timing(tracked: _Tracked) -> RequestTiming:
        assert tracked.first_scheduled_s is not None
        return RequestTiming(tracked.request.request_id, tracked.arrival_s, tracked.first_scheduled_s,
                             tuple(tracked.token_times_s), tracked.request.prompt_tokens,
                             tracked.request.finish_reason, tracked.seq.num_preemptions)
