"""imgpipe_bench.overhead: the figures come out, whole and sensible (their values are the benchmarks' business)."""

from __future__ import annotations

import math

import pytest

from imgpipe_bench.overhead import measure_orchestration_overhead, measure_throughput, percentile


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


@pytest.mark.slow
def test_throughput_figures_add_up() -> None:
    figures = measure_throughput(count=2, size=(800, 600))

    assert figures["images"] == 2
    assert figures["images_per_s"] == pytest.approx(2 / figures["seconds"])
    assert 0 < figures["p50_s"] <= figures["p95_s"] <= figures["seconds"]
    per_function = {name.split(":", 1)[1]: value for name, value in figures.items() if name.startswith("handler_s:")}
    logical = sorted(name.split("-")[1] for name in per_function)  # imgpipe-<LogicalId>-<suffix>
    assert logical == ["NotifyFunction", "ResizeFunction", "StoreFunction", "ValidateFunction", "WatermarkFunction"]
    assert figures["handler_s"] == pytest.approx(sum(per_function.values()))
    assert figures["worker_cpu_s"] > 0
    assert figures["cloud_cpu_s"] > 0
    assert figures["invocation_errors"] == 0


def test_throughput_needs_an_image() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        measure_throughput(count=0)
