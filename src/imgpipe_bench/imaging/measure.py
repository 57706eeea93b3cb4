"""Measuring the implementations: interleaved times, peak memory and quality per case, judged against the
targets (``targets``), and the whole run over every source (``sources``)."""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from imgpipe_bench.imaging import machine
from imgpipe_bench.imaging.cases import (
    CASES,
    IMPLEMENTATIONS,
    OURS,
    OURS_STEPS,
    QUALITY_WIDTHS,
    REFERENCE,
    REPEATS,
    STAGED,
    TARGETS,
    TIME_ONLY,
    VIPS_IMPLEMENTATIONS,
    Case,
    defaults,
)
from imgpipe_bench.imaging.implementations import pyvips_module, runner, staged_bytes
from imgpipe_bench.imaging.memory import peak_memory
from imgpipe_bench.imaging.plot import draw_plot
from imgpipe_bench.imaging.quality import quality
from imgpipe_bench.imaging.sources import sources
from imgpipe_bench.imaging.targets import judge, summary

Progress = Callable[[str], None]


def _times(
    runners: dict[str, Callable[[bytes], dict[int, bytes]]],
    data: bytes,
    repeats: int,
    progress: Callable[[int], None] | None,
) -> dict[str, dict[str, Any]]:
    """Median wall and CPU time of each runner over ``repeats`` interleaved repetitions, after one
    untimed warm-up that also gives the outputs' widths and sizes."""
    impls = list(runners)
    outputs = {impl: run(data) for impl, run in runners.items()}
    wall: dict[str, list[float]] = {impl: [] for impl in impls}
    cpu: dict[str, list[float]] = {impl: [] for impl in impls}
    for rep in range(repeats):
        shift = rep % len(impls)
        for impl in impls[shift:] + impls[:shift]:  # rotate the order every repetition
            gc.collect()
            start, start_cpu = time.perf_counter(), machine.cpu_seconds()
            runners[impl](data)
            wall[impl].append((time.perf_counter() - start) * 1000)
            cpu[impl].append((machine.cpu_seconds() - start_cpu) * 1000)  # every thread of this process
        if progress:
            progress(rep)
    return {
        impl: {
            "median_ms": round(statistics.median(wall[impl]), 1),
            "min_ms": round(min(wall[impl]), 1),
            "times_ms": [round(t, 1) for t in wall[impl]],
            "cpu_ms": round(statistics.median(cpu[impl]), 1),
            "cpu_times_ms": [round(t, 1) for t in cpu[impl]],
            "widths": sorted(outputs[impl], reverse=True),
            "bytes_out": sum(len(body) for body in outputs[impl].values()),
        }
        for impl in impls
    }


def _memory(case: Case, data: bytes, impls: Sequence[str], figures: dict[str, Any], progress: Progress | None) -> None:
    """Peak added RSS of each implementation's whole job (ours: of each of its two Lambda functions, the
    larger and the sum) into ``figures``, from one fresh subprocess per implementation or step."""
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
                mem = peak_memory(part, case.format, source)
                peaks[part] = mem["peak_added_mb"]
                figures["memory_method"] = mem["method"]
            figures["impls"][impl]["peak_added_mb"] = max(peaks.values())
            if impl == OURS:
                figures["impls"][impl]["peak_by_function_mb"] = {k.split(":")[1]: v for k, v in peaks.items()}
                figures["impls"][impl]["peak_sum_mb"] = round(sum(peaks.values()), 1)


def measure_case(
    case: Case,
    data: bytes,
    *,
    impls: Sequence[str] = (*IMPLEMENTATIONS, *TIME_ONLY),
    repeats: int = REPEATS,
    memory: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Times (interleaved), peak memory (subprocesses) and PSNR of ``impls`` on one source, with the
    ratios and verdicts of ``targets.judge``. The pyvips implementations are left out, with the reason,
    when pyvips cannot be imported. ``repeats`` has no minimum here (the command's is 5)."""
    vips, why = pyvips_module() if set(impls) & set(VIPS_IMPLEMENTATIONS) else (None, None)
    machine.one_vips_thread(vips)
    skipped = {impl: why for impl in impls if why and impl in VIPS_IMPLEMENTATIONS}
    impls = [impl for impl in impls if impl not in skipped]
    runners = {impl: runner(impl, vips) for impl in impls}

    def repetition(rep: int) -> None:
        if progress:
            progress(f"{case.name}: repetition {rep + 1}/{repeats}")

    figures: dict[str, Any] = {
        "case": case.name,
        "label": case.label,
        "kind": case.kind,
        "width": case.size[0],
        "height": case.size[1],
        "format": case.format,
        "source_bytes": len(data),
        "staged_bytes": staged_bytes(data),
        "skipped": skipped,
        "impls": _times(runners, data, repeats, repetition),
    }
    if progress:
        progress(f"{case.name}: quality against the float reference")
    for impl, values in quality(data, vips, impls).items():
        if impl == REFERENCE:
            figures[REFERENCE] = values
        elif impl in figures["impls"]:
            figures["impls"][impl].update(values)
    if memory:
        _memory(case, data, impls, figures, progress)
    figures["ratios"], figures["targets_met"] = judge(figures["impls"])
    return figures


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
        "timing": "median wall time of interleaved repetitions in one process, after one warm-up run",
        "cpu_time": machine.CPU_TIME,
        "threads": machine.THREADS,
        "staging": f"{STAGED!r} adds the lossless intermediate between resize and watermark (time only); "
        "staged_bytes: the intermediates' bytes (imaging.to_lossless) per source",
        "memory": "peak added RSS of the whole job in a fresh process per implementation; ours per Lambda "
        "function (the resize step, and the watermark step reading the intermediates), the larger compared, "
        "the sum alongside",
        "quality": "PSNR of each rendition of "
        f"{list(QUALITY_WIDTHS)} px as JPEG (no watermark), decoded, against a float LANCZOS reference "
        "(full decode, mode F per channel), minus the PSNR of the reference's own JPEG; the worst width judged",
    }


def measure_all(
    plot: Path | None,
    repeats: int = REPEATS,
    images: Path | None = None,
    synthetic: Sequence[Case] = CASES,
    memory: bool = True,
) -> dict[str, Any]:
    """Measure every source (``sources.sources(images, synthetic)``: real photographs first), with
    progress on stderr; draw the time chart to ``plot`` when given; return the figures, which
    ``render.render()`` prints as tables."""
    status = Console(stderr=True)
    machine.one_vips_thread()  # before libvips starts, here and in the memory subprocesses
    vips, why = pyvips_module()
    threads = machine.one_vips_thread(vips)
    with status.status("finding the sources, making the derived ones"):
        found = sources(images, synthetic)
    status.print(found.note)
    figures: dict[str, Any] = {
        "versions": machine.versions(vips),
        "machine": machine.machine(),
        "settings": _settings(repeats) | {"vips_concurrency": threads},
        "targets": dict(TARGETS),
        "photos": {"directory": found.directory, "found": found.photos, "note": found.note},
        "skipped": dict.fromkeys(VIPS_IMPLEMENTATIONS, why) if why else {},
        "cases": [],
    }
    with machine.one_idle_core() as pinning, status.status("benchmark") as spinner:
        figures["settings"]["cpu_affinity"] = None if pinning.cpu is None else [pinning.cpu]
        figures["settings"]["pinning"] = pinning.how
        status.print(pinning.how)
        for case, make in found.cases:
            spinner.update(f"{case.name}: reading the source")
            case_figures = measure_case(case, make(), repeats=repeats, memory=memory, progress=spinner.update)
            figures["cases"].append(case_figures)
    figures["settings"]["vips_concurrency_at_end"] = None if vips is None else int(vips.concurrency_get())
    figures["summary"] = summary(figures["cases"])
    if plot is not None:
        draw_plot(figures, plot)
        figures["plot"] = str(plot)
    return figures
