"""The shared statistics: Wilson intervals exact at the edges, percentiles as numpy computes them."""

from __future__ import annotations

import numpy as np
import pytest

from sluice.stats import percentile, wilson


def test_wilson_bounds_are_exactly_0_and_1_at_the_edges() -> None:
    for total in (1, 7, 100, 12_345):
        assert wilson(0, total)[0] == 0.0
        assert wilson(total, total)[1] == 1.0
    assert wilson(0, 0) == (0.0, 1.0)


def test_wilson_matches_the_textbook_values() -> None:
    assert wilson(80, 100) == pytest.approx((0.7112, 0.8666), abs=1e-4)
    assert wilson(0, 100)[1] == pytest.approx(0.0370, abs=1e-4)


def test_percentile_matches_numpy_linear_interpolation() -> None:
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6]
    for q in (0, 5, 50, 95, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    with pytest.raises(ValueError):
        percentile([], 50)
