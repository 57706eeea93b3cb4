"""One load run, as it happens: the uploads, the notifications drained as they arrive, the executions
followed to their end, and what the local cloud recorded (``Run``), before it is summarised."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from imgpipe_bench.load.images import SIZES, make_bodies
from localcloud.cloud import LocalCloud, Stack, aws_client
from localcloud.manual import state_path
from localcloud.runner import TERMINAL, Subscriber


def quiet(function: str, line: str) -> None:
    """Function output is not part of the figures."""


@dataclass
class Upload:
    key: str
    size: tuple[int, int]
    body: bytes
    started: float = 0.0
    notified: float | None = None
    notification_status: str | None = None
    execution_status: str | None = None
    error: str | None = None


@dataclass
class Listener:
    """Drains the subscribed queue in the background, timestamping each message on arrival."""

    subscriber: Subscriber
    arrivals: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: int = 0

    def run(self) -> None:
        sqs, url = self.subscriber.sqs, self.subscriber.url
        while not self.stop.is_set():
            try:
                got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
            except Exception:  # noqa: BLE001 - a busy local cloud may drop a poll; the next one catches up
                self.errors += 1
                time.sleep(0.2)
                continue
            messages = got.get("Messages", [])
            now = time.monotonic()
            for message in messages:
                envelope = json.loads(message["Body"])
                envelope["Message"] = json.loads(envelope["Message"])
                self.arrivals.append((now, envelope))
            if messages:
                sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                )
            else:
                time.sleep(0.05)


def message_key(envelope: dict[str, Any]) -> str | None:
    """The key of the upload a notification is about (under ``source`` or ``upload``), if any."""
    message = envelope.get("Message")
    if not isinstance(message, dict):
        return None
    for name in ("source", "upload"):
        ref = message.get(name)
        if isinstance(ref, dict) and isinstance(ref.get("key"), str):
            return str(ref["key"])
    return None


def executions_by_key(cloud: LocalCloud, stack: Stack, cache: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The latest state of each execution, by the key in its input (finished ones are described once)."""
    sfn = cloud.client("stepfunctions")
    found: dict[str, dict[str, Any]] = {}
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=stack.state_machine_arn):
        for summary in page["executions"]:
            arn = summary["executionArn"]
            known = cache.get(arn)
            if known is None or (known["status"] not in TERMINAL and summary["status"] in TERMINAL):
                described = sfn.describe_execution(executionArn=arn)
                document = json.loads(described.get("input") or "{}")
                key = document.get("detail", {}).get("object", {}).get("key") or document.get("key")
                known = cache[arn] = {
                    "key": key,
                    "status": described["status"],
                    "error": described.get("error"),
                    "cause": described.get("cause"),
                }
            found.setdefault(str(known["key"]), known)
    return found


@dataclass
class Run:
    """What one load run observed, before it is summarised."""

    uploads: dict[str, Upload]
    executions: dict[str, dict[str, Any]]
    """Every execution seen, by ARN: its input key, status and error."""
    arrivals: list[tuple[float, dict[str, Any]]]
    written: list[str]
    dlq_depth: int
    reports: list[tuple[str, Any]]
    delivery_failures: int
    invocations_after_end: int
    """Invocations that ran after every execution had ended: abandoned by a timed-out task, still queued."""
    failed_in: dict[str, int]
    """Failed executions by the task whose error sent them to the failure branch."""
    deploy_s: float
    first_upload: float
    uploads_done: float
    threads: int
    upload_prefix: str


def _upload(
    cloud: LocalCloud, stack: Stack, bodies: list[tuple[tuple[int, int], bytes]], threads: int
) -> dict[str, Upload]:
    """Put every body under its own key from ``threads`` threads (one S3 client each), each upload's
    start time recorded."""
    uploads: dict[str, Upload] = {}
    for index, (size, body) in enumerate(bodies):
        key = f"{stack.upload_prefix}load/{index:05d}-{size[0]}x{size[1]}.jpg"
        uploads[key] = Upload(key, size, body)
    local = threading.local()

    def put(upload: Upload) -> None:
        if not hasattr(local, "s3"):
            local.s3 = aws_client("s3", cloud.endpoint)
        upload.started = time.monotonic()
        local.s3.put_object(Bucket=stack.source_bucket, Key=upload.key, Body=upload.body)

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bench-upload") as pool:
        list(pool.map(put, uploads.values()))
    return uploads


def _outputs(cloud: LocalCloud, stack: Stack) -> tuple[list[str], int]:
    """The keys in the destination bucket, and the dead-letter queue's depth."""
    s3, sqs = aws_client("s3", cloud.endpoint), aws_client("sqs", cloud.endpoint)
    written = [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.destination_bucket)
        for obj in page.get("Contents", [])
    ]
    attributes = sqs.get_queue_attributes(
        QueueUrl=stack.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return written, int(attributes["ApproximateNumberOfMessages"])


def observe(count: int, threads: int, timeout_s: float, progress: Console) -> Run:
    """Deploy on a fresh local cloud, upload ``count`` images at once, and follow each to its execution's
    end and its notification (or ``timeout_s`` after the last upload)."""
    progress.log(f"making {count} JPEGs at {', '.join(f'{w}x{h}' for w, h in SIZES)}")
    bodies = make_bodies(count)
    with LocalCloud(log_sink=quiet) as cloud:
        deploy_started = time.monotonic()
        stack = cloud.deploy()
        deploy_s = time.monotonic() - deploy_started
        listener = Listener(Subscriber(cloud, stack, name="bench-load-subscriber"))
        listening = threading.Thread(target=listener.run, name="bench-listener", daemon=True)
        listening.start()
        progress.log(f"deployed in {deploy_s:.1f} s; uploading {count} images from {threads} threads")
        first_upload = time.monotonic()
        uploads = _upload(cloud, stack, bodies, threads)
        uploads_done = time.monotonic()
        progress.log(f"uploaded in {uploads_done - first_upload:.1f} s; waiting for executions and notifications")
        executions = wait(
            cloud, stack, uploads, listener=listener, deadline=uploads_done + timeout_s, progress=progress
        )
        time.sleep(0.5)  # a last message in flight
        listener.stop.set()
        listening.join(timeout=10)
        with cloud.stats.lock:
            at_end = len(cloud.stats.reports)
        settle(cloud, progress)
        failed_in = failed_steps(cloud, executions)
        written, dlq_depth = _outputs(cloud, stack)
        with cloud.stats.lock:
            reports = list(cloud.stats.reports)
            delivery_failures = len(cloud.stats.delivery_failures)
    return Run(
        uploads=uploads,
        executions=executions,
        arrivals=list(listener.arrivals),
        written=written,
        dlq_depth=dlq_depth,
        reports=reports,
        delivery_failures=delivery_failures,
        invocations_after_end=len(reports) - at_end,
        failed_in=failed_in,
        deploy_s=deploy_s,
        first_upload=first_upload,
        uploads_done=uploads_done,
        threads=threads,
        upload_prefix=stack.upload_prefix,
    )


def failed_steps(cloud: LocalCloud, executions: dict[str, dict[str, Any]]) -> dict[str, int]:
    """For each failed execution, the state it left for the failure branch (the one before Cleanup)."""
    sfn = cloud.client("stepfunctions")
    steps: Counter[str] = Counter()
    for arn, execution in executions.items():
        if execution["status"] != "FAILED":
            continue
        history: list[dict[str, Any]] = []
        for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
            history.extend(page["events"])
        path = [step["state"] for step in state_path(history)]
        before = path[path.index("Cleanup") - 1] if "Cleanup" in path[1:] else path[-2] if len(path) > 1 else "?"
        steps[before] += 1
    return dict(steps)


def settle(cloud: LocalCloud, progress: Console, quiet_s: float = 5.0, limit_s: float = 600.0) -> None:
    """Let invocations still queued in the workers run out (no new REPORT line for ``quiet_s``) before stopping."""
    deadline = time.monotonic() + limit_s
    seen, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        with cloud.stats.lock:
            count = len(cloud.stats.reports)
        if count != seen:
            seen, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.5)
    progress.log(f"invocations still running after {limit_s:.0f} s; stopping anyway")


def wait(
    cloud: LocalCloud,
    stack: Stack,
    uploads: dict[str, Upload],
    *,
    listener: Listener,
    deadline: float,
    progress: Console,
) -> dict[str, dict[str, Any]]:
    """Until every upload has a finished execution and a notification, or the deadline."""
    cache: dict[str, dict[str, Any]] = {}
    last_report = 0.0
    while True:
        latest = executions_by_key(cloud, stack, cache)
        finished = sum(1 for k in uploads if latest.get(k, {}).get("status") in TERMINAL)
        notified = len({message_key(e) for _, e in list(listener.arrivals)} & set(uploads))
        if time.monotonic() - last_report > 10:
            progress.log(f"{finished}/{len(uploads)} executions finished, {notified}/{len(uploads)} notifications")
            last_report = time.monotonic()
        if (finished == notified == len(uploads)) or time.monotonic() > deadline:
            return cache
        time.sleep(1.0)
