"""Figures of the local cloud itself: what orchestrating an execution costs, and how fast the pipeline runs.

``measure_orchestration_overhead`` runs a five-Task state machine of trivial Lambda functions (each returns
its input) and reports, per execution, the execution's duration (ExecutionStarted to ExecutionSucceeded in
its history) minus the summed Duration of its five REPORT lines: what moto's interpreter, the Lambda
service and the Runtime API add around the handlers.

``measure_throughput`` deploys template.yaml and runs the real pipeline on a burst of 12 MP photos, from the
first upload to the last execution's success, and says where that time went: in the handlers (REPORT
durations per function), in the workers' and in this process's CPU, and idle.
"""

from __future__ import annotations

import io
import json
import math
import os
import statistics
import time
import zipfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from localcloud.cloud import LocalCloud, Stack

TRIVIAL_HANDLER: Final = "def lambda_handler(event, context):\n    return event\n"
TASKS: Final = 5
TERMINAL: Final = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def _quiet(function: str, line: str) -> None:
    """Function output is not part of the figures."""


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``fraction`` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


# -- orchestration overhead ----------------------------------------------------------------------


def _trivial_machine(cloud: LocalCloud) -> str:
    lam, sfn, iam = cloud.client("lambda"), cloud.client("stepfunctions"), cloud.client("iam")
    role = iam.create_role(RoleName="trivial", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("app.py", TRIVIAL_HANDLER)
    arns = [
        lam.create_function(
            FunctionName=f"step{i}",
            Runtime="python3.12",
            Role=role,
            Handler="app.lambda_handler",
            Code={"ZipFile": buf.getvalue()},
            Timeout=10,
        )["FunctionArn"]
        for i in range(TASKS)
    ]
    states: dict[str, Any] = {}
    for i, arn in enumerate(arns):
        states[f"S{i}"] = {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": arn, "Payload.$": "$"},
            "OutputPath": "$.Payload",
            **({"Next": f"S{i + 1}"} if i < TASKS - 1 else {"End": True}),
        }
    definition = json.dumps({"StartAt": "S0", "States": states})
    return str(sfn.create_state_machine(name="trivial", roleArn=role, definition=definition)["stateMachineArn"])


def measure_orchestration_overhead(executions: int = 30) -> dict[str, float]:
    """Run the five-Task machine ``executions`` times (after two untimed runs that start the workers).

    Returns the overhead per execution in milliseconds (``median_ms``, ``p95_ms``, ``mean_ms``), the
    executions' own durations (``execution_median_ms``, ``execution_p95_ms``) and ``handler_median_ms``,
    the median of the five REPORT durations summed.
    """
    if executions < 1:
        raise ValueError(f"executions must be at least 1, not {executions}")
    with LocalCloud(log_sink=_quiet) as cloud:
        sfn = cloud.client("stepfunctions")
        machine = _trivial_machine(cloud)
        for _warm in range(2):
            arn = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
            cloud.wait_for_execution(arn)
        with cloud.stats.lock:
            cloud.stats.reports.clear()
        overheads: list[float] = []
        totals: list[float] = []
        handlers: list[float] = []
        for n in range(executions):
            arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"n": n}))["executionArn"]
            described = cloud.wait_for_execution(arn)
            if described["status"] != "SUCCEEDED":
                raise RuntimeError(f"execution {n} ended {described['status']}: {described.get('cause')}")
            history = sfn.get_execution_history(executionArn=arn)["events"]
            total_ms = (history[-1]["timestamp"] - history[0]["timestamp"]).total_seconds() * 1000
            with cloud.stats.lock:
                reports = list(cloud.stats.reports)
                cloud.stats.reports.clear()
            if len(reports) != TASKS:
                raise RuntimeError(f"execution {n} made {len(reports)} invocations, not {TASKS}")
            handler_ms = sum(invocation.duration_ms for _name, invocation in reports)
            totals.append(total_ms)
            handlers.append(handler_ms)
            overheads.append(total_ms - handler_ms)
    return {
        "executions": float(executions),
        "median_ms": statistics.median(overheads),
        "p95_ms": percentile(overheads, 0.95),
        "mean_ms": statistics.fmean(overheads),
        "execution_median_ms": statistics.median(totals),
        "execution_p95_ms": percentile(totals, 0.95),
        "handler_median_ms": statistics.median(handlers),
    }


# -- throughput ------------------------------------------------------------------------------------


def _jpeg(size: tuple[int, int], seed: int) -> bytes:
    from imgpipe_bench.photos import photo

    buf = io.BytesIO()
    photo(size, seed).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # utime and stime: the 14th and 15th fields of the line, the 12th and 13th after the command.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children() -> list[int]:
    """The processes this one started (the Lambda workers)."""
    me = str(os.getpid())
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == me:
            found.append(int(entry.name))
    return found


def _worker_cpu(seen: dict[int, float]) -> dict[int, float]:
    """The CPU seconds of each worker now, keeping the last figure of those that have gone since."""
    now = dict(seen)
    for pid in _children():
        now[pid] = _cpu_seconds(pid)
    return now


class _Executions:
    """The pipeline's executions, by the key in their input, as a client sees them (ListExecutions)."""

    def __init__(self, cloud: LocalCloud, machine: str) -> None:
        self.sfn = cloud.client("stepfunctions")
        self.machine = machine
        self.finished: dict[str, dict[str, Any]] = {}
        self._described: set[str] = set()

    def poll(self) -> None:
        for page in self.sfn.get_paginator("list_executions").paginate(stateMachineArn=self.machine):
            for summary in page["executions"]:
                arn = summary["executionArn"]
                if summary["status"] not in TERMINAL or arn in self._described:
                    continue
                described = self.sfn.describe_execution(executionArn=arn)
                self._described.add(arn)
                document = json.loads(described.get("input") or "{}")
                key = document.get("detail", {}).get("object", {}).get("key")
                if isinstance(key, str):
                    self.finished[key] = described

    def wait(self, keys: set[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            self.poll()
            failed = {k: d for k, d in self.finished.items() if k in keys and d["status"] != "SUCCEEDED"}
            if failed:
                key, described = next(iter(failed.items()))
                raise RuntimeError(
                    f"{len(failed)} execution(s) did not succeed; {key}: {described['status']} "
                    f"{described.get('error')}: {str(described.get('cause'))[:500]}"
                )
            missing = keys - set(self.finished)
            if not missing:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(missing)} of {len(keys)} upload(s) not done after {timeout_s:.0f} s")
            time.sleep(0.1)


@dataclass
class _Burst:
    """The timed uploads: when each started, and the CPU time the workers and this process used."""

    keys: list[str]
    uploaded: dict[str, float]
    started: float
    worker_cpu: float
    cloud_cpu: float


def _burst(cloud: LocalCloud, stack: Stack, bodies: list[bytes], executions: _Executions, timeout_s: float) -> _Burst:
    """Upload ``bodies`` at once from four threads and wait for every execution to succeed."""
    s3 = cloud.client("s3")
    keys = [f"{stack.upload_prefix}throughput/{index:04d}.jpg" for index in range(len(bodies))]
    uploaded: dict[str, float] = {}
    workers_before = _worker_cpu({})
    cloud_before = time.process_time()

    def upload(index: int) -> None:
        uploaded[keys[index]] = time.time()
        s3.put_object(Bucket=stack.source_bucket, Key=keys[index], Body=bodies[index])

    started = time.time()
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="upload") as pool:
        list(pool.map(upload, range(len(bodies))))
    executions.wait(set(keys), timeout_s)
    cloud_cpu = time.process_time() - cloud_before
    workers_after = _worker_cpu(workers_before)
    worker_cpu = sum(workers_after[pid] - workers_before.get(pid, 0.0) for pid in workers_after)
    return _Burst(keys, uploaded, started, worker_cpu, cloud_cpu)


def _throughput_figures(
    burst: _Burst, finished: dict[str, dict[str, Any]], reports: list[tuple[str, Any]]
) -> dict[str, float]:
    """``measure_throughput()``'s figures, from the burst, its finished executions and the REPORT lines."""
    keys = burst.keys
    done = {key: _epoch(finished[key]["stopDate"]) for key in keys}
    seconds = max(done.values()) - burst.started
    latencies = [done[key] - burst.uploaded[key] for key in keys]
    cores = float(os.cpu_count() or 1)
    by_function: dict[str, float] = defaultdict(float)
    for name, invocation in reports:
        by_function[name] += invocation.duration_ms / 1000
    figures = {
        "images": float(len(keys)),
        "seconds": seconds,
        "images_per_s": len(keys) / seconds,
        "p50_s": statistics.median(latencies),
        "p95_s": percentile(latencies, 0.95),
        "cores": cores,
        "handler_s": sum(by_function.values()),
        "executions_s": sum(_epoch(finished[key]["stopDate"]) - _epoch(finished[key]["startDate"]) for key in keys),
        "worker_cpu_s": burst.worker_cpu,
        "cloud_cpu_s": burst.cloud_cpu,
        "idle_cpu_s": max(0.0, seconds * cores - burst.worker_cpu - burst.cloud_cpu),
        "invocation_errors": float(sum(1 for _name, invocation in reports if invocation.error_type)),
    }
    for name, total in sorted(by_function.items()):
        figures[f"handler_s:{name}"] = total
    return figures


def measure_throughput(count: int = 40, size: tuple[int, int] = (4000, 3000)) -> dict[str, float]:
    """Upload ``count`` photo-like baseline JPEGs (quality 90) at once to the deployed template and wait for
    every execution to succeed (one untimed upload first, to start the workers).

    Returns ``images``, ``seconds`` (from the first upload to the last success), ``images_per_s``, the
    upload-to-success latency ``p50_s`` and ``p95_s``, and where the time went: ``handler_s`` (the REPORT
    durations summed) and ``handler_s:<function>`` per function, ``executions_s`` (the executions' durations
    summed), ``worker_cpu_s`` and ``cloud_cpu_s`` (CPU time of the Lambda workers and of this process: the
    local services, the orchestration, the uploads), ``idle_cpu_s`` (what the machine's ``cores`` left
    unused), and ``invocation_errors`` (failed invocations a Retry covered).

    Raises RuntimeError if an execution does not succeed, TimeoutError if one does not finish.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    bodies = [_jpeg(size, seed) for seed in range(count + 1)]
    timeout_s = max(600.0, 30.0 * count)
    with LocalCloud(log_sink=_quiet) as cloud:
        stack = cloud.deploy()
        executions = _Executions(cloud, stack.state_machine_arn)
        warm = f"{stack.upload_prefix}throughput/warm.jpg"
        cloud.client("s3").put_object(Bucket=stack.source_bucket, Key=warm, Body=bodies[0])
        executions.wait({warm}, timeout_s)
        with cloud.stats.lock:
            cloud.stats.reports.clear()
        burst = _burst(cloud, stack, bodies[1:], executions, timeout_s)
        with cloud.stats.lock:
            reports = list(cloud.stats.reports)
    return _throughput_figures(burst, executions.finished, reports)


def _epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)
