"""Process local files through the deployed pipeline: upload, wait, collect outputs and messages."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from localcloud.cloud import LocalCloud, Stack

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


class InputError(ValueError):
    """The files given cannot be processed as asked."""


def input_files(paths: Sequence[str]) -> list[Path]:
    """Files to upload, directories expanded; their names become keys, so they must be distinct."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")))
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{raw}: no such file or directory")
    names = [p.name for p in files]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"two inputs share the file name {duplicates[0]!r}; keys are file names")
    if not files:
        raise InputError("no input files")
    return files


@dataclass
class OutputFile:
    key: str
    width: int
    height: int
    format: str
    bytes: int
    path: str


@dataclass
class Result:
    file: str
    key: str
    execution_arn: str | None = None
    status: str = "NOT_STARTED"
    error: str | None = None
    cause: str | None = None
    outputs: list[OutputFile] = field(default_factory=list)
    notification: dict[str, Any] | None = None
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


class Subscriber:
    """An SQS queue subscribed to the pipeline's topic: what a subscriber receives."""

    def __init__(self, cloud: LocalCloud, stack: Stack, name: str = "imgpipe-subscriber") -> None:
        self.sqs = cloud.client("sqs")
        self.url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        cloud.client("sns").subscribe(TopicArn=stack.topic_arn, Protocol="sqs", Endpoint=arn)
        self.received: list[dict[str, Any]] = []

    def drain(self) -> list[dict[str, Any]]:
        while True:
            got = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
            messages = got.get("Messages", [])
            if not messages:
                return self.received
            for message in messages:
                envelope = json.loads(message["Body"])
                with contextlib.suppress(TypeError, ValueError):
                    envelope["Message"] = json.loads(envelope["Message"])
                self.received.append(envelope)
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])


def _execution_key(sfn: Any, arn: str) -> str | None:
    described = sfn.describe_execution(executionArn=arn)
    try:
        document = json.loads(described.get("input") or "{}")
    except ValueError:
        return None
    key = document.get("detail", {}).get("object", {}).get("key") if "detail" in document else document.get("key")
    return key if isinstance(key, str) else None


def _message_key(envelope: dict[str, Any]) -> str | None:
    message = envelope.get("Message")
    if not isinstance(message, dict):
        return None
    for field_name in ("source", "upload"):
        ref = message.get(field_name)
        if isinstance(ref, dict) and isinstance(ref.get("key"), str):
            return str(ref["key"])
        if isinstance(ref, dict) and isinstance(ref.get("input"), dict):
            return str(ref["input"].get("key"))
    return None


def process(
    cloud: LocalCloud,
    stack: Stack,
    paths: Sequence[Path],
    out_dir: Path,
    *,
    timeout_s: float = 600.0,
    on_progress: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Upload each file under the upload prefix (its file name as the key) and follow it to the end."""
    s3 = cloud.client("s3")
    sfn = cloud.client("stepfunctions")
    subscriber = Subscriber(cloud, stack)
    results: dict[str, Result] = {}
    started: dict[str, float] = {}
    for path in paths:
        key = stack.upload_prefix + path.name
        results[key] = Result(file=str(path), key=key)
        started[key] = time.monotonic()
        s3.put_object(Bucket=stack.source_bucket, Key=key, Body=path.read_bytes())

    deadline = time.monotonic() + timeout_s
    pending = set(results)
    while pending and time.monotonic() < deadline:
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=stack.state_machine_arn):
            for execution in page["executions"]:
                arn = execution["executionArn"]
                if execution["status"] not in TERMINAL or arn in {r.execution_arn for r in results.values()}:
                    continue
                found = _execution_key(sfn, arn)
                if found is None or found not in pending:
                    continue
                key = found
                result = results[key]
                described = sfn.describe_execution(executionArn=arn)
                result.execution_arn = arn
                result.status = described["status"]
                result.error = described.get("error")
                result.cause = described.get("cause")
                result.seconds = round(time.monotonic() - started[key], 3)
                pending.discard(key)
                if on_progress is not None:
                    on_progress(result)
        if pending:
            time.sleep(0.05)
    for key in pending:
        results[key].status = "TIMED_OUT"
        results[key].error = "LocalTimeout"
        results[key].cause = f"no execution finished for {key} within {timeout_s} s"

    envelopes = subscriber.drain()
    for envelope in envelopes:
        message_key = _message_key(envelope)
        if message_key in results and results[message_key].notification is None:
            results[message_key].notification = envelope
    for result in results.values():
        if result.status == "SUCCEEDED":
            result.outputs = _download(s3, stack, result, out_dir)
    return list(results.values())


def _download(s3: Any, stack: Stack, result: Result, out_dir: Path) -> list[OutputFile]:
    message = (result.notification or {}).get("Message") or {}
    manifest_ref = message.get("manifest") if isinstance(message, dict) else None
    if not manifest_ref:
        return []
    manifest = json.loads(s3.get_object(Bucket=manifest_ref["bucket"], Key=manifest_ref["key"])["Body"].read())
    # One version per source locally: out/<stem>/<width>w.<ext>, without the revision folder.
    stem = str(manifest_ref["key"]).removesuffix("/manifest.json")
    files: list[OutputFile] = []
    for rendition in manifest["renditions"]:
        target = out_dir / stem / rendition["key"].rsplit("/", 1)[-1]
        target.parent.mkdir(parents=True, exist_ok=True)
        body = s3.get_object(Bucket=rendition["bucket"], Key=rendition["key"])["Body"].read()
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(body)
        partial.replace(target)
        files.append(
            OutputFile(
                key=rendition["key"],
                width=rendition["width"],
                height=rendition["height"],
                format=rendition["format"],
                bytes=rendition["bytes"],
                path=str(target),
            )
        )
    return files
