"""Paged KV cache: fixed-size blocks handed to sequences as they grow, returned when they finish."""

from __future__ import annotations

from collections import deque

BLOCK_SIZE = 16  # vLLM's default block size on CUDA


class KVCacheManager:
    """A pool of `num_blocks` blocks of `block_size` token slots, allocated per sequence.

    Like vLLM's `KVCacheManager.allocate_slots`, growth is all-or-nothing: a sequence either gets
    every block it needs for the step or nothing changes, so the scheduler can preempt and retry.
    """

    def __init__(self, num_blocks: int, block_size: int = BLOCK_SIZE) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError(f"need at least one block of one slot, got {num_blocks} x {block_size}")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self._free: deque[int] = deque(range(num_blocks))
        self._tables: dict[str, list[int]] = {}

    @property
    def num_free_blocks(self) -> int:
        return len(self._free)

    @property
    def num_used_blocks(self) -> int:
        return self.num_blocks - len(self._free)

    @property
    def usage(self) -> float:
        """Fraction of blocks in use, 0..1 (vLLM's `kv_cache_usage_perc`, which is a fraction too)."""
        return self.num_used_blocks / self.num_blocks

    @property
    def capacity_tokens(self) -> int:
        return self.num_blocks * self.block_size

    def blocks_for(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def block_table(self, seq_id: str) -> tuple[int, ...]:
        return tuple(self._tables.get(seq_id, ()))

    def num_slots(self, seq_id: str) -> int:
        """Token slots the sequence holds now (whole blocks)."""
        return len(self._tables.get(seq_id, ())) * self.block_size

    def blocks_needed(self, seq_id: str, num_tokens: int) -> int:
        """New blocks the sequence needs to hold `num_tokens` tokens in all."""
        return max(0, self.blocks_for(num_tokens) - len(self._tables.get(seq_id, ())))

    def can_allocate(self, seq_id: str, num_tokens: int) -> bool:
        return self.blocks_needed(seq_id, num_tokens) <= len(self._free)

    def allocate_slots(self, seq_id: str, num_tokens: int) -> bool:
        """Grow the sequence to hold `num_tokens` tokens in all; False (and no change) when they don't fit."""
        needed = self.blocks_needed(seq_id, num_tokens)
        if needed > len(self._free):
            return False
        table = self._tables.setdefault(seq_id, [])
        table.extend(self._free.popleft() for _ in range(needed))
        return True

    def free(self, seq_id: str) -> int:
        """Return all of the sequence's blocks to the pool; the number returned."""
        table = self._tables.pop(seq_id, [])
        self._free.extend(reversed(table))  # tail blocks first, as vLLM frees them
        return len(table)

    def __contains__(self, seq_id: str) -> bool:
        return seq_id in self._tables
