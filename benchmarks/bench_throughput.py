"""Pipeline throughput on the local cloud: a burst of 12 MP photos, first upload to last success.

    .venv/bin/python benchmarks/bench_throughput.py [--images 40] [--size 4000x3000] [--json]

The template is deployed on a fresh local cloud, one photo goes through untimed (the workers start),
then ``--images`` photo-like baseline JPEGs (quality 90, each its own pixels) are uploaded at once
and every execution is waited for (see imgpipe_bench.overhead.measure_throughput). Where the time went:
the handlers' REPORT durations summed per function, the executions' durations summed, and the CPU
time of the Lambda workers and of the local cloud's own process against what the cores could give.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings

from rich.console import Console
from rich.table import Table

from imgpipe_bench.overhead import measure_throughput


def size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height)


def table(figures: dict[str, float]) -> Table:
    images = int(figures["images"])
    out = Table(title=f"pipeline throughput: {images} photos of {figures['width']:.0f}x{figures['height']:.0f} at once")
    out.add_column("figure")
    out.add_column("value", justify="right")
    out.add_row("images/s", f"{figures['images_per_s']:.2f}")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=40, help="how many photos (default 40)")
    parser.add_argument("--size", type=size, default=(4000, 3000), help="WIDTHxHEIGHT (default 4000x3000)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    # The local cloud's own chatter (moto's notes on the template) is not part of the figures.
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", "Tried to parse AWS", UserWarning)
    figures = measure_throughput(args.images, args.size)
    figures.update(width=float(args.size[0]), height=float(args.size[1]))
    if args.json:
        print(json.dumps(figures))
    else:
        Console().print(table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
