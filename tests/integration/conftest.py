"""A local cloud with template.yaml deployed, shared by the tests of a module."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from PIL import Image, ImageDraw

from localcloud.cloud import LocalCloud, Stack
from localcloud.runner import Subscriber


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
                    document = json.loads(described["input"])
                    named = document.get("detail", {}).get("object", {}).get("key") or document.get("key")
                    if named == key and described["status"] != "RUNNING":
                        return dict(described)
            time.sleep(0.1)
        raise TimeoutError(f"no finished execution for {key}")

    def messages_for(self, key: str) -> list[dict[str, Any]]:
        self.subscriber.drain()
        found = []
        for envelope in self.subscriber.received:
            message = envelope["Message"]
            ref = message.get("source") or message.get("upload") or {}
            if ref.get("key") == key or ref.get("input", {}).get("key") == key:
                found.append(envelope)
        return found


def deploy(parameters: dict[str, str] | None = None) -> Iterator[Deployed]:
    with LocalCloud() as cloud:
        stack = cloud.deploy(parameters)
        yield Deployed(cloud, stack, Subscriber(cloud, stack))


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployed]:
    yield from deploy()
