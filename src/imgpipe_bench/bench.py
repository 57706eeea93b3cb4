"""``imgpipe bench``: every figure at once (imaging, cold starts, orchestration overhead, throughput), each
with its target verdicts. ``imgpipe bench PART`` runs one of the measurements on its own, with its own
options: ``imaging`` (``imgpipe_bench.imaging``), ``load`` (``imgpipe_bench.load``), ``local``
(``imgpipe_bench.local_cloud``) and ``throughput`` (``imgpipe_bench.throughput``)."""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from imgpipe_bench.arguments import at_least
from imgpipe_bench.imaging.cases import MIN_REPEATS, REPEATS
from imgpipe_bench.imaging.command import add_images
from imgpipe_bench.tables import mark

PARTS: Final = ("imaging", "cold-start", "orchestration", "throughput")
#: The project issue's targets for the local cloud.
ORCHESTRATION_TARGET_MS: Final = 30.0

HELP: Final = (
    "imaging against pyvips and naive Pillow (time, memory, PSNR), cold starts, orchestration, throughput; "
    "or one PART with its own options"
)
DESCRIPTION: Final = (
    "Every figure at once: imaging against pyvips and naive Pillow (time, memory, PSNR), cold starts, "
    "orchestration overhead and throughput, each with its target verdicts (--only picks parts). "
    "Or one PART on its own, with its own options: imgpipe bench PART --help."
)


def run_all(
    parts: Sequence[str] = PARTS,
    *,
    plot: Path | None,
    repeats: int = REPEATS,
    photos: Path | None = None,
    cold_start_repeats: int = 15,
    executions: int = 30,
    images: int = 40,
) -> dict[str, Any]:
    """Every figure of ``imgpipe bench`` as one object: ``imaging`` (``imaging.measure.measure_all()`` on the
    photographs in ``photos``, default out/photos when it exists),
    ``cold_start`` (``coldstart.measure()``: each packaged function against its floor), ``orchestration``
    (``overhead.measure_orchestration_overhead()``) and ``throughput`` (``overhead.measure_throughput()``
    on 12 MP JPEGs), each with its target verdicts."""
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown part(s): {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    status = Console(stderr=True)
    figures: dict[str, Any] = {"machine": {"cores": os.cpu_count(), "platform": platform.platform()}}
    if "imaging" in parts:
        from imgpipe_bench.imaging.measure import measure_all

        figures["imaging"] = measure_all(plot, repeats=repeats, images=photos)
    if "cold-start" in parts:
        from imgpipe_bench import coldstart

        with status.status("cold starts: each packaged function against its floor, fresh processes in turns"):
            figures["cold_start"] = coldstart.measure(repeats=cold_start_repeats)
    if "orchestration" in parts:
        from imgpipe_bench import overhead

        with status.status("orchestration overhead: five trivial tasks per execution"):
            orchestration = overhead.measure_orchestration_overhead(executions)
        figures["orchestration"] = {
            **orchestration,
            "target_ms": ORCHESTRATION_TARGET_MS,
            "met": orchestration["median_ms"] <= ORCHESTRATION_TARGET_MS,
        }
    if "throughput" in parts:
        from imgpipe_bench import overhead, throughput

        with status.status(f"throughput: {images} uploads of 12 MP JPEGs at once"):
            figures["throughput"] = throughput.judged(overhead.measure_throughput(images))
    return figures


def _local_cloud_table(figures: dict[str, Any]) -> Table:
    """Orchestration overhead and throughput against their targets (rows only for what was measured)."""
    local = Table(title=f"local cloud ({figures['machine']['cores']} cores)")
    for column in ("figure", "value", "target", "met"):
        local.add_column(column, justify="left" if column == "figure" else "right")
    if "orchestration" in figures:
        o = figures["orchestration"]
        local.add_row(
            f"orchestration overhead per execution, median of {o['executions']:.0f} (p95)",
            f"{o['median_ms']:.1f} ms ({o['p95_ms']:.1f})",
            f"<= {o['target_ms']:.0f} ms",
            mark(o["met"]),
        )
    if "throughput" in figures:
        t = figures["throughput"]
        local.add_row(
            f"throughput, {t['images']:.0f} 12 MP JPEGs uploaded at once (latency p50 / p95), "
            f"against cores / the workers' CPU per image ({t['ideal_images_per_s']:.2f} images/s)",
            f"{t['images_per_s']:.2f} images/s ({t['p50_s']:.1f} / {t['p95_s']:.1f} s): "
            f"{t['throughput_vs_ideal']:.2f} of it",
            f">= {t['target_vs_ideal']:.1f} of it",
            mark(t["met"]),
        )
        cpu = t["worker_cpu_s"] + t["cloud_cpu_s"]
        local.add_row(
            "  CPU per image: Lambda workers + local services",
            f"{t['worker_cpu_s'] / t['images'] * 1000:.0f} + {t['cloud_cpu_s'] / t['images'] * 1000:.0f} ms",
            "",
            f"{cpu / (cpu + t['idle_cpu_s']) * 100:.0f}% busy",
        )
    return local


def render_all(figures: dict[str, Any], console: Console) -> None:
    """Print ``run_all()``'s figures: the imaging tables, the cold starts, then the local cloud's figures."""
    if "imaging" in figures:
        from imgpipe_bench.imaging.render import render

        render(figures["imaging"], console)
    if "cold_start" in figures:
        from imgpipe_bench.coldstart_table import cold_start_table

        console.print(cold_start_table(figures["cold_start"]))
    local = _local_cloud_table(figures)
    if local.row_count:
        console.print(local)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``imgpipe bench`` without a PART, on the parser the command gives."""
    p.add_argument("--json", action="store_true", help="the figures as one JSON object")
    p.add_argument("--plot", default="out/bench-imaging.png", help="PNG plot of time per case")
    p.add_argument("--only", action="append", choices=PARTS, help="measure only this part (repeatable)")
    p.add_argument(
        "--repeats",
        type=at_least(MIN_REPEATS),
        default=REPEATS,
        help=f"imaging repetitions per case (default {REPEATS})",
    )
    add_images(p, "--photos")  # --images is the throughput's number of uploads
    p.add_argument(
        "--cold-start-repeats",
        type=at_least(1),
        default=15,
        help="fresh processes per function and per floor (default 15)",
    )
    p.add_argument("--executions", type=at_least(1), default=30, help="executions for the orchestration overhead")
    p.add_argument("--images", type=at_least(1), default=40, help="12 MP uploads for the throughput")


def run(args: argparse.Namespace, out: Console) -> int:
    """``imgpipe bench``: the parts asked for (all by default), as JSON or as tables on ``out``."""
    plot = Path(args.plot)
    plot.parent.mkdir(parents=True, exist_ok=True)
    figures = run_all(
        args.only or PARTS,
        plot=plot,
        repeats=args.repeats,
        photos=args.photos,
        cold_start_repeats=args.cold_start_repeats,
        executions=args.executions,
        images=args.images,
    )
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        render_all(figures, out)
    return 0
