"""Load on the local cloud: N uploads at once, every one followed to its execution and its notification.

    .venv/bin/python benchmarks/bench_load.py [--images 500] [--threads 16] [--timeout 1800] [--json]

Photo-like JPEGs are made in memory (a few sizes, every body distinct), the template is deployed on
a fresh local cloud, and all images are uploaded concurrently from a thread pool under unique keys,
each upload's start time recorded. A queue subscribed to the topic is drained continuously, each
message timestamped on arrival and matched to its key. When every upload has a notification and
every execution has ended (or at the timeout), the figures are:

* executions started / succeeded / failed (by error) for the uploaded keys;
* outputs written: renditions and manifests in the destination bucket against what the default
  widths (2048, 1024, 320; never upscaled) should give for each size;
* notifications received, dead-letter queue depth, EventBridge deliveries that failed;
* throughput: images per second from the first upload to the last notification;
* upload-to-notification latency p50 / p95 / max;
* LOST: uploads without both a finished execution and a notification. The exit status is 1 when
  anything is lost, else 0.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import random
import statistics
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageChops, ImageDraw
from rich.console import Console
from rich.table import Table

from imgpipe_bench.bench import defaults
from localcloud.cloud import LocalCloud, Stack, aws_client
from localcloud.manual import state_path
from localcloud.runner import TERMINAL, Subscriber

SIZES: tuple[tuple[int, int], ...] = ((1200, 800), (640, 480), (1600, 1200))
#: The widths the deployed stack makes: template.yaml's RenditionWidths default, read from the template.
WIDTHS = defaults().widths
BASES_PER_SIZE = 4


def quiet(function: str, line: str) -> None:
    """Function output is not part of the figures."""


# -- images --------------------------------------------------------------------------------------


def photo(size: tuple[int, int], seed: int) -> Image.Image:
    """Gradients, hard-edged shapes and grain: something for the resampler and the encoder to work on."""
    width, height = size
    rnd = random.Random(seed)  # noqa: S311 - deterministic test pixels, not secrets
    across = Image.linear_gradient("L").rotate(90).resize(size)
    down = Image.linear_gradient("L").resize(size)
    radial = Image.radial_gradient("L").resize(size)
    img = Image.merge("RGB", (across, down, radial))
    draw = ImageDraw.Draw(img)
    for i in range(14):
        x0, y0 = rnd.randrange(width), rnd.randrange(height)
        box = (x0, y0, x0 + rnd.randrange(width // 8, width // 2), y0 + rnd.randrange(height // 8, height // 2))
        fill = (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))
        (draw.ellipse if i % 2 else draw.rectangle)(box, fill=fill, outline=(0, 0, 0), width=max(1, width // 300))
    grain = Image.frombytes("L", size, rnd.randbytes(width * height)).point(lambda v: v * 20 // 255)
    return ImageChops.add(img, Image.merge("RGB", (grain, grain, grain)), 1.0, -10)


def make_bodies(count: int) -> list[tuple[tuple[int, int], bytes]]:
    """``count`` distinct JPEGs: a few base photos per size, each copy stamped with its own index."""
    bases = {(size, b): photo(size, seed=size[0] * 100 + b) for size in SIZES for b in range(BASES_PER_SIZE)}
    bodies = []
    for index in range(count):
        size = SIZES[index % len(SIZES)]
        img = bases[(size, index // len(SIZES) % BASES_PER_SIZE)].copy()
        ImageDraw.Draw(img).text((8, 8), f"#{index:05d}", fill=(255, 255, 255))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=88)
        bodies.append((size, buf.getvalue()))
    return bodies


def planned_widths(source_width: int, widths: Sequence[int] = WIDTHS) -> set[int]:
    """The rendition widths for a source: those below its width, plus its own width when any is at or above it."""
    planned = {w for w in widths if w < source_width}
    if any(w >= source_width for w in widths):
        planned.add(source_width)
    return planned


# -- the run -----------------------------------------------------------------------------------


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
    failed_in: dict[str, int]
    """Failed executions by the task whose error sent them to the failure branch."""
    """Invocations that ran after every execution had ended: abandoned by a timed-out task, still queued."""
    deploy_s: float
    first_upload: float
    uploads_done: float
    threads: int
    upload_prefix: str


def run(count: int, threads: int, timeout_s: float, progress: Console) -> Run:
    progress.log(f"making {count} JPEGs at {', '.join(f'{w}x{h}' for w, h in SIZES)}")
    bodies = make_bodies(count)
    with LocalCloud(log_sink=quiet) as cloud:
        deploy_started = time.monotonic()
        stack = cloud.deploy()
        deploy_s = time.monotonic() - deploy_started
        listener = Listener(Subscriber(cloud, stack, name="bench-load-subscriber"))
        listening = threading.Thread(target=listener.run, name="bench-listener", daemon=True)
        listening.start()
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

        progress.log(f"deployed in {deploy_s:.1f} s; uploading {count} images from {threads} threads")
        first_upload = time.monotonic()
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bench-upload") as pool:
            list(pool.map(put, uploads.values()))
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

        s3, sqs = aws_client("s3", cloud.endpoint), aws_client("sqs", cloud.endpoint)
        written = [
            obj["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.destination_bucket)
            for obj in page.get("Contents", [])
        ]
        attributes = sqs.get_queue_attributes(
            QueueUrl=stack.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        with cloud.stats.lock:
            reports = list(cloud.stats.reports)
            delivery_failures = len(cloud.stats.delivery_failures)
    return Run(
        uploads=uploads,
        executions=executions,
        arrivals=list(listener.arrivals),
        written=written,
        dlq_depth=int(attributes["ApproximateNumberOfMessages"]),
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


def summarise(observed: Run) -> dict[str, Any]:
    uploads = observed.uploads
    latest: dict[str, dict[str, Any]] = {}
    for execution in observed.executions.values():
        latest.setdefault(str(execution["key"]), execution)
    notifications = Counter(message_key(e) for _, e in observed.arrivals)
    for arrived, envelope in observed.arrivals:
        upload = uploads.get(str(message_key(envelope)))
        if upload is not None and upload.notified is None:
            upload.notified = arrived
            upload.notification_status = envelope["Message"].get("status")
    for key, upload in uploads.items():
        if key in latest:
            upload.execution_status = latest[key]["status"]
            upload.error = latest[key].get("error")

    statuses = Counter(u.execution_status or "NOT_STARTED" for u in uploads.values())
    errors = Counter(u.error for u in uploads.values() if u.error)
    causes: dict[str, str] = {}
    for execution in observed.executions.values():
        if execution.get("error") and execution["key"] in uploads:
            causes.setdefault(str(execution["error"]), str(execution.get("cause") or "")[:400])
    latencies = sorted(u.notified - u.started for u in uploads.values() if u.notified is not None)
    last_notification = max((u.notified for u in uploads.values() if u.notified is not None), default=None)
    span = (last_notification - observed.first_upload) if last_notification is not None else None
    # LOST: not both a finished execution and a notification.
    lost = [u.key for u in uploads.values() if u.execution_status not in TERMINAL or u.notified is None]
    ours = [k for k in observed.written if k.startswith("load/")]
    failed_stems = {
        u.key.removeprefix(observed.upload_prefix) + "/" for u in uploads.values() if u.execution_status != "SUCCEEDED"
    }
    left_by_failures = sum(1 for k in ours if k[: k.rfind("/") + 1] in failed_stems)
    notified_errors = Counter(
        str(e["Message"].get("error")) for _, e in observed.arrivals if e["Message"].get("status") == "FAILED"
    )
    invocation_errors = Counter(f"{name}: {inv.error_type}" for name, inv in observed.reports if inv.error_type)
    return {
        "images": len(uploads),
        "upload_threads": observed.threads,
        "deploy_s": round(observed.deploy_s, 2),
        "upload_phase_s": round(observed.uploads_done - observed.first_upload, 2),
        "executions_started": sum(1 for e in observed.executions.values() if e["key"] in uploads),
        "executions_succeeded": statuses.get("SUCCEEDED", 0),
        "executions_failed": statuses.get("FAILED", 0),
        "executions_other": {s: n for s, n in statuses.items() if s not in ("SUCCEEDED", "FAILED")},
        "errors": dict(errors),
        "error_causes": causes,
        "renditions_written": sum(1 for k in ours if not k.endswith("/manifest.json")),
        "renditions_expected": sum(len(planned_widths(u.size[0])) for u in uploads.values()),
        "renditions_expected_for_succeeded": sum(
            len(planned_widths(u.size[0])) for u in uploads.values() if u.execution_status == "SUCCEEDED"
        ),
        "outputs_left_by_failed_executions": left_by_failures,
        "manifests_written": sum(1 for k in ours if k.endswith("/manifest.json")),
        "manifests_expected": len(uploads),
        "notifications_received": sum(n for k, n in notifications.items() if k in uploads),
        "notifications_duplicated": sum(n - 1 for k, n in notifications.items() if k in uploads and n > 1),
        "failure_notifications_by_error": dict(notified_errors),
        "failed_in_step": observed.failed_in,
        "dead_letter_queue_depth": observed.dlq_depth,
        "eventbridge_delivery_failures": observed.delivery_failures,
        "lambda_invocations": len(observed.reports),
        "lambda_invocation_errors": dict(invocation_errors),
        "lambda_invocations_after_last_execution": observed.invocations_after_end,
        "seconds_first_upload_to_last_notification": round(span, 2) if span is not None else None,
        "throughput_images_per_s": round(len(latencies) / span, 2) if span else None,
        "latency_p50_s": round(statistics.median(latencies), 2) if latencies else None,
        "latency_p95_s": round(latencies[max(0, round(0.95 * len(latencies)) - 1)], 2) if latencies else None,
        "latency_max_s": round(latencies[-1], 2) if latencies else None,
        "lost": len(lost),
        "lost_keys": lost[:20],
    }


def table(figures: dict[str, Any]) -> Table:
    out = Table(title=f"local cloud under load: {figures['images']} uploads at once")
    out.add_column("figure")
    out.add_column("value", justify="right")

    def row(name: str, value: Any) -> None:
        out.add_row(name, "-" if value is None else str(value))

    row("executions started", figures["executions_started"])
    row("executions succeeded", figures["executions_succeeded"])
    row("executions failed", figures["executions_failed"])
    for status, n in figures["executions_other"].items():
        row(f"executions {status}", n)
    for error, n in figures["errors"].items():
        row(f"  error {error}", n)
    row("renditions written / expected", f"{figures['renditions_written']} / {figures['renditions_expected']}")
    row("  expected for the succeeded executions", figures["renditions_expected_for_succeeded"])
    row("  outputs left by failed executions", figures["outputs_left_by_failed_executions"])
    row("manifests written / expected", f"{figures['manifests_written']} / {figures['manifests_expected']}")
    row("notifications received", figures["notifications_received"])
    row("notifications duplicated", figures["notifications_duplicated"])
    for error, n in figures["failure_notifications_by_error"].items():
        row(f"  failure message error {error}", n)
    for step, n in figures["failed_in_step"].items():
        row(f"  failed in {step}", n)
    row("dead-letter queue depth", figures["dead_letter_queue_depth"])
    row("EventBridge delivery failures", figures["eventbridge_delivery_failures"])
    row("Lambda invocations", figures["lambda_invocations"])
    for error, n in figures["lambda_invocation_errors"].items():
        row(f"  invocation error {error}", n)
    row("  run after the last execution ended", figures["lambda_invocations_after_last_execution"])
    row("deploy (s)", figures["deploy_s"])
    row("upload phase (s)", figures["upload_phase_s"])
    row("first upload → last notification (s)", figures["seconds_first_upload_to_last_notification"])
    row("throughput (images/s)", figures["throughput_images_per_s"])
    row("upload → notification p50 (s)", figures["latency_p50_s"])
    row("upload → notification p95 (s)", figures["latency_p95_s"])
    row("upload → notification max (s)", figures["latency_max_s"])
    row("LOST", figures["lost"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500, help="how many uploads (default 500)")
    parser.add_argument("--threads", type=int, default=16, help="upload threads (default 16)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait after the last upload")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    if args.images < 1 or args.threads < 1:
        parser.error("--images and --threads must be at least 1")
    progress = Console(stderr=True)
    # The local cloud's own chatter (moto's notes on the template, failed executions) is not part of the figures.
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", "Tried to parse AWS", UserWarning)
    figures = summarise(run(args.images, args.threads, args.timeout, progress))
    if args.json:
        print(json.dumps(figures))
    else:
        Console().print(table(figures))
        for error, cause in figures["error_causes"].items():
            Console().print(f"[bold]{error}[/], e.g.: {cause}")
        if figures["lost"]:
            Console().print(f"[bold red]LOST[/]: {', '.join(figures['lost_keys'])}")
    return 1 if figures["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
