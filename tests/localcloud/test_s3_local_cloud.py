"""S3 conditional requests and multipart events through the local cloud's server, as clients see them.

tests/localcloud/services/test_s3.py checks each patch against moto in-process; here the same requests go over HTTP to
``LocalCloud`` (moto's server with every patch applied), with the clients the local cloud hands out.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from moto.s3.models import S3Backend

from localcloud.cloud import LocalCloud
from localcloud.services.s3 import KEY_LOCKS

BUCKET = "conditional-bucket"
MIB = 1024 * 1024


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(concurrency=1) as running:
        running.client("s3").create_bucket(Bucket=BUCKET)
        yield running


def _outcome(call: Callable[[], Any]) -> str:
    try:
        call()
    except ClientError as exc:
        return f"{exc.response['ResponseMetadata']['HTTPStatusCode']} {exc.response['Error']['Code']}"
    return "done"


def test_conditional_puts_and_deletes_answer_as_s3(cloud: LocalCloud) -> None:
    s3 = cloud.client("s3")
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"1")
    etag = s3.head_object(Bucket=BUCKET, Key="k")["ETag"]

    def put(key: str, **conditions: str) -> str:
        return _outcome(lambda: s3.put_object(Bucket=BUCKET, Key=key, Body=b"x", **conditions))

    def delete(key: str, **conditions: str) -> str:
        return _outcome(lambda: s3.delete_object(Bucket=BUCKET, Key=key, **conditions))

    assert put("k", IfNoneMatch="*") == "412 PreconditionFailed"
    assert put("created", IfNoneMatch="*") == "done"
    assert put("k", IfMatch='"0123"') == "412 PreconditionFailed"
    assert put("absent", IfMatch=etag) == "404 NoSuchKey"
    assert put("k", IfMatch=etag) == "done"
    etag = s3.head_object(Bucket=BUCKET, Key="k")["ETag"]
    assert delete("k", IfMatch='"0123"') == "412 PreconditionFailed"
    assert delete("absent", IfMatch=etag) == "404 NoSuchKey"
    assert delete("k", IfMatch=etag) == "done"
    assert _outcome(lambda: s3.head_object(Bucket=BUCKET, Key="k")) == "404 404"
    assert delete("created", IfMatch="*") == "done"
    assert delete("created", IfMatch="*") == "404 NoSuchKey"


def test_concurrent_commits_from_one_etag_let_exactly_one_through(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers that read the same ETag, then PutObject If-Match it at once (the server's read of the key
    slowed down, so that without the object's lock every check would pass before any write)."""
    s3 = cloud.client("s3")
    s3.put_object(Bucket=BUCKET, Key="manifest.json", Body=b"v0")
    etag = s3.head_object(Bucket=BUCKET, Key="manifest.json")["ETag"]
    original = S3Backend.get_object

    def slow_get_object(self: S3Backend, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        found = original(self, bucket_name, key_name, *args, **kwargs)
        time.sleep(0.1)
        return found

    monkeypatch.setattr(S3Backend, "get_object", slow_get_object)
    writers = 4
    clients = [cloud.client("s3") for _ in range(writers)]
    start = threading.Barrier(writers)
    outcomes = [""] * writers

    def commit(index: int) -> None:
        start.wait()
        body = f"writer {index}".encode()
        outcomes[index] = _outcome(
            lambda: clients[index].put_object(Bucket=BUCKET, Key="manifest.json", Body=body, IfMatch=etag)
        )

    threads = [threading.Thread(target=commit, args=(index,)) for index in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    monkeypatch.setattr(S3Backend, "get_object", original)

    assert sorted(outcomes) == ["412 PreconditionFailed"] * (writers - 1) + ["done"]
    winner = outcomes.index("done")
    assert s3.get_object(Bucket=BUCKET, Key="manifest.json")["Body"].read() == f"writer {winner}".encode()
    assert len(KEY_LOCKS) == 0


def test_a_managed_multipart_upload_is_one_object_created_event(cloud: LocalCloud) -> None:
    """boto3's upload_fileobj above its multipart threshold, as ``aws s3 cp`` uploads a large file."""
    s3, sqs, events = cloud.client("s3"), cloud.client("sqs"), cloud.client("events")
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}})
    queue_url = sqs.create_queue(QueueName="created")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="created", EventPattern=json.dumps({"source": ["aws.s3"], "detail-type": ["Object Created"]}))
    events.put_targets(Rule="created", Targets=[{"Id": "q", "Arn": queue_arn}])

    size = 11 * MIB
    s3.upload_fileobj(
        io.BytesIO(os.urandom(size)),
        BUCKET,
        "uploads/large.jpg",
        Config=TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB),
    )

    etag = s3.head_object(Bucket=BUCKET, Key="uploads/large.jpg")["ETag"].strip('"')
    assert etag.endswith("-3"), "uploaded in three parts"
    received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    [event] = [json.loads(message["Body"]) for message in received]
    assert event["detail"]["reason"] == "CompleteMultipartUpload"
    assert event["detail"]["object"]["key"] == "uploads/large.jpg"
    assert event["detail"]["object"]["size"] == size
    assert event["detail"]["object"]["etag"] == etag
