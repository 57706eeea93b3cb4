"""A load ``Run`` summarised: the figures, as one flat object, and as a table."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from rich.table import Table

from imgpipe_bench.imaging.cases import defaults
from imgpipe_bench.load.observe import Run, message_key
from localcloud.runner import TERMINAL
from pipeline.imaging import plan_widths


def _attribute(observed: Run) -> None:
    """Give each upload its first notification (time and status) and its execution's status and error."""
    uploads = observed.uploads
    latest: dict[str, dict[str, Any]] = {}
    for execution in observed.executions.values():
        latest.setdefault(str(execution["key"]), execution)
    for arrived, envelope in observed.arrivals:
        upload = uploads.get(str(message_key(envelope)))
        if upload is not None and upload.notified is None:
            upload.notified = arrived
            upload.notification_status = envelope["Message"].get("status")
    for key, upload in uploads.items():
        if key in latest:
            upload.execution_status = latest[key]["status"]
            upload.error = latest[key].get("error")


def _execution_figures(observed: Run) -> dict[str, Any]:
    uploads = observed.uploads
    statuses = Counter(u.execution_status or "NOT_STARTED" for u in uploads.values())
    causes: dict[str, str] = {}
    for execution in observed.executions.values():
        if execution.get("error") and execution["key"] in uploads:
            causes.setdefault(str(execution["error"]), str(execution.get("cause") or "")[:400])
    return {
        "executions_started": sum(1 for e in observed.executions.values() if e["key"] in uploads),
        "executions_succeeded": statuses.get("SUCCEEDED", 0),
        "executions_failed": statuses.get("FAILED", 0),
        "executions_other": {s: n for s, n in statuses.items() if s not in ("SUCCEEDED", "FAILED")},
        "errors": dict(Counter(u.error for u in uploads.values() if u.error)),
        "error_causes": causes,
    }


def _output_figures(observed: Run) -> dict[str, Any]:
    """Renditions and manifests written against what the template's default widths give each size."""
    uploads = observed.uploads
    widths = defaults().widths
    ours = [k for k in observed.written if k.startswith("load/")]
    failed_stems = {
        u.key.removeprefix(observed.upload_prefix) + "/" for u in uploads.values() if u.execution_status != "SUCCEEDED"
    }
    return {
        "renditions_written": sum(1 for k in ours if not k.endswith("/manifest.json")),
        "renditions_expected": sum(len(plan_widths(u.size[0], widths)) for u in uploads.values()),
        "renditions_expected_for_succeeded": sum(
            len(plan_widths(u.size[0], widths)) for u in uploads.values() if u.execution_status == "SUCCEEDED"
        ),
        "outputs_left_by_failed_executions": sum(1 for k in ours if k[: k.rfind("/") + 1] in failed_stems),
        "manifests_written": sum(1 for k in ours if k.endswith("/manifest.json")),
        "manifests_expected": len(uploads),
    }


def _notification_and_service_figures(observed: Run) -> dict[str, Any]:
    uploads = observed.uploads
    notifications = Counter(message_key(e) for _, e in observed.arrivals)
    notified_errors = Counter(
        str(e["Message"].get("error")) for _, e in observed.arrivals if e["Message"].get("status") == "FAILED"
    )
    invocation_errors = Counter(f"{name}: {inv.error_type}" for name, inv in observed.reports if inv.error_type)
    return {
        "notifications_received": sum(n for k, n in notifications.items() if k in uploads),
        "notifications_duplicated": sum(n - 1 for k, n in notifications.items() if k in uploads and n > 1),
        "failure_notifications_by_error": dict(notified_errors),
        "failed_in_step": observed.failed_in,
        "dead_letter_queue_depth": observed.dlq_depth,
        "eventbridge_delivery_failures": observed.delivery_failures,
        "lambda_invocations": len(observed.reports),
        "lambda_invocation_errors": dict(invocation_errors),
        "lambda_invocations_after_last_execution": observed.invocations_after_end,
    }


def _timing_figures(observed: Run) -> dict[str, Any]:
    """Throughput from the first upload to the last notification, and upload-to-notification latency."""
    uploads = observed.uploads
    latencies = sorted(u.notified - u.started for u in uploads.values() if u.notified is not None)
    last_notification = max((u.notified for u in uploads.values() if u.notified is not None), default=None)
    span = (last_notification - observed.first_upload) if last_notification is not None else None
    return {
        "seconds_first_upload_to_last_notification": round(span, 2) if span is not None else None,
        "throughput_images_per_s": round(len(latencies) / span, 2) if span else None,
        "latency_p50_s": round(statistics.median(latencies), 2) if latencies else None,
        "latency_p95_s": round(latencies[max(0, round(0.95 * len(latencies)) - 1)], 2) if latencies else None,
        "latency_max_s": round(latencies[-1], 2) if latencies else None,
    }


def summarise(observed: Run) -> dict[str, Any]:
    """The run's figures, as one flat object (see ``imgpipe_bench.load``)."""
    _attribute(observed)
    uploads = observed.uploads
    # LOST: not both a finished execution and a notification.
    lost = [u.key for u in uploads.values() if u.execution_status not in TERMINAL or u.notified is None]
    return {
        "images": len(uploads),
        "upload_threads": observed.threads,
        "deploy_s": round(observed.deploy_s, 2),
        "upload_phase_s": round(observed.uploads_done - observed.first_upload, 2),
        **_execution_figures(observed),
        **_output_figures(observed),
        **_notification_and_service_figures(observed),
        **_timing_figures(observed),
        "lost": len(lost),
        "lost_keys": lost[:20],
    }


def table(figures: dict[str, Any]) -> Table:
    """``summarise()``'s figures as a two-column table."""
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
