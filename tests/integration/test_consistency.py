"""What the destination holds when sources are replaced, deleted, nested or named by hostile inputs.

Each test runs real executions of the deployed template on the embedded local cloud and checks the
destination by exact keys: ``<stem>/manifest.json`` and ``<stem>/<revision tag>/<width>w.jpg``, the
revision being the source's VersionId.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from localcloud.faults import RequestFault
from localcloud.manual import state_path
from pipeline.keys import manifest_key
from tests.integration.conftest import Deployed, jpeg

pytestmark = pytest.mark.slow

FORBIDDEN_IN_MESSAGES = ("stackTrace", "Traceback", "/var/task")


def manifest(deployed: Deployed, stem: str) -> dict[str, Any]:
    body = deployed.s3.get_object(Bucket=deployed.stack.destination_bucket, Key=manifest_key(stem))["Body"].read()
    document = json.loads(body)
    assert isinstance(document, dict)
    return document


def etags(deployed: Deployed, stem: str) -> dict[str, str]:
    """Every destination object below ``stem/`` and its ETag."""
    return {
        k: deployed.s3.head_object(Bucket=deployed.stack.destination_bucket, Key=k)["ETag"]
        for k in deployed.outputs_under(stem)
    }


def messages_of(deployed: Deployed, arn: str) -> list[dict[str, Any]]:
    return [m for m in deployed.subscriber_messages() if m["Message"].get("execution") == arn]


def run(deployed: Deployed, document: Any) -> dict[str, Any]:
    """Start an execution by hand with ``document`` and wait for its end."""
    arn = deployed.sfn.start_execution(stateMachineArn=deployed.stack.state_machine_arn, input=json.dumps(document))[
        "executionArn"
    ]
    described = deployed.cloud.wait_for_execution(arn, timeout_s=120)
    assert described["status"] != "RUNNING"
    return dict(described)


@contextmanager
def slowed_at_resize(deployed: Deployed, key: str, body: bytes) -> Iterator[None]:
    """Upload ``key``; its run's Resize fails once (four staging PUTs answer 500) and waits out the state
    machine's Retry interval, its source version pinned: the body of the ``with`` runs meanwhile."""
    stack = deployed.stack
    fault = RequestFault(
        service="s3",
        count=4,
        method="PUT",
        path_prefix=f"/{stack.staging_bucket}/staging/",
        code="InternalError",
        status=500,
    )
    deployed.cloud.inject_fault(fault)
    try:
        deployed.upload(key, body)
        deadline = time.monotonic() + 60
        while fault.hits < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fault.hits == 4, "the run reached Resize"
        yield
    finally:
        deployed.cloud.clear_faults()


def test_a_key_overwritten_while_its_first_run_retries_ends_with_the_new_image_only(deployed: Deployed) -> None:
    stack = deployed.stack
    name = "race/overwritten.jpg"
    key = stack.upload_prefix + name
    with slowed_at_resize(deployed, key, jpeg(1200, 800)):
        old_version = deployed.version_id(key)
        deployed.upload(key, jpeg(700, 500))  # overwritten while the first run waits to retry
    new_version = deployed.version_id(key)
    assert new_version != old_version

    first, second = deployed.finished_executions(key, 2)

    assert first["status"] == "SUCCEEDED", first.get("cause")
    assert second["status"] == "SUCCEEDED", second.get("cause")
    first_errors = {s["state"]: s["errors"] for s in state_path(deployed.history(first["executionArn"])) if s["errors"]}
    assert first_errors == {"Resize": ["TransientError"]}, "the first run was slowed by a retry"
    assert deployed.outputs_under(name) == deployed.expected_outputs(name, new_version, (700, 320))
    committed = manifest(deployed, name)
    assert committed["source"]["version_id"] == committed["source"]["revision"] == new_version
    assert [(r["width"], r["height"]) for r in committed["renditions"]] == [(700, 500), (320, 229)]
    messages = deployed.messages_for(key)
    assert [m["Message"]["status"] for m in messages] == ["SUCCEEDED"], "one message, for the new version"
    assert messages[0]["Message"]["source"]["revision"] == new_version
    assert messages[0]["Message"]["execution"] == second["executionArn"]
    assert deployed.keys(stack.staging_bucket) == []


def test_a_smaller_replacement_leaves_only_its_own_renditions(deployed: Deployed) -> None:
    name = "replaced/large then small.jpg"
    key = deployed.stack.upload_prefix + name
    deployed.upload(key, jpeg(3000, 2000))
    [first] = deployed.finished_executions(key, 1)
    assert first["status"] == "SUCCEEDED", first.get("cause")
    large = deployed.version_id(key)
    assert deployed.outputs_under(name) == deployed.expected_outputs(name, large, (2048, 1024, 320))

    deployed.upload(key, jpeg(800, 533))
    _, second = deployed.finished_executions(key, 2)

    assert second["status"] == "SUCCEEDED", second.get("cause")
    small = deployed.version_id(key)
    assert deployed.outputs_under(name) == deployed.expected_outputs(name, small, (800, 320))
    assert manifest(deployed, name)["source"]["revision"] == small
    revisions = [m["Message"]["source"]["revision"] for m in deployed.messages_for(key)]
    assert revisions == [large, small]


def test_a_failed_upload_never_touches_the_outputs_of_a_key_below_it(deployed: Deployed) -> None:
    prefix = deployed.stack.upload_prefix
    nested, parent = prefix + "n2/x.jpg/sub.jpg", prefix + "n2/x.jpg"
    deployed.upload(nested, jpeg(640, 480))
    [done] = deployed.finished_executions(nested, 1)
    assert done["status"] == "SUCCEEDED", done.get("cause")
    deployed.upload(parent, jpeg(500, 400))
    [parent_ok] = deployed.finished_executions(parent, 1)
    assert parent_ok["status"] == "SUCCEEDED", parent_ok.get("cause")
    nested_outputs = deployed.expected_outputs("n2/x.jpg/sub.jpg", deployed.version_id(nested), (640, 320))
    parent_outputs = deployed.expected_outputs("n2/x.jpg", deployed.version_id(parent), (500, 320))
    before = etags(deployed, "n2/x.jpg/sub.jpg")
    assert sorted(before) == nested_outputs
    assert deployed.outputs_under("n2/x.jpg") == sorted(parent_outputs + nested_outputs)

    deployed.upload(parent, b"plain text, not a photo\n" * 40)  # a new version of the parent key that fails
    _, failed = deployed.finished_executions(parent, 2)

    assert failed["status"] == "FAILED"
    assert failed["error"] == "UnsupportedFormat"
    assert etags(deployed, "n2/x.jpg/sub.jpg") == before, "the nested key's outputs are intact"
    assert manifest(deployed, "n2/x.jpg/sub.jpg")["source"]["key"] == nested
    # The replaced (older) version of the parent is gone: the destination never shows a replaced version.
    assert deployed.outputs_under("n2/x.jpg") == nested_outputs
    assert [m["Message"]["status"] for m in deployed.messages_for(parent)] == ["SUCCEEDED", "FAILED"]
    assert [m["Message"]["status"] for m in deployed.messages_for(nested)] == ["SUCCEEDED"]


def test_a_manual_execution_naming_another_bucket_fails_and_touches_nothing(deployed: Deployed) -> None:
    key = deployed.stack.upload_prefix + "t1/photo.jpg"
    deployed.upload(key, jpeg(600, 400))
    [done] = deployed.finished_executions(key, 1)
    assert done["status"] == "SUCCEEDED", done.get("cause")
    before = etags(deployed, "t1/photo.jpg")
    assert sorted(before) == deployed.expected_outputs("t1/photo.jpg", deployed.version_id(key), (600, 320))

    execution = run(deployed, {"bucket": "evil-bucket", "key": key})

    assert execution["status"] == "FAILED"
    assert execution["error"] == "InvalidInput"
    assert etags(deployed, "t1/photo.jpg") == before, "the real upload's outputs are intact"
    [message] = messages_of(deployed, execution["executionArn"])
    assert message["Message"]["status"] == "FAILED"
    assert message["Message"]["error"] == "InvalidInput"
    assert message["MessageAttributes"]["error"]["Value"] == "InvalidInput"
    source_bucket = deployed.stack.source_bucket
    real = [m for m in deployed.messages_for(key) if m["Message"]["source"].get("bucket") == source_bucket]
    assert [m["Message"]["status"] for m in real] == ["SUCCEEDED"]
    path = [s["state"] for s in state_path(deployed.history(execution["executionArn"]))]
    assert path == ["Validate", "Route", "Cleanup", "Failed or Superseded", "Publish Failure", "Failed"]


def _event_without_id(deployed: Deployed) -> dict[str, Any]:
    """An S3 "Object Created" event with no "id" and no detail.object (a malformed delivery)."""
    return {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-11-24T12:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{deployed.stack.source_bucket}"],
        "detail": {"version": "0", "bucket": {"name": deployed.stack.source_bucket}},
    }


def _near_the_payload_limit(deployed: Deployed) -> dict[str, Any]:
    """A manual input of about 255 KB: a key far past S3's 1024 bytes (the input limit is 256 KiB)."""
    key = deployed.stack.upload_prefix + "k" * (255 * 1024 - 100)
    document = {"bucket": deployed.stack.source_bucket, "key": key}
    assert 250 * 1024 < len(json.dumps(document)) < 256 * 1024
    return document


@pytest.mark.parametrize("make", [_event_without_id, _near_the_payload_limit], ids=["event-without-id", "255-kb"])
def test_hostile_inputs_fail_with_a_named_error_and_one_short_message(deployed: Deployed, make: Any) -> None:
    document = make(deployed)

    execution = run(deployed, document)

    assert execution["status"] == "FAILED"
    assert execution["error"] == "InvalidInput", execution.get("cause")
    assert execution.get("cause")
    assert len(execution["cause"]) <= 400, "a one-line reason, not the input echoed"
    [message] = messages_of(deployed, execution["executionArn"])
    assert message["Message"]["status"] == "FAILED"
    assert message["Message"]["error"] == "InvalidInput"
    assert message["MessageAttributes"]["error"]["Value"] == "InvalidInput"
    text = json.dumps(message["Message"], ensure_ascii=False)
    assert len(text.encode()) < 4096
    for forbidden in FORBIDDEN_IN_MESSAGES:
        assert forbidden not in text
    path = [s["state"] for s in state_path(deployed.history(execution["executionArn"]))]
    assert path == ["Validate", "Route", "Cleanup", "Failed or Superseded", "Publish Failure", "Failed"]


def test_deleting_a_source_removes_its_outputs_and_says_so(deployed: Deployed) -> None:
    name = "deleted/photo.jpg"
    key = deployed.stack.upload_prefix + name
    deployed.upload(key, jpeg(640, 480))
    [done] = deployed.finished_executions(key, 1)
    assert done["status"] == "SUCCEEDED", done.get("cause")
    version = deployed.version_id(key)
    outputs = deployed.expected_outputs(name, version, (640, 320))
    assert deployed.outputs_under(name) == outputs

    deployed.s3.delete_object(Bucket=deployed.stack.source_bucket, Key=key)  # a delete marker: versioned bucket
    _, removal = deployed.finished_executions(key, 2, timeout_s=60)

    assert removal["status"] == "SUCCEEDED", removal.get("cause")
    assert json.loads(removal["input"])["detail-type"] == "Object Deleted"
    path = [s["state"] for s in state_path(deployed.history(removal["executionArn"]))]
    assert path == ["Validate", "Route", "Remove Outputs"]
    assert deployed.outputs_under(name) == []
    statuses = [m["Message"]["status"] for m in deployed.messages_for(key)]
    assert statuses == ["SUCCEEDED", "DELETED"]
    [deleted] = [m for m in deployed.messages_for(key) if m["Message"]["status"] == "DELETED"]
    assert deleted["MessageAttributes"]["status"]["Value"] == "DELETED"
    assert deleted["Message"]["execution"] == removal["executionArn"]
    assert sorted(deleted["Message"]["removed"]) == outputs


def test_a_source_deleted_while_its_run_retries_ends_without_outputs_or_success(deployed: Deployed) -> None:
    stack = deployed.stack
    name = "race/deleted.jpg"
    key = stack.upload_prefix + name
    with slowed_at_resize(deployed, key, jpeg(1200, 800)):
        deployed.s3.delete_object(Bucket=stack.source_bucket, Key=key)

    processing, deletion = deployed.finished_executions(key, 2)

    assert processing["status"] == "SUCCEEDED", processing.get("cause")
    assert json.loads(processing["output"])["stored"]["outcome"] == "SUPERSEDED"
    path = [s["state"] for s in state_path(deployed.history(processing["executionArn"]))]
    assert path[-2:] == ["Store", "Notify"]
    assert deletion["status"] == "SUCCEEDED", deletion.get("cause")
    assert deployed.outputs_under(name) == []
    assert deployed.keys(stack.staging_bucket) == []
    statuses = [m["Message"]["status"] for m in deployed.messages_for(key)]
    assert "SUCCEEDED" not in statuses, "no success message for a deleted source"
    assert statuses == ["DELETED"]
