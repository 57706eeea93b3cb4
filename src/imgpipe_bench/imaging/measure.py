"""Measuring the implementations: interleaved times, peak memory and quality per case, judged against
the targets, and the whole run over every case."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from imgpipe_bench.imaging.cases import (
    CASES,
    IMPLEMENTATIONS,
    MEMORY_RATIO_TARGET,
    MIN_REPEATS,
    NAIVE,
    OURS,
    OURS_STEPS,
    PSNR_MARGIN_DB,
    PYVIPS,
    QUALITY_WIDTHS,
    REFERENCE,
    REPEATS,
    STAGED,
    TIME_ONLY,
    TIME_RATIO_TARGET,
    Case,
    defaults,
    encode_source,
)
from imgpipe_bench.imaging.implementations import pyvips_module, runner
from imgpipe_bench.imaging.memory import peak_memory
from imgpipe_bench.imaging.plot import draw_plot
from imgpipe_bench.imaging.quality import quality

Progress = Callable[[str], None]


def _times(
    runners: dict[str, Callable[[bytes], dict[int, bytes]]],
    data: bytes,
    repeats: int,
    progress: Callable[[int], None] | None,
) -> dict[str, dict[str, Any]]:
    """Median wall and CPU time of each runner over ``repeats`` interleaved repetitions, after one
    untimed warm-up that also gives the outputs' sizes."""
    impls = list(runners)
    bytes_out = {impl: sum(len(body) for body in run(data).values()) for impl, run in runners.items()}
    times: dict[str, list[float]] = {impl: [] for impl in impls}
    cpu: dict[str, list[float]] = {impl: [] for impl in impls}
    for rep in range(repeats):
        shift = rep % len(impls)
        for impl in impls[shift:] + impls[:shift]:  # rotate the order every repetition
            gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            runners[impl](data)
            times[impl].append((time.perf_counter() - start) * 1000)
            cpu[impl].append((time.process_time() - start_cpu) * 1000)  # all threads of this process
        if progress:
            progress(rep)
    return {
        impl: {
            "median_ms": round(statistics.median(times[impl]), 1),
            "min_ms": round(min(times[impl]), 1),
            "times_ms": [round(t, 1) for t in times[impl]],
            "cpu_ms": round(statistics.median(cpu[impl]), 1),
            "bytes_out": bytes_out[impl],
        }
        for impl in impls
    }


def _memory(case: Case, data: bytes, impls: Sequence[str], figures: dict[str, Any], progress: Progress | None) -> None:
    """Peak added RSS of each implementation (ours: of each of its steps, the larger compared) into
    ``figures``, from one fresh subprocess per implementation or step."""
    with tempfile.TemporaryDirectory(prefix="imgpipe-bench-") as tmp:
        source = Path(tmp) / f"source.{case.format.lower()}"
        source.write_bytes(data)
        for impl in impls:
            if impl in TIME_ONLY:
                continue
            peaks: dict[str, float] = {}
            for part in OURS_STEPS if impl == OURS else (impl,):
                if progress:
                    progress(f"{case.name}: peak memory of {part}")
                mem = peak_memory(part, case, source)
                peaks[part] = mem["peak_added_mb"]
                figures["memory_method"] = mem["method"]
            figures["impls"][impl]["peak_added_mb"] = max(peaks.values())
            if impl == OURS:
                figures["impls"][impl]["peak_by_function_mb"] = {k.split(":")[1]: v for k, v in peaks.items()}


def measure_case(
    case: Case,
    data: bytes,
    *,
    impls: Sequence[str] = (*IMPLEMENTATIONS, *TIME_ONLY),
    repeats: int = REPEATS,
    memory: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Times (interleaved), peak memory (subprocess) and PSNR of ``impls`` on one source.

    ``pyvips`` is left out, with the reason, when it cannot be imported.
    """
    vips, why = pyvips_module() if PYVIPS in impls else (None, None)
    skipped = {PYVIPS: why} if why else {}
    impls = [impl for impl in impls if impl not in skipped]
    runners = {impl: runner(impl, vips) for impl in impls}

    def repetition(rep: int) -> None:
        if progress:
            progress(f"{case.name}: repetition {rep + 1}/{repeats}")

    figures: dict[str, Any] = {
        "case": case.name,
        "label": case.label,
        "width": case.size[0],
        "height": case.size[1],
        "format": case.format,
        "source_bytes": len(data),
        "skipped": skipped,
        "impls": _times(runners, data, repeats, repetition),
    }
    for impl, values in quality(data, vips).items():
        rounded = {key: _rounded(value) for key, value in values.items()}
        if impl == REFERENCE:
            figures[REFERENCE] = rounded
        elif impl in figures["impls"]:
            figures["impls"][impl].update(rounded)
    if memory:
        _memory(case, data, impls, figures, progress)
    figures["ratios"], figures["targets_met"] = judge(figures["impls"], figures.get(REFERENCE, {}))
    return figures


def _rounded(value: Any) -> Any:
    return {k: _rounded(v) for k, v in value.items()} if isinstance(value, dict) else round(value, 2)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def judge(
    impls: dict[str, dict[str, Any]], ref: dict[str, Any]
) -> tuple[dict[str, float | None], dict[str, bool | None]]:
    """Ratios and targets: time on median wall time (CPU time alongside), memory on peak added RSS,
    quality on the JPEG of each measured rendition against the reference (ours within 0.5 dB of the
    reference pipeline's own JPEG at every width; the worst width is the one reported)."""
    ours, vips, naive = impls.get(OURS, {}), impls.get(PYVIPS, {}), impls.get(NAIVE, {})
    ratios: dict[str, float | None] = {
        "time_ours_vs_pyvips": _ratio(ours.get("median_ms"), vips.get("median_ms")),
        "cpu_ours_vs_pyvips": _ratio(ours.get("cpu_ms"), vips.get("cpu_ms")),
        "time_ours_vs_naive": _ratio(ours.get("median_ms"), naive.get("median_ms")),
        "memory_ours_vs_naive": _ratio(ours.get("peak_added_mb"), naive.get("peak_added_mb")),
        "memory_ours_vs_pyvips": _ratio(ours.get("peak_added_mb"), vips.get("peak_added_mb")),
    }
    ours_by_width: dict[str, float] = ours.get("psnr_jpeg_by_width_db", {})
    ref_by_width: dict[str, float] = ref.get("psnr_jpeg_by_width_db", {})
    gaps = {  # two exact round trips (inf dB each) differ by nothing
        width: 0.0 if value == ref_by_width[width] else value - ref_by_width[width]
        for width, value in ours_by_width.items()
        if width in ref_by_width
    }
    worst = min(gaps, key=lambda width: gaps[width]) if gaps else None
    ratios["psnr_jpeg_ours_minus_reference_db"] = None if worst is None else round(gaps[worst], 2)
    ratios["psnr_jpeg_worst_width"] = None if worst is None else int(worst)
    gap = ours["psnr_db"] - vips["psnr_db"] if "psnr_db" in ours and "psnr_db" in vips else None
    ratios["psnr_ours_minus_pyvips_db"] = None if gap is None else round(gap, 2)
    time_ratio, mem_ratio = ratios["time_ours_vs_pyvips"], ratios["memory_ours_vs_naive"]
    psnr_gap = ratios["psnr_jpeg_ours_minus_reference_db"]
    met = {
        "time": None if time_ratio is None else time_ratio <= TIME_RATIO_TARGET,
        "memory": None if mem_ratio is None else mem_ratio <= MEMORY_RATIO_TARGET,
        "psnr": None if psnr_gap is None else psnr_gap >= -PSNR_MARGIN_DB,
    }
    return ratios, met


@contextmanager
def _one_core() -> Iterator[list[int] | None]:
    """Pin this process (and the memory subprocesses it starts) to one core, then restore."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {allowed[-1]})
    try:
        yield [allowed[-1]]
    finally:
        os.sched_setaffinity(0, allowed)


def _versions(vips: Any) -> dict[str, str | None]:
    from PIL import __version__ as pillow

    return {
        "python": platform.python_version(),
        "pillow": pillow,
        "pyvips": None if vips is None else str(vips.__version__),
        "libvips": None if vips is None else ".".join(str(vips.version(i)) for i in range(3)),
    }


def _summary(cases: list[dict[str, Any]], key: str) -> dict[str, Any]:
    verdicts = {c["case"]: c["targets_met"][key] for c in cases}
    return {
        "met": [name for name, met in verdicts.items() if met is True],
        "not_met": [name for name, met in verdicts.items() if met is False],
        "not_measured": [name for name, met in verdicts.items() if met is None],
    }


def _settings(repeats: int) -> dict[str, Any]:
    """How the figures are made, as the figures record it."""
    marks = defaults().marks
    return {
        "widths": list(defaults().widths),
        "jpeg_quality": defaults().enc.jpeg_quality,
        "watermark": (
            f"text {marks.text!r}, {marks.position}, opacity {marks.opacity}, on renditions >= {marks.min_width} px"
        ),
        "repeats": repeats,
        "sources": "synthetic, made in memory: gradients, shapes, fine lines, seeded grain",
        "timing": "median wall time of interleaved repetitions in one process, after one warm-up run",
        "staging": f"{STAGED!r} adds the lossless intermediate between resize and watermark (time only)",
        "memory": "peak added RSS in a fresh process per implementation; ours per Lambda function (the resize "
        "step, and the watermark step reading the intermediates), the larger of the two compared",
        "quality": "PSNR against a full-decode LANCZOS resize of the source to the same size (alpha "
        "flattened over white) of the 1024 px rendition: its pixels before watermark and encoding "
        "(psnr_db), and as JPEG q85 without watermark (psnr_jpeg_db; naive: the reference's own JPEG); "
        f"the JPEG figure also for each of {list(QUALITY_WIDTHS)} px (psnr_jpeg_by_width_db), the "
        "target judged on the worst",
    }


def measure_all(plot: Path | None, repeats: int = REPEATS) -> dict[str, Any]:
    """Measure every case (progress on stderr), draw the time chart to ``plot`` when given, and return
    the figures; ``render.render()`` prints them as tables."""
    repeats = max(MIN_REPEATS, repeats)
    status = Console(stderr=True)
    vips, why = pyvips_module()
    figures: dict[str, Any] = {
        "versions": _versions(vips),
        "settings": _settings(repeats),
        "targets": {
            "time_ours_vs_pyvips_max": TIME_RATIO_TARGET,
            "memory_ours_vs_naive_max": MEMORY_RATIO_TARGET,
            "psnr_jpeg_ours_below_reference_max_db": PSNR_MARGIN_DB,
        },
        "skipped": {PYVIPS: why} if why else {},
        "cases": [],
    }
    with _one_core() as cpus:
        figures["settings"]["cpu_affinity"] = cpus
        with status.status("benchmark") as spinner:
            for case in CASES:
                spinner.update(f"{case.name}: making the source")
                data = encode_source(case)
                figures["cases"].append(measure_case(case, data, repeats=repeats, progress=spinner.update))
    figures["summary"] = {key: _summary(figures["cases"], key) for key in ("time", "memory", "psnr")}
    if plot is not None:
        draw_plot(figures, plot)
        figures["plot"] = str(plot)
    return figures
