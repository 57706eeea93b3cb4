"""The imaging benchmark's per-case measurement runs on a small image and yields every figure.

The image is 1280x960: just wide enough for the 1024 px rendition whose quality is measured.

No timing is asserted: figures are for ``imgpipe bench imaging`` to print.
"""

from __future__ import annotations

import importlib.util

import pytest

from imgpipe_bench.imaging import cases, implementations, measure
from imgpipe_bench.imaging.quality import quality

CASE = cases.CASES_BY_NAME["jpeg-12mp"].scaled((1280, 960))


@pytest.fixture(scope="module")
def figures() -> dict:
    data = cases.encode_source(CASE)
    return measure.measure_case(CASE, data, impls=(cases.OURS, cases.NAIVE), repeats=2)


def test_each_implementation_has_positive_times_memory_and_bytes(figures: dict) -> None:
    assert set(figures["impls"]) == {cases.OURS, cases.NAIVE}
    for impl in figures["impls"].values():
        assert {"median_ms", "min_ms", "times_ms", "cpu_ms", "bytes_out", "peak_added_mb"} <= impl.keys()
        assert impl["median_ms"] > 0
        assert len(impl["times_ms"]) == 2
        assert all(t > 0 for t in impl["times_ms"])
        assert impl["bytes_out"] > 0
        assert impl["peak_added_mb"] >= 0


def test_quality_and_ratios_are_reported(figures: dict) -> None:
    ours = figures["impls"][cases.OURS]
    assert ours["psnr_db"] > 30
    assert ours["psnr_jpeg_db"] > 25
    assert figures["reference"]["psnr_jpeg_db"] > 25
    assert figures["ratios"]["memory_ours_vs_naive"] is not None
    assert figures["ratios"]["time_ours_vs_pyvips"] is None  # pyvips was not asked for
    assert set(figures["targets_met"]) == {"time", "memory", "psnr"}
    assert figures["targets_met"]["time"] is None


def test_the_outputs_are_the_three_renditions() -> None:
    data = cases.encode_source(CASE)
    assert sorted(implementations.run_ours(data)) == [320, 1024, 1280]  # never upscaled to 2048
    assert sorted(implementations.run_naive(data)) == [320, 1024, 1280]


def test_pyvips_when_importable() -> None:
    if importlib.util.find_spec("pyvips") is None:
        pytest.skip("pyvips is not installed (it is in the optional 'bench' extra)")
    vips, why = implementations.pyvips_module()
    if vips is None:
        pytest.skip(f"pyvips cannot be used here: {why}")
    data = cases.encode_source(CASE)
    assert sorted(implementations.run_pyvips(data, vips)) == [320, 1024, 1280]


def test_quality_is_judged_on_the_worst_measured_rendition() -> None:
    """Within the margin at 1024 px does not pass a source whose 2048 px rendition is below it."""
    by_width = {"2048": 36.0, "1024": 35.1}
    ours = {"psnr_db": 44.0, "psnr_jpeg_db": 35.1, "psnr_jpeg_by_width_db": by_width}
    reference = {"psnr_jpeg_db": 35.2, "psnr_jpeg_by_width_db": {"2048": 37.0, "1024": 35.2}}
    ratios, met = measure.judge({cases.OURS: ours}, reference)
    assert ratios["psnr_jpeg_ours_minus_reference_db"] == -1.0
    assert ratios["psnr_jpeg_worst_width"] == 2048
    assert met["psnr"] is False
    by_width["2048"] = 36.6
    ratios, met = measure.judge({cases.OURS: ours}, reference)
    assert ratios["psnr_jpeg_worst_width"] == 2048
    assert met["psnr"] is True


def test_quality_is_measured_at_every_quality_width() -> None:
    case = cases.CASES_BY_NAME["webp-12mp"].scaled((2560, 1920))
    figures = quality(cases.encode_source(case), None)
    for impl in (cases.OURS, cases.REFERENCE):
        assert set(figures[impl]["psnr_jpeg_by_width_db"]) == {"2048", "1024"}
        assert all(value > 25 for value in figures[impl]["psnr_jpeg_by_width_db"].values())
    assert figures[cases.OURS]["psnr_jpeg_db"] == figures[cases.OURS]["psnr_jpeg_by_width_db"]["1024"]


def test_two_exact_round_trips_differ_by_nothing() -> None:
    inf = float("inf")
    ours = {"psnr_db": inf, "psnr_jpeg_db": inf, "psnr_jpeg_by_width_db": {"1024": inf}}
    ratios, met = measure.judge({cases.OURS: ours}, {"psnr_jpeg_db": inf, "psnr_jpeg_by_width_db": {"1024": inf}})
    assert ratios["psnr_jpeg_ours_minus_reference_db"] == 0.0
    assert met["psnr"] is True
