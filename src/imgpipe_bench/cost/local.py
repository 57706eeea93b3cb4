"""Measuring on the embedded local cloud: process images on a fresh deployment of the template and price
what they used."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from imgpipe_bench.cost.model import Report, estimate
from imgpipe_bench.cost.prices import PRICES, STEADY_COLD_START_RATE, Prices
from imgpipe_bench.cost.usage import Measurement, from_cloud


def sample_images() -> list[Path]:
    """The photographs in samples/ (JPEG and PNG), by name."""
    from localcloud.sam import ROOT

    return sorted(p for p in (ROOT / "samples").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def _quiet(function_name: str, line: str) -> None:
    """Function output is not part of the measurement."""


def measure_local(
    images: Sequence[Path], parameters: Mapping[str, str] | None = None, *, one_at_a_time: bool = True
) -> Measurement:
    """Deploy the template on a fresh local cloud, process the images, read the REPORT lines and histories.

    One image at a time by default: each invocation then has a core to itself, as a Lambda execution
    environment at 1769 MB has a vCPU; all at once, two cores share four images' work.
    """
    from localcloud.cloud import LocalCloud
    from localcloud.runner import process

    with tempfile.TemporaryDirectory(prefix="imgpipe-cost-") as out, LocalCloud(log_sink=_quiet) as cloud:
        stack = cloud.deploy(dict(parameters or {}))
        batches = [[path] for path in images] if one_at_a_time else [list(images)]
        results = [result for batch in batches for result in process(cloud, stack, batch, Path(out))]
        arns = [r.execution_arn for r in results if r.execution_arn]
        if not arns:
            raise RuntimeError("no execution finished: " + "; ".join(f"{r.file}: {r.cause}" for r in results))
        measurement = from_cloud(cloud, arns)
    return replace(measurement, origin=f"a local run of {len(arns)} image(s) on this machine")


def run_local(
    images: Sequence[Path],
    parameters: Mapping[str, str] | None = None,
    *,
    prices: Prices = PRICES,
    count: int = 1_000_000,
    duration_scale: float | Decimal = 1,
    cold_start_rate: float | Decimal | None = STEADY_COLD_START_RATE,
    cpu_scaling: bool = False,
) -> Report:
    """Process ``images`` on the embedded local cloud and estimate ``count`` images from what they used."""
    return estimate(
        measure_local(images, parameters),
        prices,
        count,
        duration_scale=duration_scale,
        cold_start_rate=cold_start_rate,
        cpu_scaling=cpu_scaling,
    )
