"""Continuous-batching scheduler shaped like vLLM v1's: token budget, chunked prefill, recompute preemption."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from sluice.sim.kv_cache import KVCacheManager


class SeqStatus(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    PREEMPTED = "preempted"  # back in the waiting queue; its KV cache was dropped and is recomputed
    FINISHED = "finished"
    ABORTED = "aborted"


@dataclass(slots=True)
class Sequence:
    """One request as the scheduler sees it: token counts only (vLLM v1's `Request`).

    There is no prefill/decode phase flag: each step a sequence is given some of the tokens it has
    not computed yet (`num_tokens - num_computed_tokens`); when it has computed all of them, the
    step samples one new output token.
    """

    request_id: str
    num_prompt_tokens: int
    max_output_tokens: int
    num_computed_tokens: int = 0
    num_output_tokens: int = 0
    num_preemptions: int = 0
    status: SeqStatus = SeqStatus.WAITING

    @property
    def num_tokens(self) -> int:
        return self.num_prompt_tokens + self.num_output_tokens

    @property
    def is_finished(self) -> bool:
        return self.status in (SeqStatus.FINISHED, SeqStatus.ABORTED)


@dataclass(slots=True, frozen=True)
class SchedulerConfig:
    """vLLM's scheduler flags, under their names. `max_model_len=None` takes the cost model's."""

    max_num_seqs: int = 256
    max_num_batched_tokens: int = 2048
    max_model_len: int | None = None
    enable_chunked_prefill: bool = True
    long_prefill_token_threshold: int = 0  # 0: a prompt chunk may take the whole remaining budget

    def __post_init__(self) -> None:
        if self.max_num_seqs < 1 or self.max_num_batched_tokens < 1:
            raise ValueError("max_num_seqs and max_num_batched_tokens must be positive")
        if self.max_model_len is not None and self.max_model_len < 2:
            raise ValueError("max_model_len must be at least 2")
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be greater than or "
                             f"equal to max_num_seqs ({self.max_num_seqs}).")
        if (not self.enable_chunked_prefill and self.max_model_len is not None
                and self.max_num_batched_tokens < self.max_model_len):
            raise ValueError(f"max_num_batched_tokens ({self.max_num_batched_tokens}) is smaller than "
                             f"max_model_len ({self.max_model_len}) and chunked prefill is disabled: "
                             "the longest prompts could never be scheduled.")


@dataclass(slots=True, frozen=True)
class ScheduledChunk:
    seq: Sequence
    num_tokens: int
    is_decode: bool


@dataclass(slots=True, frozen=True)
class SchedulerOutput:
    """One step's batch, and the work in it that the cost model prices."""

    chunks: tuple[ScheduledChunk, ...]
    preempted: tuple[str, ...]
    num_prefill_tokens: int
    num_decode_seqs: int
    num_context_tokens: int  # KV entries read: a decode's whole context, a prompt chunk's earlier context
    num_prefill_attention_pairs: float  # query x key pairs inside prompt chunks (causal)

    @property
    def num_scheduled_tokens(self) -> int:
        return self.num_prefill_tokens + self.num_decode_seqs

    @property
    def is_empty(self) -> bool:
        return not self.chunks


@dataclass(slots=True, frozen=True)
class NewToken:
    """A sequence produced its `index`-th output token (0-based) in the step."""

    seq: Sequence
    index: int
    finished: bool


class Scheduler:
    """FCFS waiting queue and a running list; builds one batch per step under the token budget."""

    def __init__(self, config: SchedulerConfig, kv_cache: KVCacheManager) -> None:
        if config.max_model_len is None:
            raise ValueError("the scheduler needs a resolved max_model_len")
        self.config = config
        self.max_model_len: int = config.max_model_len
        self.kv_cache = kv_cache
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.num_preemptions_total = 0
        self._by_id: dict[str, Sequence] = {}

    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    def has_unfinished(self) -> bool:
        return bool(self.running or self.waiting)

    def add(self, seq: Sequence) -> None:
        if seq.request_id in self._by_id:
            raise ValueError(f"request id {seq.request_id!r} is already scheduled")
        if seq.num_prompt_tokens < 1 or seq.max_output_tokens < 1:
            raise ValueError("a sequence needs at least one prompt token and one output token")
        if seq.num_prompt_tokens + seq.max_output_tokens > self.max_model_len:
            raise ValueError(f"{seq.num_prompt_tokens} + {seq.max_output_tokens} tokens exceed "
                             f"max_model_len {self.max_model_len}")
        seq.status = SeqStatus.WAITING
        self.waiting.append(seq)
        self._by_id[seq.request_id] = seq

    def abort(self, request_id: str) -> bool:
        """Drop a request wherever it is (the client went away); False when it is unknown or done."""
        seq = self._by_id.pop(request_id, None)
        if seq is None:
            return False
        if seq.status == SeqStatus.RUNNING:
            self.running.remove(seq)
        else:
            self.waiting.remove(seq)
        self.kv_cache.free(request_id)
        seq.status = SeqStatus.ABORTED
        return True

    def schedule(self) -> SchedulerOutput:
        budget = self.config.max_num_batched_tokens
        chunks: list[ScheduledChunk] = []
        preempted: list[str] = []

        # Running sequences first, oldest first: decodes (one token) and unfinished prompt chunks.
        index = 0
        while index < len(self.running) and budget > 0:
            seq = self.running[index]
            num_new = self._chunk_size(seq, budget)
            if not self._make_room(seq, num_new, preempted):
                break
            chunks.append(self._chunk(seq, num_new))
            budget -= num_new
            index += 1

        # Then waiting sequences, in arrival order, while seats, budget and blocks last. As in vLLM,
        # a step that had to preempt admits nobody new.
        while not preempted and self.waiting and budget > 0 and len(self.running) < self.config.max_num_seqs:
            seq = self.waiting[0]
            if not self.config.enable_chunked_prefill and seq.num_tokens - seq.num_computed_tokens > budget:
                break
            num_new = self._chunk_size(seq, budget)
            if not self.kv_cache.allocate_slots(seq.request_id, seq.num_computed_tokens + num_new):
                break
            self.waiting.popleft()
            seq.status = SeqStatus.RUNNING
            self.running.append(seq)
            chunks.append(self._chunk(seq, num_new))
            budget -= num_new

        prefill = sum(c.num_tokens for c in chunks if not c.is_decode)
        decodes = sum(1 for c in chunks if c.is_decode)
        context = sum(c.seq.num_computed_tokens + (1 if c.is_decode else 0) for c in chunks)
        pairs = sum(c.num_tokens * c.seq.num_computed_tokens + c.num_tokens**2 / 2 for c in chunks if not c.is_decode)
        return SchedulerOutput(tuple(chunks), tuple(preempted), prefill, decodes, context, pairs)

    def update_from_output(self, output: SchedulerOutput) -> list[NewToken]:
        """Apply a finished step: advance computed tokens, sample a token where a sequence caught up."""
        new_tokens: list[NewToken] = []
        for chunk in output.chunks:
            seq = chunk.seq
            if seq.status != SeqStatus.RUNNING:
                continue  # aborted while the step ran
            seq.num_computed_tokens += chunk.num_tokens
            if seq.num_computed_tokens < seq.num_tokens:
                continue  # a prompt chunk that did not reach the end yet
            seq.num_output_tokens += 1
            finished = seq.num_output_tokens >= seq.max_output_tokens
            if finished:
                self._finish(seq)
            new_tokens.append(NewToken(seq, seq.num_output_tokens - 1, finished))
        return new_tokens

    def _make_room(self, seq: Sequence, num_new: int, preempted: list[str]) -> bool:
        """Blocks for `seq`'s next chunk, preempting the newest running sequences until they fit.

        False when `seq` itself had to go (it was the newest left).
        """
        while not self.kv_cache.allocate_slots(seq.request_id, seq.num_computed_tokens + num_new):
            victim = self.running.pop()
            self._preempt(victim)
            preempted.append(victim.request_id)
            if victim is seq:
                return False
        return True

    def _chunk_size(self, seq: Sequence, budget: int) -> int:
        num_new = seq.num_tokens - seq.num_computed_tokens
        threshold = self.config.long_prefill_token_threshold
        if 0 < threshold < num_new:
            num_new = threshold
        return min(num_new, budget)

    @staticmethod
    def _chunk(seq: Sequence, num_new: int) -> ScheduledChunk:
        # A decode is the one token sampled last step; everything else (prompt, recompute) is prefill.
        is_decode = num_new == 1 and seq.num_output_tokens > 0 and seq.num_computed_tokens == seq.num_tokens - 1
        return ScheduledChunk(seq, num_new, is_decode)

    def _preempt(self, seq: Sequence) -> None:
        self.kv_cache.free(seq.request_id)
        seq.num_computed_tokens = 0
        seq.num_preemptions += 1
        seq.status = SeqStatus.PREEMPTED
        self.waiting.appendleft(seq)
        self.num_preemptions_total += 1

    def _finish(self, seq: Sequence) -> None:
        self.running.remove(seq)
        self.kv_cache.free(seq.request_id)
        self._by_id.pop(seq.request_id, None)
        seq.status = SeqStatus.FINISHED
