"""``imgpipe cost``: measure on the embedded local cloud, or take given figures, and print the report."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

from rich.console import Console

from imgpipe_bench.cost.prices import PRICES, STEADY_COLD_START_RATE
from imgpipe_bench.cost.usage import Measurement, from_figures, with_memory

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: What ``imgpipe cost`` does, for its help.
DESCRIPTION: Final = "Cost per N images on AWS (Standard/Express x x86_64/arm64), from a local run or given figures."


class UsageError(ValueError):
    """The arguments do not go together."""


def _pairs(values: Sequence[str], option: str, kind: type[float] | type[int] | type[str]) -> dict[str, Any]:
    pairs: dict[str, Any] = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} takes KEY=VALUE, got {value!r}")
        try:
            pairs[key] = kind(raw)
        except ValueError as exc:
            raise UsageError(f"{option} {value!r}: {exc}") from exc
    return pairs


def _images(paths: Sequence[str]) -> list[Path]:
    from imgpipe_bench.cost.local import sample_images
    from localcloud.runner import input_files

    return input_files(paths) if paths else sample_images()


def _number(value: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from exc
    if not number.is_finite():
        raise argparse.ArgumentTypeError(f"not a finite number: {value!r}")
    return number


def _rate(value: str) -> Decimal | None:
    if value == "measured":
        return None
    rate = _number(value)
    if not 0 <= rate <= 1:
        raise argparse.ArgumentTypeError("between 0 and 1, or 'measured'")
    return rate


def _positive(value: str) -> Decimal:
    number = _number(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return number


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``imgpipe cost``, on the subparser the command gives."""
    p.add_argument("paths", nargs="*", help="images to run locally (default: samples/*.jpg|png)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--images", type=int, default=1_000_000, help="images to price (default 1,000,000)")
    p.add_argument("--duration-scale", type=_positive, default=Decimal(1), help="multiply local durations")
    p.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE", help="template parameter")
    p.add_argument(
        "--cold-start-rate",
        type=_rate,
        default=STEADY_COLD_START_RATE,
        metavar="RATE|measured",
        help="share of invocations that are cold (default 0.01)",
    )
    p.add_argument("--cpu-scaling", action="store_true", help="CPU-bound model: durations x 1769/MB below 1769 MB")
    p.add_argument("--memory", action="append", default=[], metavar="FUNCTION=MB", help="price at this memory")
    p.add_argument(
        "--alternatives",
        action="store_true",
        help="then the totals under other cold-start and CPU assumptions, each function at other memory sizes "
        "(arm64), and the arm64 break-even (tables only)",
    )
    given = p.add_argument_group("given figures instead of a local run")
    given.add_argument("--ms", action="append", default=[], metavar="FUNCTION=MS", help="billed ms per invocation")
    given.add_argument("--transitions-per-image", type=int, help="default: the state machine's happy path")
    given.add_argument("--execution-ms", type=float, help="Express execution duration (default: sum of --ms)")


def _measurement(args: argparse.Namespace, err: Console) -> Measurement:
    """From the ``--ms`` figures, or from a local run of the PATHs (default: samples/)."""
    memory = _pairs(args.memory, "--memory", int)
    figures = _pairs(args.ms, "--ms", float)
    if figures and args.paths:
        raise UsageError("give PATHs (a local run) or --ms figures, not both")
    if not figures and (args.transitions_per_image is not None or args.execution_ms is not None):
        raise UsageError("--transitions-per-image and --execution-ms go with --ms figures")
    if args.images < 1:
        raise UsageError("--images must be at least 1")
    if args.alternatives and args.json:
        raise UsageError("--alternatives prints tables, not JSON")
    if figures:
        return from_figures(
            ms=figures,
            memory_mb=memory,
            transitions_per_image=args.transitions_per_image,
            execution_ms=args.execution_ms,
        )
    from imgpipe_bench.cost.local import measure_local

    files = _images(args.paths)
    if not args.json:
        err.print(f"processing {len(files)} image(s) on the embedded local cloud...")
    return with_memory(measure_local(files, _pairs(args.parameter, "--parameter", str)), memory)


def run(args: argparse.Namespace, out: Console) -> int:
    """``imgpipe cost ...``: measure or take the figures, print the report. Exit 0, 1 (failures) or 2."""
    from imgpipe_bench.cost.model import estimate
    from imgpipe_bench.cost.report import render, to_json

    err = Console(stderr=True)
    try:
        measurement = _measurement(args, err)
        report = estimate(
            measurement,
            PRICES,
            args.images,
            duration_scale=args.duration_scale,
            cold_start_rate=args.cold_start_rate,
            cpu_scaling=args.cpu_scaling,
        )
    except (UsageError, ValueError) as exc:  # TemplateError is a ValueError
        err.print(f"[red]imgpipe cost: {exc}[/]")
        return EXIT_USAGE
    except RuntimeError as exc:  # LocalCloudError, or no execution finished
        err.print(f"[red]imgpipe cost: the local run failed: {exc}[/]")
        return EXIT_USAGE
    if args.json:
        print(to_json(report))
    else:
        render(report, out)
        if args.alternatives:
            from imgpipe_bench.cost.alternatives import render_alternatives

            render_alternatives(report, out)
    return EXIT_FAILED if any(e.status != "SUCCEEDED" for e in measurement.executions) else EXIT_OK
