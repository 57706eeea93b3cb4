"""The measurement behind a cost ``Report`` under other assumptions (``imgpipe cost --alternatives``):

1. the totals with 1% cold starts, CPU not modelled and CPU-bound (durations x 1769/MB below 1769 MB, what
   a function gets on Lambda), with the cold starts as they happened here, and with none;
2. each function at other memory sizes, arm64: Lambda cost (requests + GB-s) under both CPU models. An
   I/O-bound function gets cheaper with less memory; a CPU-bound one costs the same at every size up to
   1769 MB;
3. the arm64 break-even: how much slower than x86 arm64 may run before it stops being cheaper.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from imgpipe_bench.cost.model import MEMORY_SIZES, Report, estimate, memory_options
from imgpipe_bench.cost.prices import STEADY_COLD_START_RATE

#: The assumptions the totals are shown under: label, cold-start rate (None: as measured), CPU-bound.
ASSUMPTIONS: Final = (
    ("1% cold, CPU not modelled", STEADY_COLD_START_RATE, False),
    ("1% cold, CPU-bound below 1769 MB", STEADY_COLD_START_RATE, True),
    ("cold starts as measured here", None, False),
    ("no cold start", Decimal(0), False),
)
_MODELS: Final = ("I/O-bound", "CPU-bound")


def _dollars(value: Decimal) -> str:
    return f"${value:,.2f}"


def assumptions_table(report: Report) -> Table:
    """The four scenarios' totals under each of ``ASSUMPTIONS`` (the report's own marked "above")."""
    table = Table(title=f"the same measurement, other assumptions (total per {report.images:,} images)")
    table.add_column("assumption")
    for scenario in report.scenarios:
        table.add_column(scenario.name, justify="right")
    for label, rate, cpu_scaling in ASSUMPTIONS:
        variant = estimate(
            report.measurement,
            report.prices,
            report.images,
            duration_scale=report.duration_scale,
            cold_start_rate=rate,
            cpu_scaling=cpu_scaling,
        )
        above = rate == report.cold_start_rate and cpu_scaling == report.cpu_scaling
        table.add_row(label + (" (above)" if above else ""), *(_dollars(s.total_usd) for s in variant.scenarios))
    return table


def memory_table(report: Report) -> Table:
    """Each function's arm64 Lambda cost at each of ``MEMORY_SIZES``, I/O-bound and CPU-bound."""
    options = memory_options(
        report.measurement,
        MEMORY_SIZES,
        prices=report.prices,
        images=report.images,
        duration_scale=report.duration_scale,
        cold_start_rate=report.cold_start_rate,
    )
    table = Table(title=f"Lambda (requests + GB-s) per {report.images:,} images, arm64, by memory: $ (ms per call)")
    table.add_column("function, CPU model")
    for memory in MEMORY_SIZES:
        table.add_column(f"{memory} MB", justify="right")
    for usage in report.measurement.functions:
        for model in _MODELS:
            cells = []
            for memory in MEMORY_SIZES:
                option = next(o for o in options if o.function == usage.name and o.memory_mb == memory)
                usd, ms = (
                    (option.usd_io_bound, option.ms_io_bound)
                    if model == "I/O-bound"
                    else (option.usd_cpu_bound, option.ms_cpu_bound)
                )
                cells.append(f"{_dollars(usd)} ({ms:.0f})")
            now = f" [now {usage.memory_mb} MB]" if model == "I/O-bound" else ""
            table.add_row(escape(f"{usage.name} {model}{now}"), *cells, end_section=model == "CPU-bound")
    return table


def render_alternatives(report: Report, console: Console) -> None:
    """Print the totals under other assumptions, the cost by memory size, and the arm64 break-even."""
    console.print(assumptions_table(report))
    console.print(memory_table(report))
    prices = report.prices
    ratio = prices.lambda_gb_s_x86 / prices.lambda_gb_s_arm64
    console.print(
        f"arm64 GB-s price = {prices.lambda_gb_s_arm64 / prices.lambda_gb_s_x86:.4f} x the x86 price: "
        f"arm64 stays cheaper while its durations are under {ratio:.3f} x the x86 ones.",
        highlight=False,
    )
