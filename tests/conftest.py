"""Shared fixtures: a fake Lambda context, and moto resources built from template.yaml's own properties."""

from __future__ import annotations

import importlib.util
import json
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from localcloud import sam

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
# Powertools' Metrics singleton takes its namespace when pipeline.observability is first imported, which
# may be at collection (a test module importing pipeline.steps): as on Lambda, the variable is set before.
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ImagePipeline")


@dataclass
class FakeLambdaContext:
    """The attributes of the Lambda context object that Powertools and the handlers read."""

    function_name: str = "test-function"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:test-function"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/test-function"
    log_stream_name: str = "2026/01/01/[$LATEST]test"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture(autouse=True)
def _aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test ever reaches AWS: fake credentials, a fixed region, and no real endpoint configuration."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "ImagePipeline")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return sam.load()


def _resolve(value: Any, refs: Mapping[str, str]) -> str:
    """Resolve the intrinsics template.yaml uses in environment variables."""
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, dict) and "Ref" in value:
        return refs[value["Ref"]]
    raise AssertionError(f"unexpected environment value {value!r}")


@dataclass
class Cloud:
    """moto resources named after the template's logical IDs."""

    template: dict[str, Any]
    refs: dict[str, str]
    queue_url: str
    s3: Any
    sqs: Any
    dynamodb: Any

    @property
    def source_bucket(self) -> str:
        return self.refs["SourceBucket"]

    @property
    def destination_bucket(self) -> str:
        return self.refs["DestinationBucket"]

    @property
    def staging_bucket(self) -> str:
        return self.refs["StagingBucket"]

    @property
    def upload_prefix(self) -> str:
        return self.refs["UploadPrefix"]

    def function_env(self, logical_id: str, **overrides: str) -> dict[str, str]:
        """The environment template.yaml gives a function (Globals merged with its own)."""
        glob = self.template["Globals"]["Function"]["Environment"]["Variables"]
        own = self.template["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {})
        env = {k: _resolve(v, self.refs) for k, v in {**glob, **own}.items()}
        env.update(overrides)
        return env

    def messages(self) -> list[dict[str, Any]]:
        """SNS notifications received by the queue subscribed to the topic (SNS envelope parsed)."""
        out: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            if not got.get("Messages"):
                return out
            for message in got["Messages"]:
                envelope = json.loads(message["Body"])
                out.append(
                    {
                        "message": json.loads(envelope["Message"]),
                        "attributes": {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()},
                        "subject": envelope.get("Subject"),
                    }
                )
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@pytest.fixture
def cloud(template: dict[str, Any]) -> Iterator[Cloud]:
    """S3 buckets, the topic and a subscribed queue, created from the template's declarations."""
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        refs = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] == "AWS::S3::Bucket":
                name = f"{logical_id.lower()}-{uuid.uuid4().hex[:8]}"
                s3.create_bucket(Bucket=name)
                versioning = resource.get("Properties", {}).get("VersioningConfiguration")
                if versioning:
                    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=versioning)
                refs[logical_id] = name
            elif resource["Type"] == "AWS::SNS::Topic":
                refs[logical_id] = sns.create_topic(Name=logical_id)["TopicArn"]
            elif resource["Type"] == "AWS::DynamoDB::Table":
                table = resource["Properties"]
                indexes = (
                    {"GlobalSecondaryIndexes": table["GlobalSecondaryIndexes"]}
                    if "GlobalSecondaryIndexes" in table
                    else {}
                )
                dynamodb.create_table(
                    TableName=logical_id,
                    KeySchema=table["KeySchema"],
                    AttributeDefinitions=table["AttributeDefinitions"],
                    BillingMode=table["BillingMode"],
                    **indexes,
                )
                refs[logical_id] = logical_id
        queue_url = sqs.create_queue(QueueName="subscriber")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=refs["Topic"], Protocol="sqs", Endpoint=queue_arn)
        yield Cloud(template=template, refs=refs, queue_url=queue_url, s3=s3, sqs=sqs, dynamodb=dynamodb)


@pytest.fixture
def load_handler(monkeypatch: pytest.MonkeyPatch, cloud: Cloud) -> Callable[..., ModuleType]:
    """Import functions/<name>/app.py afresh under the environment the template gives it (a cold start)."""

    def load(name: str, **overrides: str) -> ModuleType:
        logical_id = "".join(part.capitalize() for part in name.split("_")) + "Function"
        for key, value in cloud.function_env(logical_id, **overrides).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", name)
        path = ROOT / "functions" / name / "app.py"
        spec = importlib.util.spec_from_file_location(f"_handler_{name}_{uuid.uuid4().hex}", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
