"""The paged KV cache: blocks of 16 slots, all-or-nothing growth, freeing, exhaustion."""

from __future__ import annotations

import pytest

from sluice.sim.kv_cache import BLOCK_SIZE, KVCacheManager


def test_block_size_is_vllms_default_of_sixteen() -> None:
    assert BLOCK_SIZE == 16
    kv = KVCacheManager(num_blocks=10)
    assert [kv.blocks_for(n) for n in (1, 16, 17, 32, 33)] == [1, 1, 2, 2, 3]
    assert kv.capacity_tokens == 160


def test_sequences_grow_block_by_block_and_get_distinct_blocks() -> None:
    kv = KVCacheManager(num_blocks=8)
    assert kv.allocate_slots("a", 20)
    assert kv.num_slots("a") == 32 and len(kv.block_table("a")) == 2
    assert kv.allocate_slots("a", 32)  # still fits in the blocks it has
    assert kv.num_used_blocks == 2
    assert kv.allocate_slots("a", 33)
    assert kv.allocate_slots("b", 16)
    assert len(set(kv.block_table("a")) | set(kv.block_table("b"))) == 4
    assert kv.usage == 4 / 8


def test_exhaustion_refuses_without_partial_allocation() -> None:
    kv = KVCacheManager(num_blocks=4)
    assert kv.allocate_slots("a", 48)
    assert not kv.can_allocate("b", 32)
    assert not kv.allocate_slots("b", 32)
    assert "b" not in kv and kv.num_free_blocks == 1
    assert not kv.allocate_slots("a", 80)  # needs two more, one is free
    assert kv.num_slots("a") == 48


def test_freeing_returns_every_block_to_the_pool() -> None:
    kv = KVCacheManager(num_blocks=4)
    kv.allocate_slots("a", 64)
    assert kv.usage == 1.0
    assert kv.free("a") == 4
    assert kv.usage == 0.0 and kv.free("a") == 0
    assert kv.allocate_slots("b", 64)


def test_an_empty_pool_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        KVCacheManager(num_blocks=0)
