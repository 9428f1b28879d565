"""The cost model the engine runs on: how long one step takes, and how much KV cache there is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@runtime_checkable
class StepCost(Protocol):
    """What the engine needs from a cost model (the planner's roofline, or an explicit one).

    `kv_blocks_total` counts blocks of `block_size` (16) tokens; `max_model_len` is the longest
    sequence (prompt + output) the deployment accepts.
    """

    @property
    def kv_blocks_total(self) -> int: ...

    @property
    def max_model_len(self) -> int: ...

    def step_time_s(self, prefill_tokens: int, decode_seqs: int, context_tokens: int,
                    prefill_attention_pairs: float) -> float:
        """Seconds one engine step takes.

        prefill_tokens: prompt tokens computed in the step (all prompt chunks together);
        decode_seqs: sequences generating one token each;
        context_tokens: KV-cache tokens read, summed over the batch (a decoding sequence's context
            length, a prompt chunk's earlier context);
        prefill_attention_pairs: query x key pairs inside the prompt chunks (chunk x earlier context
            plus chunk^2 / 2, causal).
        """
        ...


@dataclass(slots=True, frozen=True)
class LinearStepCost:
    """An explicit cost model, linear in the batch: a fixed overhead plus a price per unit of work.

    Used for hand-checked tests and quick what-ifs; the server normally runs on the planner's model.
    """

    kv_blocks_total: int
    max_model_len: int
    overhead_s: float = 0.0
    prefill_token_s: float = 0.0
    decode_seq_s: float = 0.0
    context_token_s: float = 0.0
    attention_pair_s: float = 0.0

    def step_time_s(self, prefill_tokens: int, decode_seqs: int, context_tokens: int,
                    prefill_attention_pairs: float = 0.0) -> float:
        return (self.overhead_s + prefill_tokens * self.prefill_token_s + decode_seqs * self.decode_seq_s
                + context_tokens * self.context_token_s + prefill_attention_pairs * self.attention_pair_s)

