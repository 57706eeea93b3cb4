"""The imaging figures as rich tables: time per source, then memory and quality, then the verdicts."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from imgpipe_bench.imaging.cases import (
    MEMORY_RATIO_TARGET,
    NAIVE,
    OURS,
    PSNR_MARGIN_DB,
    PYVIPS,
    REFERENCE,
    STAGED,
    TIME_RATIO_TARGET,
)
from imgpipe_bench.tables import mark, number

_IMPLS = (OURS, STAGED, PYVIPS, NAIVE)


def _by_function(ours: dict[str, Any]) -> str:
    parts = ours.get("peak_by_function_mb")
    if not parts:
        return number(ours.get("peak_added_mb"), ".1f")
    return f"{ours['peak_added_mb']:.1f} ({parts['resize']:.1f} / {parts['watermark']:.1f})"


def _time_table(cases: list[dict[str, Any]]) -> Table:
    """Median wall (and CPU) ms and output bytes per implementation, and ours/pyvips against the target."""
    times = Table(title="wall time per source, ms: median (CPU median); bytes of the three JPEGs")
    times.add_column("case")
    for column in (*_IMPLS, "ours/pyvips wall (cpu)", f"<= {TIME_RATIO_TARGET}"):
        times.add_column(column, justify="right")
    for case in cases:
        found, ratios = case["impls"], case["ratios"]

        def cell(impl: str, found: dict[str, Any] = found) -> str:
            if impl not in found:
                return "-"
            f = found[impl]
            return f"{f['median_ms']:.0f} ({f['cpu_ms']:.0f})\n{f['bytes_out']:,} B"

        times.add_row(
            f"{case['label']}\n{case['width']}x{case['height']}, {case['source_bytes']:,} B",
            *(cell(i) for i in _IMPLS),
            f"{number(ratios['time_ours_vs_pyvips'], '.2f')} ({number(ratios['cpu_ours_vs_pyvips'], '.2f')})",
            mark(case["targets_met"]["time"]),
        )
    return times


def _quality_table(cases: list[dict[str, Any]]) -> Table:
    """Peak added RSS and PSNR per implementation, with the memory and quality verdicts."""
    quality = Table(
        title="peak added RSS, MiB (fresh subprocess each); PSNR, dB: 1024 px rendition, and the worst width"
    )
    quality.add_column("case")
    for column in (
        f"RSS {OURS} (resize / watermark)",
        f"RSS {PYVIPS}",
        f"RSS {NAIVE}",
        "ours/naive",
        f"<= {MEMORY_RATIO_TARGET}",
        "px ours",
        "px pyvips",
        "jpeg ours",
        "jpeg pyvips",
        "jpeg ref",
        "worst: width, ours - ref",
        f"ours >= ref - {PSNR_MARGIN_DB}",
    ):
        quality.add_column(column, justify="right")
    for case in cases:
        found, ratios, met = case["impls"], case["ratios"], case["targets_met"]

        def field(impl: str, key: str, fmt: str, found: dict[str, Any] = found) -> str:
            return number(found.get(impl, {}).get(key), fmt)

        quality.add_row(
            case["case"],
            _by_function(found.get(OURS, {})),
            *(field(i, "peak_added_mb", ".1f") for i in (PYVIPS, NAIVE)),
            number(ratios["memory_ours_vs_naive"], ".2f"),
            mark(met["memory"]),
            field(OURS, "psnr_db", ".2f"),
            field(PYVIPS, "psnr_db", ".2f"),
            field(OURS, "psnr_jpeg_db", ".2f"),
            field(PYVIPS, "psnr_jpeg_db", ".2f"),
            number(case.get(REFERENCE, {}).get("psnr_jpeg_db"), ".2f"),
            f"{number(ratios['psnr_jpeg_worst_width'], 'd')}: "
            f"{number(ratios['psnr_jpeg_ours_minus_reference_db'], '+.2f')}",
            mark(met["psnr"]),
        )
    return quality


def _verdicts(figures: dict[str, Any], console: Console) -> None:
    """For each target, the cases that meet it, miss it, or were not measured for it."""
    for key, verdict in figures.get("summary", {}).items():
        parts = []
        if verdict["met"]:
            parts.append(f"[green]met[/] for {', '.join(verdict['met'])}")
        if verdict["not_met"]:
            parts.append(f"[red]not met[/] for {', '.join(verdict['not_met'])}")
        if verdict["not_measured"]:
            parts.append(f"not measured for {', '.join(verdict['not_measured'])}")
        console.print(f"target {key}: " + "; ".join(parts))


def render(figures: dict[str, Any], console: Console) -> None:
    """Print the figures as two tables and the verdict on each target."""
    v = figures["versions"]
    cpus = figures["settings"].get("cpu_affinity")
    console.print(
        f"Python {v['python']}, Pillow {v['pillow']}, pyvips {v['pyvips'] or '-'} (libvips {v['libvips'] or '-'}); "
        f"{figures['settings']['repeats']} interleaved repetitions per case, "
        + (f"pinned to CPU {cpus[0]}" if cpus else "not pinned")
    )
    for impl, why in figures["skipped"].items():
        console.print(f"[yellow]{escape(impl)} skipped:[/] {escape(why)}")
    console.print(_time_table(figures["cases"]))
    console.print(_quality_table(figures["cases"]))
    methods = {c["memory_method"] for c in figures["cases"] if "memory_method" in c}
    console.print(f"memory: {', '.join(sorted(methods)) or 'not measured'}")
    console.print(
        "px: the rendition's pixels; jpeg: the rendition as JPEG q85 without watermark; both against a "
        "full-decode LANCZOS resize (jpeg ref: that reference's own JPEG q85)"
    )
    _verdicts(figures, console)
    if figures.get("plot"):
        console.print(f"plot: {figures['plot']}")
