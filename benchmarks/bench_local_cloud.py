"""Local cloud figures: upload-to-notification time per sample, and orchestration overhead.

    .venv/bin/python benchmarks/bench_local_cloud.py [--executions 30]

1. Each photograph in samples/ is uploaded on its own to the deployed template; the time from
   the PutObject call to the success message arriving on a queue subscribed to the topic is
   measured (warm workers: one untimed upload first).
2. Orchestration overhead: a five-Task state machine of trivial Lambda functions (each returns
   its input) runs N times; overhead per execution = execution duration (ExecutionStarted to
   ExecutionSucceeded in the history) minus the summed Duration of the five REPORT lines.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
import zipfile
from typing import Any

from rich.console import Console
from rich.table import Table

from localcloud.cloud import LocalCloud
from localcloud.runner import Subscriber
from localcloud.sam import ROOT


def quiet(function: str, line: str) -> None:
    """Function output is not part of the figures."""


TRIVIAL = "def lambda_handler(event, context):\n    return event\n"


def upload_to_notification(console: Console) -> None:
    samples = sorted(p for p in (ROOT / "samples").iterdir() if p.suffix in (".jpg", ".png"))
    with LocalCloud(log_sink=quiet) as cloud:
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
        console.print(table)


def orchestration_overhead(console: Console, executions: int) -> None:
    with LocalCloud(log_sink=quiet) as cloud:
        lam, sfn, iam = cloud.client("lambda"), cloud.client("stepfunctions"), cloud.client("iam")
        role = iam.create_role(RoleName="trivial", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as archive:
            archive.writestr("app.py", TRIVIAL)
        arns = [
            lam.create_function(
                FunctionName=f"step{i}",
                Runtime="python3.12",
                Role=role,
                Handler="app.lambda_handler",
                Code={"ZipFile": buf.getvalue()},
                Timeout=10,
            )["FunctionArn"]
            for i in range(5)
        ]
        states: dict[str, Any] = {}
        for i, arn in enumerate(arns):
            states[f"S{i}"] = {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": arn, "Payload.$": "$"},
                "OutputPath": "$.Payload",
                **({"Next": f"S{i + 1}"} if i < 4 else {"End": True}),
            }
        machine = sfn.create_state_machine(
            name="trivial", roleArn=role, definition=json.dumps({"StartAt": "S0", "States": states})
        )["stateMachineArn"]
        for _warm in range(2):  # start the workers
            cloud.wait_for_execution(sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"])
        cloud.stats.reports.clear()
        overheads: list[float] = []
        totals: list[float] = []
        for n in range(executions):
            arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"n": n}))["executionArn"]
            cloud.wait_for_execution(arn)
            history = sfn.get_execution_history(executionArn=arn)["events"]
            total_ms = (history[-1]["timestamp"] - history[0]["timestamp"]).total_seconds() * 1000
            with cloud.stats.lock:
                handler_ms = sum(inv.duration_ms for _name, inv in cloud.stats.reports)
                cloud.stats.reports.clear()
            totals.append(total_ms)
            overheads.append(total_ms - handler_ms)
        table = Table(title=f"orchestration, five trivial Lambda tasks, {executions} executions")
        for column in ("figure", "median ms", "p95 ms"):
            table.add_column(column)
        for name, values in (("execution", totals), ("overhead (execution - handlers)", overheads)):
            ordered = sorted(values)
            table.add_row(name, f"{statistics.median(ordered):.1f}", f"{ordered[int(len(ordered) * 0.95) - 1]:.1f}")
        console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=30)
    args = parser.parse_args(argv)
    console = Console()
    upload_to_notification(console)
    orchestration_overhead(console, args.executions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
