"""Choosing a replica: least-outstanding, power of two choices on latency, weighted; what is left out."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from sluice.routing import Pool
from sluice.routing.balancer import least_outstanding, p2c_ewma, weighted
from tests.routing.helpers import Clock, openai, router_for


def pool_of(*weights: float, balancer: str = "least_outstanding", clock: Clock | None = None) -> Pool:
    names = [f"r{i}" for i in range(len(weights))]
    router = router_for({"chat": {"targets": [{"backend": n, "weight": w} for n, w in zip(names, weights,
                                                                                          strict=True)],
                                  "balancer": balancer}}, *(openai(n) for n in names), clock=clock)
    deployment = router.deployments.get("chat")
    assert deployment is not None
    return router.pool(deployment, "stable", "chat")


def test_least_outstanding_takes_the_idlest_replica() -> None:
    pool = pool_of(100, 100, 100)
    for target, outstanding in zip(pool.targets, (4, 1, 2), strict=True):
        target.state.outstanding = outstanding

    assert least_outstanding(pool.targets, random.Random(0)).name == "r1"


def test_least_outstanding_spreads_a_burst_evenly() -> None:
    pool = pool_of(100, 100, 100)
    rng = random.Random(1)
    for _ in range(30):  # each request stays in flight, as a stream would
        least_outstanding(pool.targets, rng).state.outstanding += 1

    assert [t.state.outstanding for t in pool.targets] == [10, 10, 10]


def test_least_outstanding_breaks_ties_at_random() -> None:
    pool = pool_of(100, 100)
    rng = random.Random(2)

    picks = Counter(least_outstanding(pool.targets, rng).name for _ in range(1000))

    assert picks["r0"] == pytest.approx(500, abs=60)


def test_least_outstanding_loads_replicas_in_proportion_to_weight() -> None:
    pool = pool_of(300, 100)
    rng = random.Random(3)
    for _ in range(40):
        least_outstanding(pool.targets, rng).state.outstanding += 1

    assert [t.state.outstanding for t in pool.targets] == [30, 10]


def test_p2c_ewma_prefers_the_faster_replica_until_its_queue_makes_it_slower() -> None:
    pool = pool_of(100, 100)
    fast, slow = pool.targets
    fast.state.observe_latency(0.1)
    slow.state.observe_latency(0.4)
    rng = random.Random(4)

    assert {p2c_ewma(pool.targets, rng).name for _ in range(50)} == {"r0"}
    fast.state.outstanding = 4  # 0.1 x 5 > 0.4 x 1
    assert {p2c_ewma(pool.targets, rng).name for _ in range(50)} == {"r1"}


def test_p2c_ewma_tries_a_replica_with_no_latency_sample_yet() -> None:
    pool = pool_of(100, 100)
    pool.targets[0].state.observe_latency(0.2)

    assert p2c_ewma(pool.targets, random.Random(5)).name == "r1"


def test_ewma_moves_towards_new_samples() -> None:
    pool = pool_of(100)
    state = pool.targets[0].state
    state.observe_latency(1.0)
    state.observe_latency(0.0)

    assert state.ewma_s == pytest.approx(0.7)


def test_weighted_pick_follows_the_weights() -> None:
    pool = pool_of(90, 10)
    rng = random.Random(20240601)

    picks = Counter(weighted(pool.targets, rng).name for _ in range(10_000))

    assert picks["r0"] / 10_000 == pytest.approx(0.90, abs=0.02)
    assert picks["r1"] / 10_000 == pytest.approx(0.10, abs=0.02)


def test_weights_are_relative_not_percentages() -> None:
    pool = pool_of(3, 1)
    rng = random.Random(7)

    picks = Counter(weighted(pool.targets, rng).name for _ in range(10_000))

    assert picks["r0"] / 10_000 == pytest.approx(0.75, abs=0.02)


@pytest.mark.parametrize("balancer", ["least_outstanding", "p2c_ewma", "weighted"])
@pytest.mark.parametrize("zero_first", [True, False])
def test_a_zero_weight_replica_is_never_picked_when_another_has_weight(balancer: str, zero_first: bool) -> None:
    pool = pool_of(0, 1, balancer=balancer) if zero_first else pool_of(1, 0, balancer=balancer)
    rng = random.Random(1)

    assert {pool.pick(0.0, rng).name for _ in range(2_000)} == {"r1" if zero_first else "r0"}  # type: ignore[union-attr]


@pytest.mark.parametrize("balancer", ["least_outstanding", "p2c_ewma", "weighted"])
def test_replicas_that_all_have_zero_weight_still_serve(balancer: str) -> None:
    pool = pool_of(0, 0, balancer=balancer)
    rng = random.Random(3)

    assert {pool.pick(0.0, rng).name for _ in range(200)} == {"r0", "r1"}  # type: ignore[union-attr]


def test_pick_is_reproducible_with_the_same_seed() -> None:
    pool = pool_of(50, 50, balancer="weighted")

    def draws(seed: int) -> list[str]:
        rng = random.Random(seed)
        return [pool.pick(0.0, rng).name for _ in range(100)]  # type: ignore[union-attr]

    assert draws(42) == draws(42)
    assert set(draws(42)) == {"r0", "r1"}


@pytest.mark.parametrize("balancer", ["least_outstanding", "p2c_ewma", "weighted"])
def test_an_unhealthy_replica_gets_no_traffic(balancer: str) -> None:
    pool = pool_of(100, 100, 100, balancer=balancer)
    pool.targets[1].state.healthy = False
    rng = random.Random(6)

    assert {pool.pick(0.0, rng).name for _ in range(500)} == {"r0", "r2"}  # type: ignore[union-attr]


def test_a_replica_with_an_open_breaker_gets_no_traffic_until_its_cooldown_ends() -> None:
    clock = Clock()
    pool = pool_of(100, 100, clock=clock)
    broken = pool.targets[0].state
    for _ in range(5):  # the default: five failures in a row
        broken.breaker.record(clock(), True, probe=False)
    rng = random.Random(7)

    assert {pool.pick(clock(), rng).name for _ in range(100)} == {"r1"}  # type: ignore[union-attr]
    clock.advance(15.0)
    assert "r0" in {pool.pick(clock(), rng).name for _ in range(100)}  # type: ignore[union-attr]


def test_no_usable_replica_picks_nothing() -> None:
    pool = pool_of(100, 100)
    for target in pool.targets:
        target.state.healthy = False

    assert pool.pick(0.0, random.Random(0)) is None


def test_a_single_replica_is_picked_unless_unusable_or_avoided() -> None:
    pool = pool_of(5)
    (only,) = pool.targets

    assert pool.pick(0.0, random.Random(0)) is only
    assert pool.pick(0.0, random.Random(0), avoid=[only.state]) is None
    only.state.healthy = False
    assert pool.pick(0.0, random.Random(0)) is None


def test_replicas_already_tried_are_avoided_while_others_remain() -> None:
    pool = pool_of(100, 100, 100)
    tried = [pool.targets[0].state, pool.targets[2].state]

    assert {pool.pick(0.0, random.Random(8), avoid=tried).name for _ in range(50)} == {"r1"}  # type: ignore[union-attr]
    assert pool.pick(0.0, random.Random(8), avoid=[t.state for t in pool.targets]) is None


def test_a_throttled_replica_is_used_only_when_nothing_else_is() -> None:
    pool = pool_of(100, 100)
    pool.targets[0].state.throttled_until = 10.0
    rng = random.Random(9)

    assert {pool.pick(5.0, rng).name for _ in range(100)} == {"r1"}  # type: ignore[union-attr]
    assert pool.pick(5.0, rng, avoid=[pool.targets[1].state]).name == "r0"  # type: ignore[union-attr]
    assert {pool.pick(10.0, rng).name for _ in range(100)} == {"r0", "r1"}  # type: ignore[union-attr]
