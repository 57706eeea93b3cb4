"""Recovery on the embedded local cloud, with the upload rule disabled (every S3 event lost):
the reconciler restarts what was never processed, the backfill processes a whole prefix."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.keys import manifest_key, stem
from pipeline.reconcile import execution_name
from tests.integration.conftest import Deployed, deploy, jpeg

pytestmark = pytest.mark.slow

BACKFILL_CONCURRENCY = 2


@pytest.fixture
def events_lost() -> Iterator[Deployed]:
    """A fresh stack (the reconciler takes uploads of any age) whose upload rule is disabled."""
    parameters = {"ReconcileMinAgeSeconds": "0", "BackfillConcurrency": str(BACKFILL_CONCURRENCY)}
    for deployed in deploy(parameters):
        rule = deployed.stack.resources["ImagePipelineObjectCreated"].split("/")[-1]
        events = deployed.cloud.client("events")
        events.disable_rule(Name=rule)
        assert events.describe_rule(Name=rule)["State"] == "DISABLED"
        yield deployed


def executions(deployed: Deployed, state_machine_arn: str | None = None) -> list[dict[str, Any]]:
    arn = state_machine_arn or deployed.stack.state_machine_arn
    pages = deployed.sfn.get_paginator("list_executions").paginate(stateMachineArn=arn)
    return [e for page in pages for e in page["executions"]]


def reconcile(deployed: Deployed, run_id: str) -> dict[str, Any]:
    """Invoke the deployed reconciler as its schedule does, through the local cloud's Lambda."""
    response = deployed.cloud.client("lambda").invoke(
        FunctionName=deployed.stack.outputs["ReconcileFunctionName"],
        Payload=json.dumps({"execution_id": run_id, "scheduled_time": "2026-01-01T00:15:00Z"}).encode(),
    )
    payload = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, payload
    assert isinstance(payload, dict)
    return payload


def manifest(deployed: Deployed, key: str) -> dict[str, Any]:
    name = manifest_key(stem(key, deployed.stack.upload_prefix))
    body = deployed.s3.get_object(Bucket=deployed.stack.destination_bucket, Key=name)["Body"].read()
    document = json.loads(body)
    assert isinstance(document, dict)
    return document


def etag(deployed: Deployed, key: str) -> str:
    return str(deployed.s3.head_object(Bucket=deployed.stack.source_bucket, Key=key)["ETag"]).strip('"')


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end before a start at the same instant)."""
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in points:
        running += step
        peak = max(peak, running)
    return peak


def test_reconciler_restarts_every_upload_whose_event_was_lost(events_lost: Deployed) -> None:
    deployed = events_lost
    keys = [f"{deployed.stack.upload_prefix}lost/photo {i} +ü.jpg" for i in range(6)]
    for i, key in enumerate(keys):
        deployed.upload(key, jpeg(700 + 20 * i, 500))
    time.sleep(0.5)
    assert executions(deployed) == [], "the rule is disabled: no upload started the pipeline"

    first = reconcile(deployed, "run-1")
    at_once = reconcile(deployed, "run-2")  # while the first run's executions may still be running

    assert {k: first[k] for k in ("scanned", "missing", "running", "started")} == {
        "scanned": 6,
        "missing": 6,
        "running": 0,
        "started": 6,
    }
    assert at_once["started"] == 0
    assert at_once["missing"] == at_once["running"] + at_once["already_started"]
    for key in keys:
        execution = deployed.execution_for(key)
        assert execution["status"] == "SUCCEEDED", execution.get("cause")
        assert execution["name"] == execution_name(deployed.stack.source_bucket, key, etag(deployed, key))
        assert json.loads(execution["input"]) == {"bucket": deployed.stack.source_bucket, "key": key}
        assert manifest(deployed, key)["source"]["etag"] == etag(deployed, key)
        assert manifest(deployed, key)["source"]["revision"] == deployed.version_id(key)
        [message] = deployed.messages_for(key)
        assert message["MessageAttributes"]["status"]["Value"] == "SUCCEEDED"
    assert len(executions(deployed)) == 6

    second = reconcile(deployed, "run-3")

    assert {k: second[k] for k in ("scanned", "missing", "running", "started")} == {
        "scanned": 6,
        "missing": 0,
        "running": 0,
        "started": 0,
    }
    assert len(executions(deployed)) == 6
    assert all(len(deployed.messages_for(key)) == 1 for key in keys)


def test_reconciler_restarts_a_replaced_upload(events_lost: Deployed) -> None:
    deployed = events_lost
    key = f"{deployed.stack.upload_prefix}replaced.jpg"
    deployed.upload(key, jpeg(640, 480))
    assert reconcile(deployed, "run-1")["started"] == 1
    assert deployed.execution_for(key)["status"] == "SUCCEEDED"
    old = etag(deployed, key)

    deployed.upload(key, jpeg(800, 600))  # a new version, whose event is lost too
    again = reconcile(deployed, "run-2")

    assert again["missing"] == again["started"] == 1, "the manifest names the old ETag"
    new = etag(deployed, key)
    [rerun] = [e for e in executions(deployed) if e["name"] == execution_name(deployed.stack.source_bucket, key, new)]
    assert deployed.cloud.wait_for_execution(rerun["executionArn"], timeout_s=120)["status"] == "SUCCEEDED"
    assert manifest(deployed, key)["source"]["etag"] == new != old
    name = stem(key, deployed.stack.upload_prefix)
    version = deployed.version_id(key)
    assert manifest(deployed, key)["source"]["revision"] == version
    assert deployed.outputs_under(name) == deployed.expected_outputs(name, version, (800, 320)), (
        "the old renditions are gone"
    )
    assert len(executions(deployed)) == 2


def test_backfill_processes_every_upload_at_the_configured_concurrency(events_lost: Deployed) -> None:
    deployed = events_lost
    prefix = deployed.stack.upload_prefix
    images = [f"{prefix}backfill/{i:02d} photo.jpg" for i in range(5)]
    for i, key in enumerate(images):
        deployed.upload(key, jpeg(640 + 40 * i, 480))
    deployed.upload(f"{prefix}backfill/notes.txt", b"not an image at all")
    deployed.upload(f"{prefix}backfill/folder/", b"")  # what the console's "Create folder" writes
    deployed.upload("elsewhere/outside.jpg", jpeg())  # outside the upload prefix: not listed

    backfill_arn = deployed.stack.outputs["BackfillStateMachineArn"]
    started = deployed.sfn.start_execution(stateMachineArn=backfill_arn, input="{}")
    backfill = deployed.cloud.wait_for_execution(started["executionArn"], timeout_s=240)

    assert backfill["status"] == "SUCCEEDED", backfill.get("cause")
    for key in images:
        execution = deployed.execution_for(key)
        assert execution["status"] == "SUCCEEDED", execution.get("cause")
        assert manifest(deployed, key)["source"]["etag"] == etag(deployed, key)
        [message] = deployed.messages_for(key)
        assert message["MessageAttributes"]["status"]["Value"] == "SUCCEEDED"
    # A failed upload is the pipeline's to report; the backfill goes on past it.
    failed = deployed.execution_for(f"{prefix}backfill/notes.txt")
    assert failed["status"] == "FAILED"
    assert failed["error"] == "UnsupportedFormat"
    pipeline_runs = executions(deployed)
    assert len(pipeline_runs) == 6, "one execution per listed object, none for the folder marker"

    [map_run] = deployed.sfn.list_map_runs(executionArn=started["executionArn"])["mapRuns"]
    described = deployed.sfn.describe_map_run(mapRunArn=map_run["mapRunArn"])
    assert described["maxConcurrency"] == BACKFILL_CONCURRENCY
    assert described["itemCounts"]["total"] == 7  # 5 images, the text file, the folder marker
    assert described["itemCounts"]["failed"] == 0
    # The pipeline executions themselves never overlapped more than the concurrency allows.
    intervals = []
    for summary in pipeline_runs:
        run = deployed.sfn.describe_execution(executionArn=summary["executionArn"])
        intervals.append((run["startDate"].timestamp(), run["stopDate"].timestamp()))
    assert peak_overlap(intervals) == BACKFILL_CONCURRENCY
