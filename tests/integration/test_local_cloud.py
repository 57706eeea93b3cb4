"""The real template on the embedded local cloud: S3 put → rule → state machine → workers → SNS."""

from __future__ import annotations

import io
import json
import struct
import zlib

import pytest
from PIL import Image

from localcloud.manual import start_manual_execution, state_path
from pipeline.keys import manifest_key, rendition_key
from tests.integration.conftest import Deployed, jpeg

pytestmark = pytest.mark.slow


def test_the_source_bucket_is_versioned_by_the_deployment(deployed: Deployed) -> None:
    s3 = deployed.s3
    assert s3.get_bucket_versioning(Bucket=deployed.stack.source_bucket)["Status"] == "Enabled"


def test_upload_runs_the_whole_pipeline(deployed: Deployed) -> None:
    key = deployed.stack.upload_prefix + "holiday photo +1 ☀.jpg"
    body = jpeg(1200, 800)
    deployed.upload(key, body)

    execution = deployed.execution_for(key)

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    name = "holiday photo +1 ☀.jpg"
    version = deployed.version_id(key)
    outputs = [k for k in deployed.keys(deployed.stack.destination_bucket) if k.startswith(name + "/")]
    assert outputs == deployed.expected_outputs(name, version, (1200, 1024, 320))
    got = deployed.s3.get_object(
        Bucket=deployed.stack.destination_bucket, Key=rendition_key(name, version, 1024, "jpg")
    )
    assert got["ContentType"] == "image/jpeg"
    with Image.open(io.BytesIO(got["Body"].read())) as img:
        assert img.size == (1024, 683)
    assert not list(deployed.keys(deployed.stack.staging_bucket)), "staging is cleared"
    assert deployed.s3.get_object(Bucket=deployed.stack.source_bucket, Key=key)["Body"].read() == body
    manifest = json.loads(
        deployed.s3.get_object(Bucket=deployed.stack.destination_bucket, Key=manifest_key(name))["Body"].read()
    )
    assert manifest["source"]["key"] == key
    assert manifest["source"]["revision"] == manifest["source"]["version_id"] == version
    assert sorted(r["key"] for r in manifest["renditions"]) == sorted(
        rendition_key(name, version, w, "jpg") for w in (1200, 1024, 320)
    )

    [message] = deployed.messages_for(key)
    assert message["MessageAttributes"]["status"]["Value"] == "SUCCEEDED"
    assert message["Message"]["execution"] == execution["executionArn"]
    assert message["Message"]["source"]["revision"] == version
    assert message["Message"]["manifest"] == {"bucket": deployed.stack.destination_bucket, "key": manifest_key(name)}
    assert {r["width"] for r in message["Message"]["renditions"]} == {1200, 1024, 320}
    assert {r["key"] for r in message["Message"]["renditions"]} == {
        rendition_key(name, version, w, "jpg") for w in (1200, 1024, 320)
    }

    path = [s["state"] for s in state_path(_history(deployed, execution["executionArn"]))]
    assert path == ["Validate", "Route", "Resize", "Watermark", "Store", "Notify"]


def _history(deployed: Deployed, arn: str) -> list[dict]:
    events: list[dict] = []
    for page in deployed.sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
        events.extend(page["events"])
    return events


def _bomb_png() -> bytes:
    """A few hundred bytes that declare 100000 x 100000 pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("name", "body", "error"),
    [
        ("empty.jpg", b"", "EmptyObject"),
        ("notes.jpg", b"plain text, not a photo\n" * 40, "UnsupportedFormat"),
        ("report.jpg", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"0" * 500, "UnsupportedFormat"),
        ("cut.jpg", jpeg()[:5000], "CorruptImage"),
        ("bomb.png", _bomb_png(), "TooManyPixels"),
    ],
)
def test_each_failure_class_fails_cleanly(deployed: Deployed, name: str, body: bytes, error: str) -> None:
    key = deployed.stack.upload_prefix + "bad/" + name
    deployed.upload(key, body)

    execution = deployed.execution_for(key)

    assert execution["status"] == "FAILED"
    assert execution["error"] == error
    assert execution["cause"]
    messages = deployed.messages_for(key)
    assert len(messages) == 1, "exactly one failure message"
    assert messages[0]["MessageAttributes"]["status"]["Value"] == "FAILED"
    assert messages[0]["MessageAttributes"]["error"]["Value"] == error
    assert messages[0]["Message"]["error"] == error
    assert messages[0]["Message"]["execution"] == execution["executionArn"]
    assert messages[0]["Message"]["source"]["key"] == key
    assert messages[0]["Message"]["step"] == "validate"
    assert "cause" not in messages[0]["Message"]
    assert "upload" not in messages[0]["Message"]
    assert not [k for k in deployed.keys(deployed.stack.destination_bucket) if k.startswith("bad/" + name)]
    assert deployed.keys(deployed.stack.staging_bucket) == []
    assert deployed.s3.get_object(Bucket=deployed.stack.source_bucket, Key=key)["Body"].read() == body
    path = [s["state"] for s in state_path(_history(deployed, execution["executionArn"]))]
    assert path == ["Validate", "Route", "Cleanup", "Failed or Superseded", "Publish Failure", "Failed"]
    assert path.count("Validate") == 1, "validation errors are never retried"
    [validate] = [s for s in state_path(_history(deployed, execution["executionArn"])) if s["state"] == "Validate"]
    assert validate["attempts"] == 1, "a rejection is an answer, not an error: never retried"


def test_uploads_outside_the_prefix_start_nothing(deployed: Deployed) -> None:
    before = len(deployed.sfn.list_executions(stateMachineArn=deployed.stack.state_machine_arn)["executions"])
    deployed.upload("elsewhere/photo.jpg", jpeg(200, 100))
    deployed.upload(deployed.stack.upload_prefix + "marker.jpg", jpeg(200, 100))
    deployed.execution_for(deployed.stack.upload_prefix + "marker.jpg")
    after = deployed.sfn.list_executions(stateMachineArn=deployed.stack.state_machine_arn)["executions"]
    assert len(after) == before + 1


REJECTED_PATH = ["Validate", "Route", "Cleanup", "Failed or Superseded", "Publish Failure", "Failed"]
PROCESSED_PATH = ["Validate", "Route", "Resize", "Watermark", "Store", "Notify"]

EVENTS: dict[str, tuple[str, str | None, list[str]]] = {
    "s3-object-created.json": ("SUCCEEDED", None, PROCESSED_PATH),
    "s3-object-deleted.json": ("SUCCEEDED", None, ["Validate", "Route", "Remove Outputs"]),
    "manual-execution.json": ("SUCCEEDED", None, PROCESSED_PATH),
    "failure-empty-object.json": ("FAILED", "EmptyObject", REJECTED_PATH),
    "failure-unsupported-format.json": ("FAILED", "UnsupportedFormat", REJECTED_PATH),
    "failure-missing-object.json": ("FAILED", "SourceMissing", REJECTED_PATH),
    "failure-outside-prefix.json": ("FAILED", "InvalidInput", REJECTED_PATH),
    "failure-invalid-input.json": ("FAILED", "InvalidInput", REJECTED_PATH),
}


def test_every_event_file_is_covered() -> None:
    from localcloud.sam import ROOT

    assert {p.name for p in (ROOT / "events").glob("*.json")} == set(EVENTS)


@pytest.mark.parametrize(("name", "expected"), sorted(EVENTS.items()))
def test_manual_execution_with_each_event_file(
    deployed: Deployed, name: str, expected: tuple[str, str | None, list[str]]
) -> None:
    from localcloud.sam import ROOT

    document = json.loads((ROOT / "events" / name).read_text())
    described, history = start_manual_execution(deployed.cloud.endpoint, document, deployed.stack)
    status, error, path = expected
    assert described["status"] == status, described.get("cause")
    assert described.get("error") == error
    steps = state_path(history)
    assert [s["state"] for s in steps] == path
    [validate] = [s for s in steps if s["state"] == "Validate"]
    assert validate["attempts"] == 1, "Validate answers every input once, rejections included"
    if name == "failure-invalid-input.json":
        # Validate names no source for an input that has none: the failure message's source is null.
        self_published = [
            m for m in deployed.subscriber_messages() if m["Message"].get("execution") == described["executionArn"]
        ]
        [message] = self_published
        assert message["Message"]["source"] is None
        assert message["Message"]["error"] == "InvalidInput"


def test_the_same_event_delivered_twice_gives_one_result_and_one_message(deployed: Deployed) -> None:
    """EventBridge is at-least-once: two executions of one Object Created event, at the same time."""
    key = deployed.stack.upload_prefix + "delivered twice.jpg"
    s3 = deployed.s3
    s3.put_object(Bucket=deployed.stack.source_bucket, Key=key, Body=jpeg(800, 600))
    first = deployed.execution_for(key)
    event = json.loads(first["input"])
    assert event["detail-type"] == "Object Created"
    before = {
        k: s3.head_object(Bucket=deployed.stack.destination_bucket, Key=k)["ETag"]
        for k in deployed.keys(deployed.stack.destination_bucket)
        if k.startswith("delivered twice.jpg/")
    }

    again = [
        deployed.sfn.start_execution(stateMachineArn=deployed.stack.state_machine_arn, input=json.dumps(event))[
            "executionArn"
        ]
        for _ in range(2)
    ]
    for arn in again:
        assert deployed.cloud.wait_for_execution(arn)["status"] == "SUCCEEDED"

    after = {
        k: s3.head_object(Bucket=deployed.stack.destination_bucket, Key=k)["ETag"]
        for k in deployed.keys(deployed.stack.destination_bucket)
        if k.startswith("delivered twice.jpg/")
    }
    assert after == before, "one set of outputs"
    version = deployed.version_id(key)
    assert sorted(after) == deployed.expected_outputs("delivered twice.jpg", version, (800, 320))
    assert len(deployed.messages_for(key)) == 1, "one success notification"
