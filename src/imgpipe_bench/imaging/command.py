"""``imgpipe bench imaging``: the pipeline's resize + watermark work against pyvips and naive Pillow.

What is measured, and how, is described in ``imgpipe_bench.imaging``. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Final

from rich.console import Console

from imgpipe_bench.arguments import at_least
from imgpipe_bench.imaging.cases import MIN_REPEATS, REPEATS

HELP: Final = "imaging only: time, memory and PSNR against pyvips and naive Pillow"
DESCRIPTION: Final = (
    "Imaging figures: the pipeline's resize + watermark work against pyvips and naive Pillow. "
    "pyvips (with its bundled libvips) comes with the bench extra, pip install -e '.[bench]'; "
    "it is skipped without it."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``imgpipe bench imaging``, on the subparser the command gives."""
    p.add_argument("--json", action="store_true", help="print the figures as JSON instead of tables")
    p.add_argument("--plot", type=Path, help="draw the time chart (PNG) to this path")
    p.add_argument(
        "--repeats", type=at_least(MIN_REPEATS), default=REPEATS, help=f"repetitions per case (default {REPEATS})"
    )


def run(args: argparse.Namespace, out: Console) -> int:
    """Measure every case; print the figures as JSON or as tables on ``out`` (progress goes to stderr)."""
    from imgpipe_bench.imaging.measure import measure_all
    from imgpipe_bench.imaging.render import render

    figures = measure_all(args.plot, repeats=args.repeats)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        render(figures, out)
    return 0
