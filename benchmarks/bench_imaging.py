"""Imaging figures: the pipeline's resize + watermark work against pyvips and naive Pillow.

    .venv/bin/pip install -e '.[bench]'      # pyvips with its bundled libvips (optional: skipped without it)
    .venv/bin/python benchmarks/bench_imaging.py [--json] [--plot out/bench-imaging.png] [--repeats 7]

What is measured, and how, is described in ``src/imgpipe_bench/bench.py``. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "layers" / "shared")]

from imgpipe_bench import bench  # noqa: E402 - after the paths above, for a run without the package installed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of tables")
    parser.add_argument("--plot", type=Path, help="draw the time chart (PNG) to this path")
    parser.add_argument("--repeats", type=int, default=bench.REPEATS, help=f"at least {bench.MIN_REPEATS}")
    args = parser.parse_args()
    figures = bench.run(args.json, args.plot, repeats=args.repeats)
    if not args.json:
        bench.render(figures, Console())
    return 0


if __name__ == "__main__":
    sys.exit(main())
