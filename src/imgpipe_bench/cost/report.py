"""A cost ``Report`` printed: rich tables of the four scenarios and of the functions, or one JSON object."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from datetime import date
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from imgpipe_bench.cost.model import Report


def _usd(value: Decimal) -> str:
    return f"${value:,.2f}" if value >= 1 else f"${value:,.4f}"


def render(report: Report, console: Console) -> None:
    """Rich tables: the four scenarios, then the functions."""
    prices = report.prices
    title = f"imgpipe on AWS: cost per {report.images:,} images ({prices.region}, prices of {prices.as_of:%Y-%m-%d})"
    table = Table(title=title, caption=f"from {report.origin}")
    for column in ("workflow", "Lambda requests", "Lambda GB-s", "Step Functions", "total"):
        table.add_column(column, justify="left" if column == "workflow" else "right")
    cheapest = min(report.scenarios, key=lambda s: s.total_usd)
    for s in report.scenarios:
        style = "bold green" if s is cheapest else ""
        table.add_row(
            s.name,
            _usd(s.lambda_requests_usd),
            _usd(s.lambda_compute_usd),
            _usd(s.step_functions_usd),
            _usd(s.total_usd),
            style=style,
        )
    console.print(table)
    console.print(
        f"Standard: {report.transitions_per_image:g} state transitions per image. "
        f"Express: {report.express_billed_ms_per_image:.0f} ms billed per image, "
        f"{report.express_gb_s_per_image:.4f} GB-s."
    )

    detail = Table(title="Lambda per function (GB-s cost; requests are in the table above)")
    columns = (
        "function",
        "MB",
        "peak MB",
        "calls/image",
        "cold",
        "init ms",
        "ms/call",
        "GB-s/image",
        "x86_64",
        "arm64",
    )
    for column in columns:
        detail.add_column(column, justify="left" if column == "function" else "right")
    for f in report.functions:
        detail.add_row(
            f.name,
            f"{f.memory_mb:,}",
            f"{f.max_memory_used_mb:,}" if f.max_memory_used_mb else "-",
            f"{f.invocations_per_image:.2f}",
            f"{f.cold_start_rate * 100:.0f}%" if f.init_ms_per_cold_start else "-",
            f"{f.init_ms_per_cold_start:,.0f}" if f.init_ms_per_cold_start else "-",
            f"{f.billed_ms_per_invocation:,.1f}",
            f"{f.gb_s_per_image:.4f}",
            _usd(f.compute_usd_x86),
            _usd(f.compute_usd_arm64),
        )
    console.print(detail)
    for note in report.notes:
        console.print(f"- {note}", highlight=False)
    console.print(f"prices: {prices.source}", style="dim", highlight=False)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def to_json(report: Report) -> str:
    """The report as one JSON object (amounts in US dollars as numbers)."""
    prices = {k: _jsonable(v) for k, v in vars(report.prices).items()}
    document = {
        "images": report.images,
        "origin": report.origin,
        "measured_images": report.measured_images,
        "duration_scale": _jsonable(report.duration_scale),
        "cold_start_rate": _jsonable(report.cold_start_rate),
        "cpu_scaling": report.cpu_scaling,
        "transitions_per_image": _jsonable(report.transitions_per_image),
        "express_billed_ms_per_image": _jsonable(report.express_billed_ms_per_image),
        "express_gb_s_per_image": _jsonable(report.express_gb_s_per_image),
        "scenarios": [
            {
                "workflow": s.workflow,
                "architecture": s.architecture,
                "lambda_requests_usd": _jsonable(s.lambda_requests_usd),
                "lambda_compute_usd": _jsonable(s.lambda_compute_usd),
                "step_functions_usd": _jsonable(s.step_functions_usd),
                "total_usd": _jsonable(s.total_usd),
            }
            for s in report.scenarios
        ],
        "functions": [{k: _jsonable(v) for k, v in vars(f).items()} for f in report.functions],
        "notes": list(report.notes),
        "measured": _jsonable(asdict(report.measurement)),
        "prices": prices,
    }
    return json.dumps(document, ensure_ascii=False)
