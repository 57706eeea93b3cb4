"""The imaging benchmark's parts on small images: every figure of a case, the pyvips chained baseline, the
float PSNR reference, the sources (photographs, derived cases, synthetic ones), the pinning decision and the
printed tables. One repetition where the code allows it (the command's minimum is 5).

No timing is asserted: figures are for ``imgpipe bench imaging`` to print.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from imgpipe_bench.imaging import cases, implementations, machine, measure, quality, sources, targets
from imgpipe_bench.imaging.render import render
from imgpipe_bench.photos import photo
from pipeline import imaging

#: Just wide enough for the 1024 px rendition whose quality is measured.
CASE = cases.CASES_BY_NAME["jpeg-12mp"].scaled((1280, 960))
#: Wide enough for all three renditions.
WIDE = cases.CASES_BY_NAME["jpeg-12mp"].scaled((2600, 1950))
RATIOS = (
    "time_ours_vs_pyvips_per_rendition",
    "time_ours_vs_pyvips_chained",
    "cpu_ours_vs_pyvips_per_rendition",
    "cpu_ours_vs_pyvips_chained",
    "time_ours_vs_naive",
    "memory_ours_vs_naive",
    "memory_ours_sum_vs_naive",
    "psnr_worst_gap_db",
    "psnr_worst_gap_db_pyvips_per_rendition",
    "psnr_worst_gap_db_pyvips_chained",
)


@pytest.fixture(scope="module")
def vips() -> Iterator[Any]:
    """pyvips; the libvips concurrency and VIPS_CONCURRENCY the bench sets are restored after this module."""
    module, why = implementations.pyvips_module()
    assert module is not None, why  # pyvips and pyvips-binary are dependencies of the project
    threads = module.concurrency_get()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VIPS_CONCURRENCY", os.environ.get("VIPS_CONCURRENCY", ""))
        yield module
    module.concurrency_set(threads)


@pytest.fixture(scope="module")
def figures(vips: Any) -> dict[str, Any]:
    return measure.measure_case(CASE, cases.encode_source(CASE), repeats=1)


def _jpeg_size(body: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(body)) as img:
        assert img.format == "JPEG"
        return img.size


def test_every_implementation_has_numeric_times_memory_and_bytes(figures: dict[str, Any]) -> None:
    assert set(figures["impls"]) == {*cases.IMPLEMENTATIONS, cases.STAGED}
    for name, impl in figures["impls"].items():
        for key in ("median_ms", "min_ms", "cpu_ms", "bytes_out"):
            assert isinstance(impl[key], int | float), (name, key)
            assert impl[key] > 0, (name, key)
        assert len(impl["times_ms"]) == len(impl["cpu_times_ms"]) == 1
        assert impl["widths"] == [1280, 1024, 320]  # never upscaled to 2048
        if name != cases.STAGED:
            assert impl["peak_added_mb"] >= 0
    ours = figures["impls"][cases.OURS]
    steps = ours["peak_by_function_mb"]
    assert set(steps) == {"resize", "watermark"}
    assert ours["peak_added_mb"] == max(steps.values())
    assert ours["peak_sum_mb"] == pytest.approx(steps["resize"] + steps["watermark"], abs=0.11)
    # the lossless intermediates are far larger than the JPEGs they become
    assert figures["staged_bytes"] > 3 * ours["bytes_out"]


def test_ratios_and_verdicts_are_named_and_numeric(figures: dict[str, Any]) -> None:
    ratios, met = figures["ratios"], figures["targets_met"]
    for key in RATIOS:
        assert isinstance(ratios[key], int | float), key
        assert math.isfinite(ratios[key]), key
    assert ratios["psnr_worst_gap_width"] == 1024  # the only quality width of a 1280 px source
    assert set(met) == set(cases.TARGETS)
    assert all(isinstance(value, bool) for value in met.values())
    ours = figures["impls"][cases.OURS]
    assert ratios["time_ours_vs_pyvips_chained"] == pytest.approx(
        ours["median_ms"] / figures["impls"][cases.CHAINED]["median_ms"], abs=1e-3
    )
    assert met["psnr_worst_gap_db"] is (ratios["psnr_worst_gap_db"] >= -0.3)
    assert figures["reference"]["psnr_jpeg_by_width_db"]["1024"] > 25
    json.dumps(figures, allow_nan=False)


def test_the_chained_baseline_gives_three_jpegs_of_the_right_widths(vips: Any) -> None:
    data = cases.encode_source(WIDE)
    outputs = implementations.runner(cases.CHAINED, vips)(data)
    assert sorted(outputs) == [320, 1024, 2048]
    for width, body in outputs.items():
        assert _jpeg_size(body) == (width, imaging.scaled_height(2600, 1950, width))
    small = implementations.runner(cases.CHAINED, vips)(cases.encode_source(CASE))
    assert {width: _jpeg_size(body)[0] for width, body in small.items()} == {1280: 1280, 1024: 1024, 320: 320}


def test_the_chained_baseline_decodes_once_the_per_rendition_one_per_rendition(
    vips: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = cases.encode_source(WIDE)
    calls: list[int] = []
    thumbnail = vips.Image.thumbnail_buffer

    def counted(buffer: bytes, width: int, **kwargs: Any) -> Any:
        calls.append(width)
        return thumbnail(buffer, width, **kwargs)

    monkeypatch.setattr(vips.Image, "thumbnail_buffer", counted)
    implementations.runner(cases.CHAINED, vips)(data)
    assert calls == [2048]
    calls.clear()
    implementations.runner(cases.PER_RENDITION, vips)(data)
    assert calls == [2048, 1024, 320]


def test_the_psnr_gap_is_nothing_for_the_reference_itself() -> None:
    data = cases.encode_source(CASE)
    refs = quality.References(data)
    ref = refs((1024, 768))
    assert ref.dtype == np.float32
    assert ref.shape == (768, 1024, 3)
    assert ref.min() >= 0
    assert ref.max() <= 255
    rounded = Image.fromarray(np.rint(ref).astype(np.uint8), "RGB")
    assert 55 < quality.psnr_float(rounded, ref) < math.inf  # rounding only
    found = quality.gaps(refs, {1024: quality.reference_jpeg(ref)})
    assert found["psnr_gap_by_width_db"] == {"1024": 0.0}
    assert found["psnr_worst_gap_db"] == 0.0


def test_the_psnr_gap_sees_a_poor_resampler() -> None:
    data = cases.encode_source(CASE)
    refs = quality.References(data)
    with Image.open(io.BytesIO(data)) as source:
        nearest = source.resize((1024, 768), Image.Resampling.NEAREST)
        lanczos = source.resize((1024, 768), Image.Resampling.LANCZOS)  # 8 bits between the two passes
    bodies = {}
    for name, resized in (("nearest", nearest), ("lanczos", lanczos)):
        buf = io.BytesIO()
        resized.save(buf, "JPEG", quality=cases.defaults().enc.jpeg_quality)
        bodies[name] = buf.getvalue()
    assert quality.gaps(refs, {1024: bodies["nearest"]})["psnr_worst_gap_db"] < -1.0
    assert abs(quality.gaps(refs, {1024: bodies["lanczos"]})["psnr_worst_gap_db"]) < 0.15


def test_quality_is_measured_at_both_quality_widths_and_judged_on_the_worst(vips: Any) -> None:
    found = quality.quality(cases.encode_source(WIDE), vips)
    assert set(found) == {cases.OURS, cases.PER_RENDITION, cases.CHAINED, cases.REFERENCE}
    for impl in (cases.OURS, cases.PER_RENDITION, cases.CHAINED):
        gaps = found[impl]["psnr_gap_by_width_db"]
        assert set(gaps) == {"2048", "1024"}
        assert found[impl]["psnr_worst_gap_db"] == min(gaps.values())
        assert str(found[impl]["psnr_worst_gap_width"]) in gaps
    assert set(found[cases.REFERENCE]["psnr_jpeg_by_width_db"]) == {"2048", "1024"}


def test_verdicts_follow_the_targets() -> None:
    impls = {
        cases.OURS: {"median_ms": 50.0, "cpu_ms": 50.0, "peak_added_mb": 40.0, "peak_sum_mb": 70.0},
        cases.PER_RENDITION: {"median_ms": 100.0, "cpu_ms": 100.0},
        cases.CHAINED: {"median_ms": 49.0, "cpu_ms": 49.0},
        cases.NAIVE: {"median_ms": 400.0, "peak_added_mb": 80.0},
    }
    impls[cases.OURS] |= {"psnr_worst_gap_db": -0.3, "psnr_worst_gap_width": 2048}
    ratios, met = targets.judge(impls)
    assert ratios["time_ours_vs_pyvips_per_rendition"] == 0.5
    assert ratios["memory_ours_vs_naive"] == 0.5
    assert ratios["memory_ours_sum_vs_naive"] == 0.875
    assert met == {
        "time_ours_vs_pyvips_per_rendition": True,
        "time_ours_vs_pyvips_chained": False,
        "memory_ours_vs_naive": True,
        "psnr_worst_gap_db": True,
    }
    impls[cases.OURS]["psnr_worst_gap_db"] = -0.31
    assert targets.judge(impls)[1]["psnr_worst_gap_db"] is False
    ratios, met = targets.judge({cases.OURS: impls[cases.OURS]})
    assert ratios["time_ours_vs_pyvips_chained"] is None
    assert met["time_ours_vs_pyvips_chained"] is None


def _save_photo(path: Path, size: tuple[int, int], seed: int = 5) -> None:
    photo(size, seed).save(path, "JPEG", quality=90)


def test_sources_put_photographs_first_and_derive_cases_from_the_largest(tmp_path: Path) -> None:
    _save_photo(tmp_path / "small.jpg", (640, 480))
    _save_photo(tmp_path / "large.jpg", (1500, 1000))
    (tmp_path / "notes.txt").write_text("not an image")
    synthetic = (CASE,)
    found = sources.sources(tmp_path, synthetic)
    assert [case.name for case, _ in found.cases] == ["large", "small", CASE.name]
    assert [case.kind for case, _ in found.cases] == [cases.PHOTO, cases.PHOTO, cases.SYNTHETIC]
    assert "none derived" in found.note  # 1.5 MP: too small to scale to 12 and 24 MP
    base, make = found.cases[0]
    derived = sources.derived_cases(
        base, make(), [("1mp-jpeg", 1.0, "JPEG", (("quality", 90),)), ("png", 0.5, "PNG", ())]
    )
    assert [(case.name, case.kind, case.format) for case, _ in derived] == [
        ("large-1mp-jpeg", cases.DERIVED, "JPEG"),
        ("large-png", cases.DERIVED, "PNG"),
    ]
    for case, data in derived:
        with Image.open(io.BytesIO(data)) as img:
            assert img.size == case.size
            assert img.format == case.format
        assert abs(case.size[0] / case.size[1] - 1.5) < 0.01  # aspect kept
    assert derived[0][0].size[0] * derived[0][0].size[1] == pytest.approx(1e6, rel=0.01)


def test_without_photographs_the_bench_says_so_in_one_line(tmp_path: Path) -> None:
    found = sources.sources(tmp_path, (CASE,))
    assert [case.kind for case, _ in found.cases] == [cases.SYNTHETIC]
    assert found.note.startswith(f"no real photograph found in {tmp_path}: synthetic cases only")
    assert "\n" not in found.note


def test_a_core_is_pinned_only_when_idle() -> None:
    assert machine.choose_core({0, 1}, {0: 0.5, 1: 0.95}).cpu == 1
    busy = machine.choose_core({0, 1}, {0: 0.5, 1: 0.6})
    assert busy.cpu is None
    assert busy.how.startswith("not pinned")
    assert machine.choose_core({0}, {}).cpu is None
    idle = machine.idle_fractions(0.05)
    assert idle
    assert all(0 <= value <= 1 for value in idle.values())


def test_libvips_runs_one_thread(vips: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIPS_CONCURRENCY", "4")
    assert machine.one_vips_thread(vips) == 1
    assert os.environ["VIPS_CONCURRENCY"] == "1"


def test_the_whole_run_prints_photographs_first_with_verdicts(vips: Any, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    _save_photo(photos / "photo.jpg", (1100, 800))
    plot = tmp_path / "plot.png"
    figures = measure.measure_all(plot, repeats=1, images=photos, synthetic=(CASE,), memory=False)
    with Image.open(plot) as chart:
        assert chart.format == "PNG"
    assert [c["case"] for c in figures["cases"]] == ["photo", CASE.name]
    assert figures["settings"]["vips_concurrency"] == 1
    assert figures["settings"]["pinning"].startswith(("pinned to CPU", "not pinned"))
    assert figures["targets"] == cases.TARGETS
    assert figures["summary"]["memory_ours_vs_naive"]["not_measured"] == ["photo", CASE.name]
    json.dumps(figures, allow_nan=False)
    console = Console(file=io.StringIO(), width=400)
    render(figures, console)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "1 real photograph(s) from" in text
    assert "VIPS_CONCURRENCY=1" in text
    assert "RUSAGE_SELF" in text
    targets_table = text[text.index("targets per case") :]
    assert targets_table.index("photo ") < targets_table.index(CASE.name)
    assert "time_ours_vs_pyvips_chained <= 1" in targets_table
    assert "met" in targets_table
    assert "n/a" in targets_table
