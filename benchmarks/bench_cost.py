"""Cost per million images on AWS, from the samples run on the embedded local cloud.

    .venv/bin/python benchmarks/bench_cost.py [--duration-scale X] [--parameter K=V]

1. ``cost.run_local`` processes samples/ one image at a time on a fresh local cloud and prices a
   million images from its REPORT lines and execution histories: the four scenarios and the per-function
   breakdown (durations as measured here, 1% cold starts, CPU not modelled).
2. The same measurement under the other assumptions: CPU-bound (durations x 1769/MB below 1769 MB, what
   a function gets on Lambda) and the cold starts as they happened here.
3. Each function at other memory sizes, arm64: cost per million images under both CPU models. An I/O-bound
   function gets cheaper with less memory; a CPU-bound one costs the same at every size up to 1769 MB.
4. The arm64 break-even: how much slower than x86 arm64 may run before it stops being cheaper.
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal

from rich.console import Console
from rich.table import Table

from imgpipe_bench import cost


def _usd(value: Decimal) -> str:
    return f"${value:,.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration-scale", type=Decimal, default=Decimal(1))
    parser.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    parameters = dict(pair.split("=", 1) for pair in args.parameter)
    console = Console(width=max(Console().width, 150))

    images = cost.sample_images()
    console.print(f"samples: {', '.join(p.name for p in images)}", highlight=False)
    report = cost.run_local(images, parameters, duration_scale=args.duration_scale)
    cost.render(report, console)
    measurement = report.measurement

    variants = Table(title="the same measurement, other assumptions (total per 1,000,000 images)")
    variants.add_column("assumption")
    for scenario in report.scenarios:
        variants.add_column(scenario.name, justify="right")
    steady = cost.STEADY_COLD_START_RATE
    for label, rate, cpu_scaling in (
        ("1% cold, CPU not modelled (above)", steady, False),
        ("1% cold, CPU-bound below 1769 MB", steady, True),
        ("cold starts as measured here", None, False),
        ("no cold start", Decimal(0), False),
    ):
        variant = cost.estimate(
            measurement, duration_scale=args.duration_scale, cold_start_rate=rate, cpu_scaling=cpu_scaling
        )
        variants.add_row(label, *(_usd(s.total_usd) for s in variant.scenarios))
    console.print(variants)

    memories = (128, 256, 512, 1024, 1536, 1769, 2048, 3008)
    options = cost.memory_options(
        measurement, memories, duration_scale=args.duration_scale, cold_start_rate=cost.STEADY_COLD_START_RATE
    )
    table = Table(title="Lambda (requests + GB-s) per 1,000,000 images, arm64, by memory: $ (ms per call)")
    table.add_column("function, CPU model")
    for memory in memories:
        table.add_column(f"{memory} MB", justify="right")
    for usage in measurement.functions:
        for model in ("I/O-bound", "CPU-bound"):
            cells = []
            for memory in memories:
                option = next(o for o in options if o.function == usage.name and o.memory_mb == memory)
                usd, ms = (
                    (option.usd_io_bound, option.ms_io_bound)
                    if model == "I/O-bound"
                    else (option.usd_cpu_bound, option.ms_cpu_bound)
                )
                cells.append(f"{_usd(usd)} ({ms:.0f})")
            now = f" [now {usage.memory_mb} MB]" if model == "I/O-bound" else ""
            table.add_row(f"{usage.name} {model}{now}", *cells, end_section=model == "CPU-bound")
    console.print(table)

    ratio = cost.PRICES.lambda_gb_s_x86 / cost.PRICES.lambda_gb_s_arm64
    console.print(
        f"arm64 GB-s price = {cost.PRICES.lambda_gb_s_arm64 / cost.PRICES.lambda_gb_s_x86:.4f} x the x86 price: "
        f"arm64 stays cheaper while its durations are under {ratio:.3f} x the x86 ones.",
        highlight=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
