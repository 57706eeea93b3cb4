"""localcloud.services.s3 against moto itself: each gap still there, each patch
closing it (see conftest.py)."""

from __future__ import annotations

import copy
import io
import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from moto.events.models import Rule
from moto.s3 import notifications as s3_notifications
from moto.s3.models import S3Backend

from localcloud.services.s3 import KEY_LOCKS
from tests.localcloud.services.helpers import (
    ACCOUNT,
    ISO_SECONDS,
    MOTO_FIXED_EVENT_ID,
    PASS,
    REGION,
    Clients,
    FakeRuntime,
    bucket_model,
    deploy_stack,
    eventbridge_bucket,
    make_queue,
    make_rule,
    make_state_machine,
    queue_bodies,
)


def _eventbridge_bucket_resource(name: str, enabled: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::S3::Bucket",
        "Properties": {
            "BucketName": name,
            "NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": enabled}},
        },
    }


def test_gap_cfn_bucket_eventbridge(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap:
    drop patch cfn_bucket_eventbridge from localcloud.services.s3."""
    c = unpatched
    url, queue_arn = make_queue(c, "created")
    make_rule(c, "created", [{"Id": "q", "Arn": queue_arn}])
    deploy_stack(c, {"Bucket": _eventbridge_bucket_resource("cfn-bucket", True)})

    assert bucket_model("cfn-bucket").notification_configuration is None
    # (moto 5.2.5 never renders EventBridgeConfiguration here, even when set through the API: the
    # model and the missing event above are what tell this gap.)
    assert "EventBridgeConfiguration" not in c.s3.get_bucket_notification_configuration(Bucket="cfn-bucket")
    c.s3.put_object(Bucket="cfn-bucket", Key="a.jpg", Body=b"a")
    assert queue_bodies(c, url) == []


def test_patched_cfn_bucket_eventbridge(patched: Clients, runtime: FakeRuntime) -> None:
    c = patched
    sm = make_state_machine(c, PASS)
    make_rule(c, "created", [{"Id": "sm", "Arn": sm}])
    deploy_stack(
        c,
        {
            "Enabled": _eventbridge_bucket_resource("cfn-enabled", True),
            "EnabledString": _eventbridge_bucket_resource("cfn-enabled-string", "true"),
            "Disabled": _eventbridge_bucket_resource("cfn-disabled", False),
            "Plain": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "cfn-plain"}},
        },
    )

    for name in ("cfn-enabled", "cfn-enabled-string"):
        config = bucket_model(name).notification_configuration
        assert config is not None
        assert config.event_bridge == {}
    assert bucket_model("cfn-disabled").notification_configuration is None
    assert bucket_model("cfn-plain").notification_configuration is None

    for name in ("cfn-enabled", "cfn-enabled-string", "cfn-disabled", "cfn-plain"):
        c.s3.put_object(Bucket=name, Key="a.jpg", Body=b"a")
    assert [event["detail"]["bucket"]["name"] for _, _, event in runtime.deliveries] == [
        "cfn-enabled",
        "cfn-enabled-string",
    ]


def _versioned_bucket_resource(name: str, status: str | None) -> dict[str, Any]:
    properties: dict[str, Any] = {"BucketName": name}
    if status is not None:
        properties["VersioningConfiguration"] = {"Status": status}
    return {"Type": "AWS::S3::Bucket", "Properties": properties}


def test_gap_cfn_bucket_versioning(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap:
    drop patch cfn_bucket_versioning from localcloud.services.s3."""
    c = unpatched
    deploy_stack(c, {"Bucket": _versioned_bucket_resource("cfn-versioned", "Enabled")})
    assert "Status" not in c.s3.get_bucket_versioning(Bucket="cfn-versioned")
    assert "VersionId" not in c.s3.put_object(Bucket="cfn-versioned", Key="a.jpg", Body=b"a")


def test_patched_cfn_bucket_versioning(patched: Clients) -> None:
    c = patched
    deploy_stack(
        c,
        {
            "Enabled": _versioned_bucket_resource("cfn-versioned", "Enabled"),
            "Suspended": _versioned_bucket_resource("cfn-suspended", "Suspended"),
            "Plain": _versioned_bucket_resource("cfn-plain", None),
        },
    )
    assert c.s3.get_bucket_versioning(Bucket="cfn-versioned")["Status"] == "Enabled"
    assert c.s3.get_bucket_versioning(Bucket="cfn-suspended")["Status"] == "Suspended"
    assert "Status" not in c.s3.get_bucket_versioning(Bucket="cfn-plain")
    first = c.s3.put_object(Bucket="cfn-versioned", Key="a.jpg", Body=b"a")["VersionId"]
    second = c.s3.put_object(Bucket="cfn-versioned", Key="a.jpg", Body=b"b")["VersionId"]
    assert first != second
    assert c.s3.get_object(Bucket="cfn-versioned", Key="a.jpg", VersionId=first)["Body"].read() == b"a"


def _cors_bucket_resource(name: str) -> dict[str, Any]:
    rule = {
        "AllowedOrigins": ["https://app.example"],
        "AllowedMethods": ["POST"],
        "AllowedHeaders": ["*"],
        "MaxAge": 600,
    }
    return {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": name, "CorsConfiguration": {"CorsRules": [rule]}}}


def test_gap_cfn_bucket_cors(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap:
    drop patch cfn_bucket_cors from localcloud.services.s3."""
    c = unpatched
    deploy_stack(c, {"Bucket": _cors_bucket_resource("cfn-cors")})
    with pytest.raises(ClientError, match="NoSuchCORSConfiguration"):
        c.s3.get_bucket_cors(Bucket="cfn-cors")


def test_patched_cfn_bucket_cors(patched: Clients) -> None:
    c = patched
    deploy_stack(
        c, {"Bucket": _cors_bucket_resource("cfn-cors"), "Plain": _versioned_bucket_resource("cfn-plain", None)}
    )
    assert c.s3.get_bucket_cors(Bucket="cfn-cors")["CORSRules"] == [
        {
            "AllowedOrigins": ["https://app.example"],
            "AllowedMethods": ["POST"],
            "AllowedHeaders": ["*"],
            "MaxAgeSeconds": 600,
        }
    ]
    with pytest.raises(ClientError, match="NoSuchCORSConfiguration"):
        c.s3.get_bucket_cors(Bucket="cfn-plain")


def test_gap_s3_eventbridge_event_shape(unpatched: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    """If this fails, moto fixed the gap:
    drop patch s3_eventbridge_event_shape from localcloud.services.s3."""
    c = unpatched
    seen: list[tuple[str, dict[str, Any]]] = []
    raised: list[BaseException] = []
    original = Rule.send_to_targets

    def spy(self: Rule, event: Any, transform_input: bool = True) -> None:
        seen.append((self.name, copy.deepcopy(event)))
        try:
            original(self, event, transform_input)
        except Exception as exc:
            raised.append(exc)
            raise

    monkeypatch.setattr(Rule, "send_to_targets", spy)
    c.events.create_event_bus(Name="custom")
    queues = {name: make_queue(c, name) for name in ("on-default", "on-custom", "disabled")}
    make_rule(c, "on-default", [{"Id": "q", "Arn": queues["on-default"][1]}])
    make_rule(c, "on-custom", [{"Id": "q", "Arn": queues["on-custom"][1]}], bus="custom")
    make_rule(c, "disabled", [{"Id": "q", "Arn": queues["disabled"][1]}], State="DISABLED")
    eventbridge_bucket(c, "events-bucket")

    c.s3.put_object(Bucket="events-bucket", Key="a.jpg", Body=b"a")
    c.s3.put_object(Bucket="events-bucket", Key="b.jpg", Body=b"b")

    created = [(rule, event) for rule, event in seen if event["detail-type"] == "Object Created"]
    # Every bus's rules get the event, disabled ones too.
    assert Counter(rule for rule, _ in created) == {"on-default": 2, "disabled": 2, "on-custom": 2}
    for _, event in created:
        obj = event["detail"]["object"]
        assert "eTag" in obj
        assert "etag" not in obj
        assert isinstance(event["time"], float)
        assert event["id"] == MOTO_FIXED_EVENT_ID
    for url, _ in queues.values():
        assert [body["detail"]["object"]["key"] for body in queue_bodies(c, url)] == ["a.jpg", "b.jpg"]
    # moto also sends "Object Tags Added" for every PutObject (not bridged: rules filter on detail-type).
    assert {event["detail-type"] for _, event in seen} == {"Object Created", "Object Tags Added"}

    # An error on the way is swallowed: PutObject succeeds, the event is lost.
    sm = make_state_machine(c, PASS)
    make_rule(c, "to-state-machine", [{"Id": "sm", "Arn": sm}])
    seen.clear()
    c.s3.put_object(Bucket="events-bucket", Key="c.jpg", Body=b"c")
    assert raised
    assert all(isinstance(exc, NotImplementedError) for exc in raised)
    assert ("to-state-machine", "Object Created") in [(rule, e["detail-type"]) for rule, e in seen]


def test_patched_s3_eventbridge_event_shape(patched: Clients, runtime: FakeRuntime) -> None:
    c = patched
    sm = make_state_machine(c, PASS)
    c.events.create_event_bus(Name="custom")
    make_rule(c, "on-default", [{"Id": "sm", "Arn": sm}])
    make_rule(c, "on-custom", [{"Id": "sm", "Arn": sm}], bus="custom")
    make_rule(c, "disabled", [{"Id": "sm", "Arn": sm}], State="DISABLED")
    eventbridge_bucket(c, "events-bucket")

    for key in ("a.jpg", "b.jpg"):
        c.s3.put_object(Bucket="events-bucket", Key=key, Body=key.encode())

    # Only the default bus, only enabled rules.
    assert [rule for rule, _, _ in runtime.deliveries] == ["on-default", "on-default"]
    events = [event for _, _, event in runtime.deliveries]
    etags = [c.s3.head_object(Bucket="events-bucket", Key=k)["ETag"].strip('"') for k in ("a.jpg", "b.jpg")]
    for event, key, etag in zip(events, ("a.jpg", "b.jpg"), etags, strict=True):
        assert event["detail-type"] == "Object Created"
        assert event["source"] == "aws.s3"
        assert event["account"] == ACCOUNT
        assert event["region"] == REGION
        assert event["resources"] == ["arn:aws:s3:::events-bucket"]
        assert ISO_SECONDS.match(event["time"])
        assert uuid.UUID(event["id"]).version == 4
        detail = event["detail"]
        assert detail["bucket"] == {"name": "events-bucket"}
        assert detail["reason"] == "PutObject"
        assert detail["object"]["key"] == key
        assert detail["object"]["size"] == 5
        assert detail["object"]["etag"] == etag
        assert "eTag" not in detail["object"]
        assert "version-id" not in detail["object"]  # unversioned bucket
    assert events[0]["id"] != events[1]["id"]

    # Errors are not swallowed.
    runtime.deliver_error = RuntimeError("delivery broke")
    with pytest.raises(RuntimeError, match="delivery broke"):
        c.s3.put_object(Bucket="events-bucket", Key="c.jpg", Body=b"c")


def test_patched_s3_event_to_sqs_target(patched: Clients) -> None:
    """The S3 event's ISO ``time`` is handed back as epoch seconds to moto's own targets, which do
    ``float(event["time"])``: an SQS target of the same rule still receives the event."""
    c = patched
    url, queue_arn = make_queue(c, "created")
    make_rule(c, "to-queue", [{"Id": "q", "Arn": queue_arn}])
    eventbridge_bucket(c, "events-bucket")

    c.s3.put_object(Bucket="events-bucket", Key="a.jpg", Body=b"a")

    [body] = queue_bodies(c, url)
    assert ISO_SECONDS.match(body["time"])
    assert body["detail"]["object"]["key"] == "a.jpg"
    assert "etag" in body["detail"]["object"]


RACE_BUCKET = "race-bucket"


def _etag(c: Clients, key: str) -> str:
    return str(c.s3.head_object(Bucket=RACE_BUCKET, Key=key)["ETag"])


def _outcome(call: Callable[[], Any]) -> str:
    try:
        call()
    except ClientError as exc:
        return f"{exc.response['ResponseMetadata']['HTTPStatusCode']} {exc.response['Error']['Code']}"
    return "done"


def _race(
    monkeypatch: pytest.MonkeyPatch, key: str, *requests: Callable[[Any], Any], stagger_s: float = 0.0
) -> list[str]:
    """Send the requests at once (the n-th ``n * stagger_s`` later), each from a thread and client of its
    own; moto's read of ``key`` is slowed down so that every conditional check runs before any write,
    unless something orders them. The outcome of each request, in order."""
    original = S3Backend.get_object

    def slow_get_object(self: S3Backend, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        found = original(self, bucket_name, key_name, *args, **kwargs)
        if key_name == key:
            time.sleep(0.3)
        return found

    clients = [boto3.client("s3", region_name=REGION) for _ in requests]
    monkeypatch.setattr(S3Backend, "get_object", slow_get_object)
    start = threading.Barrier(len(requests))
    outcomes = [""] * len(requests)

    def send(index: int) -> None:
        start.wait()
        time.sleep(index * stagger_s)
        outcomes[index] = _outcome(lambda: requests[index](clients[index]))

    threads = [threading.Thread(target=send, args=(index,)) for index in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    monkeypatch.setattr(S3Backend, "get_object", original)
    return outcomes


def _put(key: str, body: bytes, **conditions: str) -> Callable[[Any], Any]:
    return lambda s3: s3.put_object(Bucket=RACE_BUCKET, Key=key, Body=body, **conditions)


def _delete(key: str, **conditions: str) -> Callable[[Any], Any]:
    return lambda s3: s3.delete_object(Bucket=RACE_BUCKET, Key=key, **conditions)


def _body(c: Clients, key: str) -> bytes | None:
    try:
        return bytes(c.s3.get_object(Bucket=RACE_BUCKET, Key=key)["Body"].read())
    except ClientError:
        return None


def test_gap_s3_conditional_writes_atomic(unpatched: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    """If this fails, moto fixed the gap:
    drop patch s3_conditional_writes_atomic from localcloud.services.s3."""
    c = unpatched
    c.s3.create_bucket(Bucket=RACE_BUCKET)
    c.s3.put_object(Bucket=RACE_BUCKET, Key="manifest.json", Body=b"v1")
    etag = _etag(c, "manifest.json")

    # Two writers that read the same ETag both pass If-Match: the second overwrites the first.
    both = _race(
        monkeypatch,
        "manifest.json",
        _put("manifest.json", b"a", IfMatch=etag),
        _put("manifest.json", b"b", IfMatch=etag),
    )
    assert both == ["done", "done"]
    # Two creators of an absent key both pass If-None-Match: *.
    assert _race(
        monkeypatch,
        "new.json",
        _put("new.json", b"a", IfNoneMatch="*"),
        _put("new.json", b"b", IfNoneMatch="*"),
    ) == ["done", "done"]
    # A commit and a rollback from the same ETag both succeed.
    c.s3.put_object(Bucket=RACE_BUCKET, Key="commit.json", Body=b"v1")
    etag = _etag(c, "commit.json")
    assert _race(
        monkeypatch,
        "commit.json",
        _put("commit.json", b"v2", IfMatch=etag),
        _delete("commit.json", IfMatch=etag),
    ) == ["done", "done"]
    # A create-only write checks, a plain write lands, then the create-only write overwrites it.
    assert _race(
        monkeypatch,
        "fresh.json",
        _put("fresh.json", b"first", IfNoneMatch="*"),
        _put("fresh.json", b"second"),
        stagger_s=0.1,
    ) == ["done", "done"]
    assert _body(c, "fresh.json") == b"first"


def test_patched_s3_conditional_writes_atomic(patched: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    c = patched
    c.s3.create_bucket(Bucket=RACE_BUCKET)
    c.s3.put_object(Bucket=RACE_BUCKET, Key="manifest.json", Body=b"v1")
    etag = _etag(c, "manifest.json")

    # Exactly one of two writers from the same ETag wins; what is stored is the winner's.
    outcomes = _race(
        monkeypatch,
        "manifest.json",
        _put("manifest.json", b"a", IfMatch=etag),
        _put("manifest.json", b"b", IfMatch=etag),
    )
    assert sorted(outcomes) == ["412 PreconditionFailed", "done"]
    assert _body(c, "manifest.json") == (b"a" if outcomes[0] == "done" else b"b")
    # Exactly one creator of an absent key.
    outcomes = _race(
        monkeypatch,
        "new.json",
        _put("new.json", b"a", IfNoneMatch="*"),
        _put("new.json", b"b", IfNoneMatch="*"),
    )
    assert sorted(outcomes) == ["412 PreconditionFailed", "done"]
    assert _body(c, "new.json") == (b"a" if outcomes[0] == "done" else b"b")
    # A commit and a rollback from the same ETag: one of them, and the other sees what it did.
    c.s3.put_object(Bucket=RACE_BUCKET, Key="commit.json", Body=b"v1")
    etag = _etag(c, "commit.json")
    outcomes = _race(
        monkeypatch,
        "commit.json",
        _put("commit.json", b"v2", IfMatch=etag),
        _delete("commit.json", IfMatch=etag),
    )
    assert outcomes in (["done", "412 PreconditionFailed"], ["404 NoSuchKey", "done"])
    assert _body(c, "commit.json") == (b"v2" if outcomes[0] == "done" else None)
    # A plain write during a conditional one's check waits for it, and is not lost.
    outcomes = _race(
        monkeypatch,
        "fresh.json",
        _put("fresh.json", b"first", IfNoneMatch="*"),
        _put("fresh.json", b"second"),
        stagger_s=0.1,
    )
    assert outcomes == ["done", "done"]
    assert _body(c, "fresh.json") == b"second"
    assert len(KEY_LOCKS) == 0, "no lock outlives its requests"

    # One request at a time, the conditions are S3's (moto 5.2.5 has them right).
    c.s3.put_object(Bucket=RACE_BUCKET, Key="k", Body=b"1")
    etag = _etag(c, "k")
    assert _outcome(lambda: c.s3.put_object(Bucket=RACE_BUCKET, Key="k", Body=b"x", IfNoneMatch="*")) == (
        "412 PreconditionFailed"
    )
    assert _outcome(lambda: c.s3.put_object(Bucket=RACE_BUCKET, Key="absent", Body=b"x", IfNoneMatch="*")) == "done"
    assert _outcome(lambda: c.s3.put_object(Bucket=RACE_BUCKET, Key="k", Body=b"2", IfMatch='"0"')) == (
        "412 PreconditionFailed"
    )
    assert _outcome(lambda: c.s3.put_object(Bucket=RACE_BUCKET, Key="nope", Body=b"2", IfMatch=etag)) == (
        "404 NoSuchKey"
    )
    assert _outcome(lambda: c.s3.put_object(Bucket=RACE_BUCKET, Key="k", Body=b"2", IfMatch=etag)) == "done"
    etag = _etag(c, "k")
    assert _outcome(lambda: c.s3.delete_object(Bucket=RACE_BUCKET, Key="k", IfMatch='"0"')) == (
        "412 PreconditionFailed"
    )
    assert _outcome(lambda: c.s3.delete_object(Bucket=RACE_BUCKET, Key="nope", IfMatch=etag)) == "404 NoSuchKey"
    assert _outcome(lambda: c.s3.delete_object(Bucket=RACE_BUCKET, Key="k", IfMatch=etag)) == "done"
    assert _body(c, "k") is None


def test_gap_s3_delete_if_match_any(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap:
    drop patch s3_delete_if_match_any from localcloud.services.s3."""
    c = unpatched
    c.s3.create_bucket(Bucket=RACE_BUCKET)
    c.s3.put_object(Bucket=RACE_BUCKET, Key="k", Body=b"1")

    assert _outcome(lambda: c.s3.delete_object(Bucket=RACE_BUCKET, Key="k", IfMatch="*")) == "412 PreconditionFailed"
    assert _body(c, "k") == b"1"
    assert _outcome(lambda: c.s3.delete_object(Bucket=RACE_BUCKET, Key="nope", IfMatch="*")) == "404 NoSuchKey"


def test_patched_s3_delete_if_match_any(patched: Clients) -> None:
    c = patched
    c.s3.create_bucket(Bucket=RACE_BUCKET)
    c.s3.put_object(Bucket=RACE_BUCKET, Key="k", Body=b"1")

    assert _outcome(lambda: c.s3.delete_object(Bucket=RACE_BUCKET, Key="k", IfMatch="*")) == "done"
    assert _body(c, "k") is None
    assert _outcome(lambda: c.s3.delete_object(Bucket=RACE_BUCKET, Key="k", IfMatch="*")) == "404 NoSuchKey"
    assert _outcome(lambda: c.s3.delete_object(Bucket=RACE_BUCKET, Key="nope", IfMatch="*")) == "404 NoSuchKey"


def _multipart_upload(c: Clients, bucket: str, key: str, body: bytes) -> str:
    """One multipart upload of ``body`` in one part; the ETag S3 gives the object."""
    upload = c.s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    part = c.s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=body)
    done = c.s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    )
    return str(done["ETag"]).strip('"')


def test_gap_s3_multipart_one_created_event(unpatched: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    """If this fails, moto fixed the gap:
    drop patch s3_multipart_one_created_event from localcloud.services.s3."""
    c = unpatched
    sent: list[str] = []
    original = s3_notifications._send_event_bridge_message

    def spy(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
        sent.append(event_name)
        original(account_id, bucket, event_name, key)

    monkeypatch.setattr(s3_notifications, "_send_event_bridge_message", spy)
    url, queue_arn = make_queue(c, "created")
    make_rule(c, "created", [{"Id": "q", "Arn": queue_arn}])
    eventbridge_bucket(c, "events-bucket")

    _multipart_upload(c, "events-bucket", "big.jpg", b"a" * 1024)

    created = [name for name in sent if name.startswith("s3:ObjectCreated:")]
    assert created == ["s3:ObjectCreated:Put", "s3:ObjectCreated:CompleteMultipartUpload"]
    assert [body["detail"]["object"]["key"] for body in queue_bodies(c, url)] == ["big.jpg", "big.jpg"]


def test_patched_s3_multipart_one_created_event(patched: Clients, runtime: FakeRuntime) -> None:
    c = patched
    sm = make_state_machine(c, PASS)
    make_rule(c, "created", [{"Id": "sm", "Arn": sm}])
    eventbridge_bucket(c, "events-bucket")

    etag = _multipart_upload(c, "events-bucket", "big.jpg", b"a" * 1024)

    [(rule, _, event)] = runtime.deliveries
    assert rule == "created"
    assert event["detail-type"] == "Object Created"
    assert event["detail"]["reason"] == "CompleteMultipartUpload"
    assert event["detail"]["object"]["key"] == "big.jpg"
    assert event["detail"]["object"]["size"] == 1024
    assert event["detail"]["object"]["etag"] == etag
    assert etag.endswith("-1")
    # What the object keeps of the upload is as before: metadata, tags, ACL.
    assert c.s3.head_object(Bucket="events-bucket", Key="big.jpg")["ContentLength"] == 1024

    # boto3's managed transfer (what `aws s3 cp` does) above its multipart threshold: one event.
    runtime.deliveries.clear()
    body = io.BytesIO(os.urandom(11 * 1024 * 1024))
    c.s3.upload_fileobj(
        body,
        "events-bucket",
        "uploads/large.jpg",
        Config=TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20),
    )
    [(_, _, event)] = runtime.deliveries
    assert event["detail"]["reason"] == "CompleteMultipartUpload"
    assert event["detail"]["object"]["size"] == 11 * 1024 * 1024
    assert event["detail"]["object"]["etag"].endswith("-3")
    # A PutObject is still one event, with its own reason.
    runtime.deliveries.clear()
    c.s3.put_object(Bucket="events-bucket", Key="small.jpg", Body=b"s")
    assert [event["detail"]["reason"] for _, _, event in runtime.deliveries] == ["PutObject"]


DELETED = json.dumps({"source": ["aws.s3"], "detail-type": ["Object Deleted"]})


def _versioned_deletions(c: Clients) -> tuple[str, list[str]]:
    """Three versions of a key in a versioned bucket; then a delete (marker) and a permanent delete of
    one noncurrent version. Returns the queue receiving Object Deleted events and the versions."""
    url, arn = make_queue(c, "deleted")
    make_rule(c, "deleted", [{"Id": "q", "Arn": arn}], pattern=DELETED)
    eventbridge_bucket(c, "versioned")
    c.s3.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
    versions = [c.s3.put_object(Bucket="versioned", Key="k.jpg", Body=bytes([n]))["VersionId"] for n in range(3)]
    return url, versions


def test_gap_s3_versioned_deletion_event(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap:
    drop patch s3_versioned_deletion_event from localcloud.services.s3."""
    c = unpatched
    url, versions = _versioned_deletions(c)
    c.s3.delete_object(Bucket="versioned", Key="k.jpg")
    c.s3.delete_object(Bucket="versioned", Key="k.jpg", VersionId=versions[0])
    assert queue_bodies(c, url) == [], "no event for a delete marker, nor for a permanent delete of one version"


def test_patched_s3_versioned_deletion_event(patched: Clients) -> None:
    c = patched
    url, versions = _versioned_deletions(c)
    marker = c.s3.delete_object(Bucket="versioned", Key="k.jpg")["VersionId"]
    c.s3.delete_object(Bucket="versioned", Key="k.jpg", VersionId=versions[0])
    events = queue_bodies(c, url)
    assert [(e["detail"]["deletion-type"], e["detail"]["object"]["version-id"]) for e in events] == [
        ("Delete Marker Created", marker),
        ("Permanently Deleted", versions[0]),
    ]
    for event in events:
        assert event["detail-type"] == "Object Deleted"
        assert event["detail"]["reason"] == "DeleteObject"
        assert event["detail"]["object"]["key"] == "k.jpg"
        assert "etag" not in event["detail"]["object"]
        assert "size" not in event["detail"]["object"]
    # The key's last versions going: one event each, never two for one deletion.
    for version in (marker, versions[1], versions[2]):
        c.s3.delete_object(Bucket="versioned", Key="k.jpg", VersionId=version)
    assert [e["detail"]["object"]["version-id"] for e in queue_bodies(c, url)] == [marker, versions[1], versions[2]]
