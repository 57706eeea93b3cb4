"""The imaging figures as rich tables: time per source, memory and quality, then the targets per case
(real photographs first, synthetic after) and the verdict on each target."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from imgpipe_bench.imaging.cases import (
    AT_LEAST,
    CHAINED,
    IMPLEMENTATIONS,
    MEMORY_VS_NAIVE,
    NAIVE,
    OURS,
    PER_RENDITION,
    PSNR_GAP,
    REFERENCE,
    STAGED,
    SYNTHETIC,
    TARGETS,
    TIME_VS_CHAINED,
    TIME_VS_PER_RENDITION,
)
from imgpipe_bench.tables import number

_TIMED = (OURS, STAGED, PER_RENDITION, CHAINED, NAIVE)
_TARGET_COLUMNS = {
    TIME_VS_PER_RENDITION: "time ours / pyvips per rendition",
    TIME_VS_CHAINED: "time ours / pyvips chained",
    MEMORY_VS_NAIVE: "memory ours / naive",
    PSNR_GAP: "PSNR gap ours, dB",
}


def verdict(met: bool | None) -> str:
    """A target's verdict in rich markup: met (green), not met (red), n/a when not measured."""
    return "n/a" if met is None else ("[green]met[/]" if met else "[red]not met[/]")


def _bound(key: str) -> str:
    return f"{'>=' if key in AT_LEAST else '<='} {TARGETS[key]:g}"


def _rows(table: Table, cases: list[dict[str, Any]], row: Any) -> Table:
    """One row per case, with a section line between the real photographs and the synthetic cases."""
    for n, case in enumerate(cases):
        if n and case["kind"] == SYNTHETIC and cases[n - 1]["kind"] != SYNTHETIC:
            table.add_section()
        table.add_row(*row(case))
    return table


def _source(case: dict[str, Any]) -> str:
    return f"{escape(case['label'])}\n{case['width']}x{case['height']}, {case['source_bytes']:,} B"


def _time_table(cases: list[dict[str, Any]]) -> Table:
    """Median wall (CPU) ms and output bytes per implementation, and the staged bytes."""
    table = Table(title="whole job per source: median wall ms (median CPU ms); bytes of the three JPEGs")
    table.add_column("case")
    for column in (*_TIMED, "staged (lossless) bytes"):
        table.add_column(column, justify="right")

    def row(case: dict[str, Any]) -> list[str]:
        found = case["impls"]

        def cell(impl: str) -> str:
            if impl not in found:
                return "-"
            f = found[impl]
            return f"{f['median_ms']:.0f} ({f['cpu_ms']:.0f})\n{f['bytes_out']:,} B"

        return [_source(case), *(cell(i) for i in _TIMED), f"{case['staged_bytes']:,} B"]

    return _rows(table, cases, row)


def _memory_quality_table(cases: list[dict[str, Any]]) -> Table:
    """Peak added RSS per implementation (ours per function and summed) and the PSNR gaps."""
    table = Table(
        title="peak added RSS of the whole job, MiB (fresh process each; ours: larger function, resize / watermark, "
        "sum); PSNR gap to the reference pipeline, dB, worst width"
    )
    table.add_column("case")
    for column in (
        f"RSS {OURS}",
        *(f"RSS {i}" for i in IMPLEMENTATIONS[1:]),
        "ours sum / naive",
        f"gap {OURS}",
        f"gap {PER_RENDITION}",
        f"gap {CHAINED}",
        "PSNR by width: ours / ref",
    ):
        table.add_column(column, justify="right")

    def row(case: dict[str, Any]) -> list[str]:
        found, ratios = case["impls"], case["ratios"]
        ours = found.get(OURS, {})
        parts = ours.get("peak_by_function_mb")
        rss = number(ours.get("peak_added_mb"), ".1f")
        if parts:
            rss += f"\n({parts['resize']:.1f} / {parts['watermark']:.1f}, {ours['peak_sum_mb']:.1f})"
        ref = case.get(REFERENCE, {}).get("psnr_jpeg_by_width_db", {})
        by_width = ", ".join(
            f"{w}: {v:.2f} / {ref[w]:.2f}" for w, v in ours.get("psnr_jpeg_by_width_db", {}).items() if w in ref
        )

        def gap(impl: str) -> str:
            f = found.get(impl, {})
            return f"{number(f.get('psnr_worst_gap_db'), '+.2f')} ({number(f.get('psnr_worst_gap_width'), 'd')})"

        return [
            escape(case["case"]),
            rss,
            *(number(found.get(i, {}).get("peak_added_mb"), ".1f") for i in IMPLEMENTATIONS[1:]),
            number(ratios["memory_ours_sum_vs_naive"], ".2f"),
            *(gap(i) for i in (OURS, PER_RENDITION, CHAINED)),
            by_width or "-",
        ]

    return _rows(table, cases, row)


def _targets_table(cases: list[dict[str, Any]]) -> Table:
    """The four targets per case: the figure (its name in --json) and met / not met."""
    table = Table(title="targets per case (ratios of figures measured side by side in this run)")
    table.add_column("case")
    for key, name in _TARGET_COLUMNS.items():
        table.add_column(f"{name}\n{key} {_bound(key)}", justify="right")

    def row(case: dict[str, Any]) -> list[str]:
        ratios, met = case["ratios"], case["targets_met"]
        fmt = {PSNR_GAP: "+.2f"}
        return [
            escape(case["case"]),
            *(f"{number(ratios[key], fmt.get(key, '.2f'))} {verdict(met[key])}" for key in _TARGET_COLUMNS),
        ]

    return _rows(table, cases, row)


def _verdicts(figures: dict[str, Any], console: Console) -> None:
    """For each target, the cases that meet it, miss it, or were not measured for it."""
    for key, found in figures.get("summary", {}).items():
        parts = []
        if found["met"]:
            parts.append(f"[green]met[/] for {escape(', '.join(found['met']))}")
        if found["not_met"]:
            parts.append(f"[red]not met[/] for {escape(', '.join(found['not_met']))}")
        if found["not_measured"]:
            parts.append(f"not measured for {escape(', '.join(found['not_measured']))}")
        console.print(f"target {key} {_bound(key)}: " + "; ".join(parts))


def render(figures: dict[str, Any], console: Console) -> None:
    """Print how the figures were made, the three tables and the verdict on each target."""
    v, s = figures["versions"], figures["settings"]
    console.print(
        f"Python {v['python']}, Pillow {v['pillow']}, pyvips {v['pyvips'] or '-'} (libvips {v['libvips'] or '-'}); "
        f"{s['repeats']} interleaved repetitions per case; {s['pinning']}"
    )
    console.print(escape(f"{s['threads']} (libvips reports {s.get('vips_concurrency')})"))
    console.print(escape(s["cpu_time"]))
    console.print(escape(figures["photos"]["note"]))
    for impl, why in figures["skipped"].items():
        console.print(f"[yellow]{escape(impl)} skipped:[/] {escape(why)}")
    cases = figures["cases"]
    console.print(_time_table(cases))
    console.print(_memory_quality_table(cases))
    methods = {c["memory_method"] for c in cases if "memory_method" in c}
    console.print(f"memory: {', '.join(sorted(methods)) or 'not measured'}")
    console.print(
        "PSNR gap: the rendition as JPEG (no watermark), decoded, against a float LANCZOS resize of the full "
        "decode (mode F per channel), minus the same for that reference's own JPEG; ours judged on its worst width"
    )
    console.print(_targets_table(cases))
    _verdicts(figures, console)
    if figures.get("plot"):
        console.print(f"plot: {figures['plot']}")
