"""The real template on the embedded local cloud: S3 put → rule → state machine → workers → SNS."""

from __future__ import annotations

import io
import json
import struct
import zlib

import pytest
from PIL import Image

from localcloud.manual import start_manual_execution, state_path
from tests.integration.conftest import Deployed, jpeg

pytestmark = pytest.mark.slow


def test_upload_runs_the_whole_pipeline(deployed: Deployed) -> None:
    key = deployed.stack.upload_prefix + "holiday photo +1 ☀.jpg"
    body = jpeg(1200, 800)
    deployed.upload(key, body)

    execution = deployed.execution_for(key)

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    name = "holiday photo +1 ☀.jpg"
    outputs = [k for k in deployed.keys(deployed.stack.destination_bucket) if k.startswith(name + "/")]
    assert outputs == sorted(f"{name}/{f}" for f in ("1024w.jpg", "1200w.jpg", "320w.jpg", "manifest.json"))
    got = deployed.s3.get_object(Bucket=deployed.stack.destination_bucket, Key=f"{name}/1024w.jpg")
    assert got["ContentType"] == "image/jpeg"
    with Image.open(io.BytesIO(got["Body"].read())) as img:
        assert img.size == (1024, 683)
    assert not list(deployed.keys(deployed.stack.staging_bucket)), "staging is cleared"
    assert deployed.s3.get_object(Bucket=deployed.stack.source_bucket, Key=key)["Body"].read() == body

    [message] = deployed.messages_for(key)
    assert message["MessageAttributes"]["status"]["Value"] == "SUCCEEDED"
    assert message["Message"]["execution"] == execution["executionArn"]
    assert {r["width"] for r in message["Message"]["renditions"]} == {1200, 1024, 320}

    path = [s["state"] for s in state_path(_history(deployed, execution["executionArn"]))]
    assert path == ["Read Upload", "From S3 Event", "Validate", "Resize", "Watermark", "Store", "Notify", "Done"]


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
    assert not [k for k in deployed.keys(deployed.stack.destination_bucket) if k.startswith("bad/" + name)]
    assert deployed.keys(deployed.stack.staging_bucket) == []
    assert deployed.s3.get_object(Bucket=deployed.stack.source_bucket, Key=key)["Body"].read() == body
    path = [s["state"] for s in state_path(_history(deployed, execution["executionArn"]))]
    assert path[-2:] == ["Publish Failure", "Failed"]
    assert path.count("Validate") == 1, "validation errors are never retried"


def test_uploads_outside_the_prefix_start_nothing(deployed: Deployed) -> None:
    before = len(deployed.sfn.list_executions(stateMachineArn=deployed.stack.state_machine_arn)["executions"])
    deployed.upload("elsewhere/photo.jpg", jpeg(200, 100))
    deployed.upload(deployed.stack.upload_prefix + "marker.jpg", jpeg(200, 100))
    deployed.execution_for(deployed.stack.upload_prefix + "marker.jpg")
    after = deployed.sfn.list_executions(stateMachineArn=deployed.stack.state_machine_arn)["executions"]
    assert len(after) == before + 1


EVENTS = {
    "s3-object-created.json": ("SUCCEEDED", None),
    "manual-execution.json": ("SUCCEEDED", None),
    "failure-empty-object.json": ("FAILED", "EmptyObject"),
    "failure-unsupported-format.json": ("FAILED", "UnsupportedFormat"),
    "failure-missing-object.json": ("FAILED", "SourceMissing"),
    "failure-outside-prefix.json": ("FAILED", "InvalidInput"),
    "failure-invalid-input.json": ("FAILED", "InvalidInput"),
}


@pytest.mark.parametrize(("name", "expected"), sorted(EVENTS.items()))
def test_manual_execution_with_each_event_file(deployed: Deployed, name: str, expected: tuple[str, str | None]) -> None:
    from localcloud.sam import ROOT

    document = json.loads((ROOT / "events" / name).read_text())
    described, history = start_manual_execution(deployed.cloud.endpoint, document, deployed.stack)
    status, error = expected
    assert described["status"] == status, described.get("cause")
    assert described.get("error") == error
    states = [s["state"] for s in state_path(history)]
    assert states[0] == "Read Upload"
    if name == "failure-invalid-input.json":
        assert "Validate" not in states, "rejected by the state machine itself, no Lambda runs"


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
    assert len(deployed.messages_for(key)) == 1, "one success notification"
