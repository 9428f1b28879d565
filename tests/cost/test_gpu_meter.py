"""GPU-hour attribution on hand-built request streams: busy time ÷ weighted tokens over a trailing window."""

from __future__ import annotations

import pytest

from sluice.cost import GPUMeter

USD_PER_HOUR = 3.6  # 0.001 USD per second: costs below read as "busy seconds / 1000"


def test_one_request_pays_for_the_busy_time_it_caused() -> None:
    meter = GPUMeter(USD_PER_HOUR, window_s=300)
    assert meter.record(0.0, 10.0, weighted_tokens=1000) == pytest.approx(0.010)
    assert meter.busy_total_s == pytest.approx(10.0)


def test_back_to_back_requests_share_the_busy_cost_exactly() -> None:
    meter = GPUMeter(USD_PER_HOUR, window_s=300)
    costs = [meter.record(0.0, 10.0, 100), meter.record(10.0, 20.0, 100)]
    assert costs == pytest.approx([0.010, 0.010])
    assert sum(costs) == pytest.approx(meter.busy_total_s * USD_PER_HOUR / 3600)


def test_overlapping_requests_count_busy_time_once() -> None:
    meter = GPUMeter(USD_PER_HOUR, window_s=300)
    first = meter.record(0.0, 10.0, 1000)
    second = meter.record(5.0, 15.0, 1000)  # busy is [0, 15]: 15 s, not 20
    assert meter.busy_total_s == pytest.approx(15.0)
    assert first == pytest.approx(0.010)
    assert second == pytest.approx(1000 * 0.015 / 2000)  # 15 s of cost over 2000 weighted tokens


def test_idle_time_between_requests_is_not_charged() -> None:
    meter = GPUMeter(USD_PER_HOUR, window_s=300)
    meter.record(0.0, 10.0, 100)
    later = meter.record(100.0, 110.0, 100)  # 90 s idle in between
    assert meter.busy_total_s == pytest.approx(20.0)
    assert later == pytest.approx(100 * 0.020 / 200)  # the window's busy 20 s over its 200 tokens


def test_the_window_forgets_old_busy_time_and_tokens() -> None:
    meter = GPUMeter(USD_PER_HOUR, window_s=300)
    meter.record(0.0, 10.0, 100)
    assert meter.record(400.0, 410.0, 50) == pytest.approx(0.010)  # only its own 10 s and 50 tokens are left
    assert meter.window_busy_s(410.0) == pytest.approx(10.0)
    assert meter.usd_per_weighted_token(1000.0) is None  # nothing in the window any more


def test_a_request_longer_than_the_window_is_clipped_to_it() -> None:
    meter = GPUMeter(USD_PER_HOUR, window_s=60)
    assert meter.record(0.0, 100.0, 10) == pytest.approx(0.060)
    assert meter.window_busy_s(100.0) == pytest.approx(60.0)


def test_failed_requests_add_busy_time_that_later_tokens_pay_for() -> None:
    meter = GPUMeter(USD_PER_HOUR, window_s=300)
    assert meter.record(0.0, 5.0, 0) == 0.0  # no tokens: nothing to charge it to
    assert meter.record(5.0, 10.0, 100) == pytest.approx(0.010)  # 10 s busy over 100 tokens


def test_intervals_arriving_out_of_order_merge_into_one_union() -> None:
    meter = GPUMeter(USD_PER_HOUR, window_s=300)
    meter.record(20.0, 30.0, 1)
    meter.record(0.0, 40.0, 1)  # swallows [20, 30]
    meter.record(50.0, 60.0, 1)
    meter.record(35.0, 55.0, 1)  # bridges [0, 40] and [50, 60]
    assert meter.busy_total_s == pytest.approx(60.0)
    assert meter.window_busy_s(60.0) == pytest.approx(60.0)


def test_steady_traffic_charges_what_the_busy_gpus_cost() -> None:
    # 2 s requests arriving every second (two in flight), 100 weighted tokens each, for an hour
    meter = GPUMeter(USD_PER_HOUR, window_s=300)
    charged = sum(meter.record(float(i), float(i) + 2.0, 100) for i in range(3600))
    busy_cost = meter.busy_total_s * USD_PER_HOUR / 3600
    assert meter.busy_total_s == pytest.approx(3601.0)
    assert charged == pytest.approx(busy_cost, rel=0.02)  # start-up (first window) is the only overcharge


def test_bursty_traffic_charges_what_the_busy_gpus_cost() -> None:
    # every minute: ten 1.5 s requests one second apart, then 50 s idle
    meter = GPUMeter(USD_PER_HOUR, window_s=300)
    charged = sum(meter.record(minute * 60.0 + k, minute * 60.0 + k + 1.5, 100)
                  for minute in range(60) for k in range(10))
    assert meter.busy_total_s == pytest.approx(60 * 10.5)
    assert charged == pytest.approx(meter.busy_total_s * USD_PER_HOUR / 3600, rel=0.01)
