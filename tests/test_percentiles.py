from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from frugal.percentiles import percentile


def test_known_values() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.5
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile([3.0], 95) == 3.0
    with pytest.raises(ValueError):
        percentile([], 50)


@given(
    values=st.lists(st.floats(0, 1e6), min_size=2, max_size=200),
    pct=st.integers(1, 99),
)
def test_agrees_with_the_standard_library(values: list[float], pct: int) -> None:
    expected = statistics.quantiles(values, n=100, method="inclusive")[pct - 1]
    assert percentile(values, pct) == pytest.approx(expected, rel=1e-9, abs=1e-6)
