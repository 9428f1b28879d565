"""Backend concurrency slots: who waits, for how long, and the queue depth the autoscaler reads."""

from __future__ import annotations

import asyncio

import pytest

from sluice.gateway.slots import Slots
from sluice.telemetry.metrics import GatewayMetrics


def queued(metrics: GatewayMetrics, target: str) -> float | None:
    return metrics.registry.get_sample_value("sluice_requests_queued", {"target": target})


async def test_with_one_slot_the_second_holder_waits_until_the_first_releases() -> None:
    metrics = GatewayMetrics()
    slots = Slots(1, metrics.queued.labels("vllm-a"))
    second_entering, second_holds = asyncio.Event(), asyncio.Event()

    async def second() -> float:
        second_entering.set()  # nothing awaits between here and hold() blocking on the slot
        async with slots.hold() as waited:
            second_holds.set()
            return waited

    async with slots.hold() as first_waited:
        task = asyncio.create_task(second())
        await second_entering.wait()

        assert not second_holds.is_set()
        assert slots.waiting == 1
        assert queued(metrics, "vllm-a") == 1.0

    second_waited = await task

    assert second_holds.is_set()
    assert first_waited == 0.0
    assert second_waited > 0.0
    assert slots.waiting == 0
    assert queued(metrics, "vllm-a") == 0.0


async def test_a_released_slot_is_free_again_without_waiting() -> None:
    metrics = GatewayMetrics()
    slots = Slots(1, metrics.queued.labels("vllm-a"))

    async with slots.hold() as first:
        pass
    async with slots.hold() as again:
        pass

    assert (first, again) == (0.0, 0.0)
    assert queued(metrics, "vllm-a") == 0.0


async def test_a_slot_is_released_when_the_holder_fails() -> None:
    metrics = GatewayMetrics()
    slots = Slots(1, metrics.queued.labels("vllm-a"))

    with pytest.raises(RuntimeError):
        async with slots.hold():
            raise RuntimeError("upstream broke")
    async with slots.hold() as waited:
        pass

    assert waited == 0.0


async def test_a_waiter_that_is_cancelled_leaves_the_queue() -> None:
    metrics = GatewayMetrics()
    slots = Slots(1, metrics.queued.labels("vllm-a"))
    entering = asyncio.Event()

    async def waiter() -> None:
        entering.set()
        async with slots.hold():
            pass

    async with slots.hold():
        task = asyncio.create_task(waiter())
        await entering.wait()
        assert slots.waiting == 1
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

        assert task.cancelled()
        assert slots.waiting == 0
        assert queued(metrics, "vllm-a") == 0.0


async def test_with_two_slots_two_holders_run_together_and_the_third_waits() -> None:
    metrics = GatewayMetrics()
    slots = Slots(2, metrics.queued.labels("vllm-a"))
    third_entering = asyncio.Event()

    async def third() -> float:
        third_entering.set()
        async with slots.hold() as waited:
            return waited

    async with slots.hold() as first, slots.hold() as second:
        task = asyncio.create_task(third())
        await third_entering.wait()
        assert (first, second) == (0.0, 0.0)
        assert slots.waiting == 1
        assert queued(metrics, "vllm-a") == 1.0

    assert await task > 0.0
    assert slots.waiting == 0


async def test_no_limit_never_waits_and_never_touches_the_gauge() -> None:
    metrics = GatewayMetrics()
    slots = Slots(None, metrics.queued.labels("local"))
    release = asyncio.Event()
    holding = 0
    all_holding = asyncio.Event()

    async def holder() -> float:
        nonlocal holding
        async with slots.hold() as waited:
            holding += 1
            if holding == 50:
                all_holding.set()
            await release.wait()
            return waited

    tasks = [asyncio.create_task(holder()) for _ in range(50)]
    await all_holding.wait()

    assert slots.waiting == 0
    assert queued(metrics, "local") == 0.0
    release.set()
    assert await asyncio.gather(*tasks) == [0.0] * 50
