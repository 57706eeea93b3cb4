"""``imgpipe bench local``: local cloud figures, upload-to-notification time per sample and orchestration
overhead.

1. Each photograph in samples/ is uploaded on its own to the deployed template; the time from the
   PutObject call to the success message arriving on a queue subscribed to the topic is measured (warm
   workers: one untimed upload first).
2. Orchestration overhead (``overhead.measure_orchestration_overhead``): a five-Task state machine of
   trivial Lambda functions (each returns its input) runs N times; overhead per execution = execution
   duration (ExecutionStarted to ExecutionSucceeded in the history) minus the summed Duration of the five
   REPORT lines.
"""

from __future__ import annotations

import argparse
import time
from typing import Final

from rich.console import Console
from rich.table import Table

from imgpipe_bench.arguments import at_least

HELP: Final = "upload-to-notification time per sample, and the orchestration overhead"
DESCRIPTION: Final = (
    "Local cloud figures: the time from each sample's upload to its success notification (warm, one at a "
    "time), and the orchestration overhead of a five-Task state machine of trivial Lambda functions."
)


def _quiet(function: str, line: str) -> None:
    """Function output is not part of the figures."""


def upload_to_notification() -> Table:
    """Each sample uploaded on its own (after one untimed upload), timed to its success notification."""
    from localcloud.cloud import LocalCloud
    from localcloud.runner import Subscriber
    from localcloud.sam import ROOT

    samples = sorted(p for p in (ROOT / "samples").iterdir() if p.suffix in (".jpg", ".png"))
    with LocalCloud(log_sink=_quiet) as cloud:
        stack = cloud.deploy()
        subscriber = Subscriber(cloud, stack)
        s3 = cloud.client("s3")
        table = Table(title="upload → success notification (warm, one at a time)")
        for column in ("image", "bytes", "seconds"):
            table.add_column(column)
        for index, path in enumerate([samples[0], *samples]):
            key = f"{stack.upload_prefix}{index}-{path.name}"
            started = time.perf_counter()
            s3.put_object(Bucket=stack.source_bucket, Key=key, Body=path.read_bytes())
            while not any(m["Message"].get("source", {}).get("key") == key for m in subscriber.drain()):
                time.sleep(0.005)
            elapsed = time.perf_counter() - started
            if index:
                table.add_row(path.name, f"{path.stat().st_size:,}", f"{elapsed:.3f}")
    return table


def orchestration_overhead(executions: int) -> Table:
    """The orchestration overhead over ``executions`` executions: median, p95 and mean."""
    from imgpipe_bench.overhead import measure_orchestration_overhead

    figures = measure_orchestration_overhead(executions)
    table = Table(title=f"orchestration, five trivial Lambda tasks, {executions} executions")
    for column in ("figure", "median ms", "p95 ms", "mean ms"):
        table.add_column(column)
    table.add_row("execution", f"{figures['execution_median_ms']:.1f}", f"{figures['execution_p95_ms']:.1f}", "")
    table.add_row(
        "overhead (execution - handlers)",
        f"{figures['median_ms']:.1f}",
        f"{figures['p95_ms']:.1f}",
        f"{figures['mean_ms']:.1f}",
    )
    return table


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``imgpipe bench local``, on the subparser the command gives."""
    p.add_argument(
        "--executions", type=at_least(1), default=30, help="executions for the orchestration overhead (default 30)"
    )


def run(args: argparse.Namespace, out: Console) -> int:
    """Print the two tables on ``out``, each as soon as it is measured."""
    out.print(upload_to_notification())
    out.print(orchestration_overhead(args.executions))
    return 0
