"""A local cloud with template.yaml deployed, shared by the tests of a module."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from PIL import Image, ImageDraw

from localcloud.cloud import LocalCloud, Stack
from localcloud.runner import Subscriber
from pipeline.keys import manifest_key, rendition_key


def jpeg(width: int = 900, height: int = 600) -> bytes:
    img = Image.new("RGB", (width, height), (30, 90, 160))
    draw = ImageDraw.Draw(img)
    for x in range(0, width, 30):
        draw.line([(x, 0), (width - x, height)], fill=(x % 255, 200, 90), width=5)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


@dataclass
class Deployed:
    cloud: LocalCloud
    stack: Stack
    subscriber: Subscriber

    @property
    def s3(self) -> Any:
        return self.cloud.client("s3")

    @property
    def sfn(self) -> Any:
        return self.cloud.client("stepfunctions")

    def keys(self, bucket: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def upload(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.stack.source_bucket, Key=key, Body=body)

    def execution_for(self, key: str, timeout_s: float = 120) -> dict[str, Any]:
        """The finished execution whose input names ``key`` (started by the rule or by hand)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for page in self.sfn.get_paginator("list_executions").paginate(
                stateMachineArn=self.stack.state_machine_arn
            ):
                for summary in page["executions"]:
                    described = self.sfn.describe_execution(executionArn=summary["executionArn"])
                    if input_key(described) == key and described["status"] != "RUNNING":
                        return dict(described)
            time.sleep(0.1)
        raise TimeoutError(f"no finished execution for {key}")

    def executions_named(self, key: str) -> list[dict[str, Any]]:
        """Every execution (running or finished) whose input names ``key``, oldest first."""
        found = []
        for page in self.sfn.get_paginator("list_executions").paginate(stateMachineArn=self.stack.state_machine_arn):
            for summary in page["executions"]:
                described = self.sfn.describe_execution(executionArn=summary["executionArn"])
                if input_key(described) == key:
                    found.append(dict(described))
        return sorted(found, key=lambda d: d["startDate"])

    def finished_executions(self, key: str, count: int, timeout_s: float = 180) -> list[dict[str, Any]]:
        """``count`` finished executions for ``key`` once none for it is running, oldest first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.executions_named(key)
            if len(found) >= count and all(d["status"] != "RUNNING" for d in found):
                return found
            time.sleep(0.2)
        raise TimeoutError(f"fewer than {count} finished executions for {key}")

    def history(self, arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for page in self.sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
            events.extend(page["events"])
        return events

    def subscriber_messages(self) -> list[dict[str, Any]]:
        """Every message the topic delivered so far."""
        self.subscriber.drain()
        return list(self.subscriber.received)

    def messages_for(self, key: str) -> list[dict[str, Any]]:
        """The messages whose source is ``key`` (a failure message's source may be null)."""
        self.subscriber.drain()
        found = []
        for envelope in self.subscriber.received:
            message = envelope["Message"]
            ref = message.get("source") or {}
            if ref.get("key") == key:
                found.append(envelope)
        return found

    def version_id(self, key: str) -> str:
        """The current VersionId of a source key (the source bucket is versioned; it is the revision)."""
        return str(self.s3.head_object(Bucket=self.stack.source_bucket, Key=key)["VersionId"])

    def outputs_under(self, stem: str) -> list[str]:
        """Destination keys below ``stem/``."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.stack.destination_bucket, Prefix=stem + "/"
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def expected_outputs(self, stem: str, revision: str, widths: Iterable[int], ext: str = "jpg") -> list[str]:
        """The manifest and the renditions of one revision, as the destination layout names them."""
        return sorted([rendition_key(stem, revision, w, ext) for w in widths] + [manifest_key(stem)])


def input_key(described: dict[str, Any]) -> str | None:
    """The source key an execution's input names (an S3 event's detail.object.key or a manual "key")."""
    try:
        document = json.loads(described.get("input") or "{}")
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    detail = document.get("detail")
    obj = detail.get("object") if isinstance(detail, dict) else None
    key = (obj.get("key") if isinstance(obj, dict) else None) or document.get("key")
    return key if isinstance(key, str) else None


def deploy(parameters: dict[str, str] | None = None, time_scale: float = 1.0) -> Iterator[Deployed]:
    with LocalCloud(time_scale=time_scale) as cloud:
        stack = cloud.deploy(parameters)
        yield Deployed(cloud, stack, Subscriber(cloud, stack))


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployed]:
    yield from deploy()
