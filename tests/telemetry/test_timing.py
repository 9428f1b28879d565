"""Stream timing with vLLM `bench serve` definitions: TTFT, the gaps between outputs (ITL), and TPOT."""

from __future__ import annotations

import pytest

from sluice.telemetry.timing import StreamTimer, tpot_s


def test_ttft_is_the_first_output_minus_arrival_and_gaps_are_between_consecutive_outputs() -> None:
    timer = StreamTimer(arrival=10.0)
    for now in (10.2, 10.25, 10.31):
        timer.on_output(now)

    assert timer.ttft_s == pytest.approx(0.2)
    assert timer.gaps == pytest.approx([0.05, 0.06])
    assert (timer.first_output, timer.last_output) == (10.2, 10.31)


def test_a_stream_with_no_output_has_no_ttft_and_no_gaps() -> None:
    timer = StreamTimer(arrival=10.0)

    assert timer.ttft_s is None
    assert timer.gaps == []
    assert timer.last_output is None


def test_a_single_output_gives_a_ttft_and_no_gap() -> None:
    timer = StreamTimer(arrival=5.0)
    timer.on_output(5.5)

    assert timer.ttft_s == pytest.approx(0.5)
    assert timer.gaps == []


def test_n_outputs_give_n_minus_one_gaps_that_sum_to_last_minus_first() -> None:
    timer = StreamTimer(arrival=0.0)
    outputs = [0.1 + 0.01 * i * i for i in range(20)]
    for now in outputs:
        timer.on_output(now)

    assert len(timer.gaps) == 19
    assert sum(timer.gaps) == pytest.approx(outputs[-1] - outputs[0])


def test_tpot_excludes_the_first_token() -> None:
    # 11 tokens over 1.2 s with the first at 0.2 s: the other 10 took 1.0 s.
    assert tpot_s(e2e_s=1.2, ttft_s=0.2, completion_tokens=11) == pytest.approx(0.1)


def test_tpot_for_two_tokens_is_the_time_after_the_first() -> None:
    assert tpot_s(e2e_s=0.5, ttft_s=0.3, completion_tokens=2) == pytest.approx(0.2)


@pytest.mark.parametrize("tokens", [None, 0, 1])
def test_tpot_is_undefined_below_two_tokens(tokens: int | None) -> None:
    assert tpot_s(e2e_s=1.0, ttft_s=0.2, completion_tokens=tokens) is None


def test_tpot_is_undefined_without_a_ttft() -> None:
    assert tpot_s(e2e_s=1.0, ttft_s=None, completion_tokens=10) is None


def test_a_zero_ttft_still_gives_a_tpot() -> None:
    assert tpot_s(e2e_s=0.9, ttft_s=0.0, completion_tokens=10) == pytest.approx(0.1)
