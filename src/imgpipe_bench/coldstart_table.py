"""The cold-start figures as a table: one row per function, against its floor."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table

from imgpipe_bench.tables import mark


def cold_start_table(cold_start: Mapping[str, Mapping[str, Any]]) -> Table:
    """``coldstart.measure()``'s figures, one row per function: floor, ours, difference, target, verdict."""
    repeats = next(iter(cold_start.values()), {}).get("repeats", 0)
    table = Table(
        title=f"cold start: import + init, packaged code with .pyc, CPU ms, medians of {repeats} fresh processes "
        "per function and per floor, interleaved"
    )
    for column in ("function", "floor", "ours", "difference", "target", "met", "floor on botocore's own data"):
        table.add_column(column, justify="left" if column == "function" else "right")
    for name, f in cold_start.items():
        ours = f"{f['ours_ms']:.0f}"
        if f["libvips_ms"] is not None:
            ours += f" ({f['init_ms']:.0f} init + {f['libvips_ms']:.0f} libvips {f['libvips']})"
        pixel = f["libvips_ms"] is not None
        table.add_row(
            name,
            f"{f['floor_ms']:.0f}",
            ours,
            f"{f['difference_ms']:+.0f}",
            f"<= {f['target_ms']:.0f} ({'libvips included' if pixel else 'floor + 25'})",
            mark(f["met"]),
            f"{f['floor_botocore_data_ms']:.0f}",
        )
    return table
