"""A run over time: requests sent and completed, and output tokens per second, in round bins."""

from __future__ import annotations

import pytest

from sluice.loadtest.timeline import bin_width_s, throughput_over_time


@pytest.mark.parametrize(("span_s", "width_s"), [(10.0, 0.2), (60.0, 2.0), (100.0, 2.0), (120.0, 2.5),
                                                 (240.0, 5.0), (0.01, 0.0002)])
def test_bins_are_round_and_about_fifty(span_s: float, width_s: float) -> None:
    assert bin_width_s(span_s) == pytest.approx(width_s)


def test_rates_per_bin_count_starts_ends_and_each_chunks_share_of_tokens() -> None:
    result = {"start_times": [0.0, 0.5, 1.2], "ttfts": [0.1, 0.2, 0.0], "itls": [[0.2, 0.2], [1.0], []],
              "e2els": [0.5, 1.3, 0.1], "output_lens": [6, 4, 0], "errors": ["", "", "http_500"]}
    rates = throughput_over_time(result, bin_s=1.0)
    assert rates.starts_s == (0.0, 1.0)
    assert rates.sent_per_s == (2.0, 1.0)  # two starts in [0, 1), one in [1, 2)
    assert rates.completed_per_s == (1.0, 1.0)  # ends at 0.5 and 1.8; the failure does not complete
    # first request: three chunks of 2 tokens at 0.1, 0.3, 0.5; second: two of 2 at 0.7 and 1.7
    assert rates.output_tokens_per_s == (8.0, 2.0)
