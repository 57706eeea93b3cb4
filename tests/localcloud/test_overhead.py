"""localcloud.overhead: the figures come out, whole and sensible (their values are the benchmarks' business)."""

from __future__ import annotations

import math

import pytest

from localcloud.overhead import measure_orchestration_overhead, percentile


@pytest.mark.slow
def test_orchestration_overhead_figures() -> None:
    figures = measure_orchestration_overhead(executions=3)

    assert {"executions", "median_ms", "p95_ms", "mean_ms"} <= set(figures)
    assert figures["executions"] == 3
    for name, value in figures.items():
        assert isinstance(value, float), name
        assert math.isfinite(value), name
        assert value > 0, name
    assert figures["p95_ms"] >= figures["median_ms"]


def test_orchestration_overhead_needs_an_execution() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        measure_orchestration_overhead(executions=0)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 0.5) == 10
    assert percentile(values, 0.95) == 19
    assert percentile(list(reversed(values)), 1.0) == 20
    assert percentile([7.0], 0.95) == 7
