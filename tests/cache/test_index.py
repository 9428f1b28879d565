"""SemanticIndex over real usearch graphs: scopes, threshold, TTL, LRU eviction."""

from __future__ import annotations

import numpy as np

from sluice.cache import SemanticIndex
from tests.cache.support import DIM, near, unit


def test_search_finds_the_nearest_entry_of_its_own_scope_only() -> None:
    index = SemanticIndex(DIM, max_entries=100)
    for key in range(20):
        index.add("a", key, unit(key), expires_at=100.0, now=0.0)
    index.add("b", 99, unit(5), expires_at=100.0, now=0.0)
    match = index.search("a", near(unit(5), 1000), threshold=0.9, now=1.0)
    assert match is not None and match.key == 5 and 0.9 <= match.similarity <= 1.0
    other = index.search("b", near(unit(5), 1000), threshold=0.9, now=1.0)
    assert other is not None and other.key == 99
    assert index.search("c", unit(5), threshold=0.5, now=1.0) is None


def test_nothing_below_the_threshold_is_returned() -> None:
    index = SemanticIndex(DIM, max_entries=10)
    index.add("a", 1, unit(1), expires_at=100.0, now=0.0)
    assert index.search("a", unit(2), threshold=0.9, now=1.0) is None  # random directions: cosine ~ 0
    assert index.search("a", unit(1), threshold=0.999, now=1.0) is not None


def test_expired_entries_are_never_returned_and_expire_removes_them() -> None:
    index = SemanticIndex(DIM, max_entries=10)
    index.add("a", 1, unit(1), expires_at=10.0, now=0.0)
    index.add("a", 2, unit(2), expires_at=50.0, now=0.0)
    assert index.search("a", unit(1), threshold=0.9, now=10.0) is None
    assert index.expire(now=20.0) == [1]
    assert 1 not in index and 2 in index and len(index) == 1
    assert index.expire(now=60.0) == [2]
    assert len(index) == 0 and index.search("a", unit(2), threshold=0.5, now=61.0) is None


def test_capacity_evicts_the_least_recently_used() -> None:
    index = SemanticIndex(DIM, max_entries=3)
    for key in (1, 2, 3):
        assert index.add("a", key, unit(key), expires_at=100.0, now=0.0) == []
    assert index.search("a", unit(1), threshold=0.9, now=1.0) is not None  # 1 is now the most recent
    assert index.add("a", 4, unit(4), expires_at=100.0, now=2.0) == [2]
    assert index.search("a", unit(2), threshold=0.9, now=3.0) is None
    assert sorted(k for k in (1, 2, 3, 4) if k in index) == [1, 3, 4]


def test_adding_a_known_key_is_a_no_op_and_removed_slots_are_reused() -> None:
    index = SemanticIndex(DIM, max_entries=1000)
    index.add("a", 1, unit(1), expires_at=100.0, now=0.0)
    index.add("a", 1, unit(2), expires_at=100.0, now=0.0)
    match = index.search("a", unit(1), threshold=0.99, now=1.0)
    assert match is not None and match.key == 1
    for round_ in range(5):
        keys = range(100 + round_ * 50, 150 + round_ * 50)
        index.add_many("a", keys, np.stack([unit(k) for k in keys]), expires_at=100.0, now=0.0)
        index.remove(keys)
    assert len(index) == 1
    assert index.remove([1]) == [1] and index.search("a", unit(1), threshold=0.5, now=1.0) is None
