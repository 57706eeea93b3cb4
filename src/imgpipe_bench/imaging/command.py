"""``imgpipe bench imaging``: the whole imaging job of the pipeline (ours) against pyvips per rendition,
pyvips chained and naive Pillow, on real photographs first and synthetic worst cases after.

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

HELP: Final = "imaging only: time, memory and PSNR against pyvips (per rendition, chained) and naive Pillow"
DESCRIPTION: Final = (
    "Imaging figures: the pipeline's whole imaging job (decode, 2048/1024/320 px renditions, watermark, JPEG) "
    "against pyvips per rendition, pyvips chained and naive Pillow, on the photographs of --images (default "
    "out/photos, which make bench-photos fills from Debian's mate-backgrounds), cases derived from the "
    "largest, then synthetic worst cases."
)


def directory(text: str) -> Path:
    """An argparse type: an existing directory."""
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"not a directory: {text!r}")
    return path


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``imgpipe bench imaging``, on the subparser the command gives."""
    p.add_argument("--json", action="store_true", help="print the figures as JSON instead of tables")
    p.add_argument("--plot", type=Path, help="draw the time chart (PNG) to this path")
    p.add_argument(
        "--repeats", type=at_least(MIN_REPEATS), default=REPEATS, help=f"repetitions per case (default {REPEATS})"
    )
    add_images(p, "--images")


def add_images(p: argparse.ArgumentParser, flag: str) -> None:
    """The option naming the directory of real photographs (``--images`` here, ``--photos`` in
    ``imgpipe bench``, where ``--images`` is the throughput's number of uploads)."""
    p.add_argument(
        flag,
        dest="photos",
        type=directory,
        metavar="DIR",
        help="real photographs to measure, each as it is, plus 24/12 MP JPEG and 12 MP PNG cases made from the "
        "largest (default: out/photos when it exists; without photographs, the synthetic cases only)",
    )


def run(args: argparse.Namespace, out: Console) -> int:
    """Measure every case; print the figures as JSON or as tables on ``out`` (progress goes to stderr)."""
    from imgpipe_bench.imaging.measure import measure_all
    from imgpipe_bench.imaging.render import render

    figures = measure_all(args.plot, repeats=args.repeats, images=args.photos)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        render(figures, out)
    return 0
