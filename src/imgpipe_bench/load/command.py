"""``imgpipe bench load``: N uploads at once on a fresh local cloud, every one followed to its execution
and its notification (see ``imgpipe_bench.load``). Exit status 1 when any upload is lost, else 0."""

from __future__ import annotations

import argparse
import json
import logging
import warnings
from typing import Final

from rich.console import Console

from imgpipe_bench.arguments import at_least

HELP: Final = "N uploads at once on the local cloud, each followed to its execution and notification"
DESCRIPTION: Final = (
    "Load on the local cloud: N uploads at once, every one followed to its execution and its notification. "
    "Exit status 1 when an upload lacks a finished execution or a notification (LOST), else 0."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``imgpipe bench load``, on the subparser the command gives."""
    p.add_argument("--images", type=at_least(1), default=500, help="how many uploads (default 500)")
    p.add_argument("--threads", type=at_least(1), default=16, help="upload threads (default 16)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait after the last upload")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")


def run(args: argparse.Namespace, out: Console) -> int:
    """Run the load, print the figures (JSON, or a table and the causes of errors and losses on ``out``)."""
    from imgpipe_bench.load.observe import observe
    from imgpipe_bench.load.summary import summarise, table

    progress = Console(stderr=True)
    # The local cloud's own chatter (moto's notes on the template, failed executions) is not part of the figures.
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", "Tried to parse AWS", UserWarning)
    figures = summarise(observe(args.images, args.threads, args.timeout, progress))
    if args.json:
        print(json.dumps(figures))
    else:
        out.print(table(figures))
        for error, cause in figures["error_causes"].items():
            out.print(f"[bold]{error}[/], e.g.: {cause}")
        if figures["lost"]:
            out.print(f"[bold red]LOST[/]: {', '.join(figures['lost_keys'])}")
    return 1 if figures["lost"] else 0
