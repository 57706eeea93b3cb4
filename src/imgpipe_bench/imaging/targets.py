"""The ratios each case is judged on, measured side by side in one run, and the verdicts on the targets."""

from __future__ import annotations

from typing import Any

from imgpipe_bench.imaging.cases import (
    AT_LEAST,
    CHAINED,
    MEMORY_VS_NAIVE,
    NAIVE,
    OURS,
    PER_RENDITION,
    PSNR_GAP,
    TARGETS,
    TIME_VS_CHAINED,
    TIME_VS_PER_RENDITION,
)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def judge(impls: dict[str, dict[str, Any]]) -> tuple[dict[str, float | int | None], dict[str, bool | None]]:
    """Ratios and verdicts of one case. Time on median wall time (CPU time alongside); memory on the larger
    of ours' two Lambda functions' peaks (the sum alongside) against naive Pillow's whole job; quality on
    ours' worst PSNR gap to the reference pipeline over ``QUALITY_WIDTHS`` (pyvips' gaps alongside). A
    figure that was not measured is None, and so is its verdict."""
    ours, naive = impls.get(OURS, {}), impls.get(NAIVE, {})
    per, chained = impls.get(PER_RENDITION, {}), impls.get(CHAINED, {})
    ratios: dict[str, float | int | None] = {
        TIME_VS_PER_RENDITION: _ratio(ours.get("median_ms"), per.get("median_ms")),
        TIME_VS_CHAINED: _ratio(ours.get("median_ms"), chained.get("median_ms")),
        "cpu_ours_vs_pyvips_per_rendition": _ratio(ours.get("cpu_ms"), per.get("cpu_ms")),
        "cpu_ours_vs_pyvips_chained": _ratio(ours.get("cpu_ms"), chained.get("cpu_ms")),
        "time_ours_vs_naive": _ratio(ours.get("median_ms"), naive.get("median_ms")),
        MEMORY_VS_NAIVE: _ratio(ours.get("peak_added_mb"), naive.get("peak_added_mb")),
        "memory_ours_sum_vs_naive": _ratio(ours.get("peak_sum_mb"), naive.get("peak_added_mb")),
        "memory_ours_vs_pyvips_chained": _ratio(ours.get("peak_added_mb"), chained.get("peak_added_mb")),
        PSNR_GAP: ours.get("psnr_worst_gap_db"),
        "psnr_worst_gap_width": ours.get("psnr_worst_gap_width"),
        "psnr_worst_gap_db_pyvips_per_rendition": per.get("psnr_worst_gap_db"),
        "psnr_worst_gap_db_pyvips_chained": chained.get("psnr_worst_gap_db"),
    }
    met: dict[str, bool | None] = {}
    for key, target in TARGETS.items():
        value = ratios[key]
        met[key] = None if value is None else (value >= target if key in AT_LEAST else value <= target)
    return ratios, met


def summary(cases: list[dict[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """For each target, the cases that meet it, miss it, or were not measured for it."""
    verdicts: dict[str, dict[str, list[str]]] = {}
    for key in TARGETS:
        found = {c["case"]: c["targets_met"][key] for c in cases}
        verdicts[key] = {
            "met": [name for name, met in found.items() if met is True],
            "not_met": [name for name, met in found.items() if met is False],
            "not_measured": [name for name, met in found.items() if met is None],
        }
    return verdicts
