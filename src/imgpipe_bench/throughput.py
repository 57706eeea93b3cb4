"""``imgpipe bench throughput``: pipeline throughput on the local cloud, a burst of 12 MP photos, from the
first upload to the last success.

The template is deployed on a fresh local cloud, one photo goes through untimed (the workers start), then
``--images`` photo-like baseline JPEGs (quality 90, each its own pixels) are uploaded at once and every
execution is waited for (``overhead.measure_throughput``). Where the time went: the handlers' REPORT
durations summed per function, the executions' durations summed, and the CPU time of the Lambda workers
and of the local cloud's own process against what the cores could give.
"""

from __future__ import annotations

import argparse
import json
import logging
import warnings
from collections.abc import Mapping
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from imgpipe_bench.arguments import at_least, size

HELP: Final = "a burst of 12 MP photos through the pipeline: images/s, latency, where the time went"
DESCRIPTION: Final = (
    "Pipeline throughput on the local cloud: a burst of photos uploaded at once, from the first upload to "
    "the last success, and where the time went (handlers, orchestration, CPU of the workers and the local cloud)."
)


#: Throughput against what the cores could give the handlers alone: at least this share of
#: cores / (the Lambda workers' CPU seconds per image).
TARGET_VS_IDEAL: Final = 0.8


def judged(figures: dict[str, float]) -> dict[str, Any]:
    """``measure_throughput()``'s figures with the ideal rate (every core busy in the handlers' work, the
    local cloud costing nothing), the measured rate against it, the CPU utilisation, and the verdict."""
    ideal = figures["cores"] * figures["images"] / figures["worker_cpu_s"]
    busy = (figures["worker_cpu_s"] + figures["cloud_cpu_s"]) / (figures["seconds"] * figures["cores"])
    ratio = figures["images_per_s"] / ideal
    return {
        **figures,
        "ideal_images_per_s": ideal,
        "throughput_vs_ideal": ratio,
        "target_vs_ideal": TARGET_VS_IDEAL,
        "cpu_utilisation": busy,
        "met": ratio >= TARGET_VS_IDEAL,
    }


def table(figures: Mapping[str, Any]) -> Table:
    """``measure_throughput()``'s figures (with the photos' ``width`` and ``height``) as a table."""
    images = int(figures["images"])
    out = Table(title=f"pipeline throughput: {images} photos of {figures['width']:.0f}x{figures['height']:.0f} at once")
    out.add_column("figure")
    out.add_column("value", justify="right")
    out.add_row("images/s", f"{figures['images_per_s']:.2f}")
    out.add_row("ideal images/s: cores / the workers' CPU per image", f"{figures['ideal_images_per_s']:.2f}")
    verdict = "met" if figures["met"] else "not met"
    out.add_row(
        f"against the ideal (target >= {figures['target_vs_ideal']:.1f})",
        f"{figures['throughput_vs_ideal']:.2f} {verdict}",
    )
    out.add_row("CPU utilisation (workers + local cloud)", f"{figures['cpu_utilisation']:.0%}")
    out.add_row("first upload → last success (s)", f"{figures['seconds']:.1f}")
    out.add_row("upload → success p50 (s)", f"{figures['p50_s']:.1f}")
    out.add_row("upload → success p95 (s)", f"{figures['p95_s']:.1f}", end_section=True)
    out.add_row("handlers, REPORT durations summed (s)", f"{figures['handler_s']:.1f}")
    for name, value in figures.items():
        if name.startswith("handler_s:"):
            out.add_row(f"  {name.removeprefix('handler_s:')}", f"{value:.1f} ({value / images * 1000:.0f} ms/image)")
    out.add_row("executions' durations summed (s)", f"{figures['executions_s']:.1f}")
    out.add_row("  not in a handler (orchestration, queueing)", f"{figures['executions_s'] - figures['handler_s']:.1f}")
    out.add_row("invocations that failed and were retried", f"{figures['invocation_errors']:.0f}", end_section=True)
    capacity = figures["seconds"] * figures["cores"]
    for label, key in (
        ("Lambda workers' CPU (s)", "worker_cpu_s"),
        ("local cloud process CPU (s)", "cloud_cpu_s"),
        ("idle CPU (s)", "idle_cpu_s"),
    ):
        out.add_row(label, f"{figures[key]:.1f} ({figures[key] / capacity:.0%} of {figures['cores']:.0f} cores)")
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``imgpipe bench throughput``, on the subparser the command gives."""
    p.add_argument("--images", type=at_least(1), default=40, help="how many photos (default 40)")
    p.add_argument("--size", type=size, default=(4000, 3000), help="WIDTHxHEIGHT (default 4000x3000)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")


def run(args: argparse.Namespace, out: Console) -> int:
    """Measure the throughput; print the figures as JSON, or as a table on ``out``."""
    from imgpipe_bench.overhead import measure_throughput

    # The local cloud's own chatter (moto's notes on the template) is not part of the figures.
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", "Tried to parse AWS", UserWarning)
    figures = judged(measure_throughput(args.images, args.size))
    figures.update(width=float(args.size[0]), height=float(args.size[1]))
    if args.json:
        print(json.dumps(figures))
    else:
        out.print(table(figures))
    return 0
