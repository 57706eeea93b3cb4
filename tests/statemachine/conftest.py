"""The same state-machine test cases on two engines: the embedded one (always) and Step Functions Local.

Step Functions Local runs when SFN_LOCAL_ENDPOINT is set (``make test-sfn-local`` starts it in
Docker with MockConfigFile.json); without it those tests are reported as skipped, never as passed.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from localcloud.cloud import LocalCloud
from localcloud.sam import ROOT

MOCK_CONFIG = Path(__file__).with_name("MockConfigFile.json")
ASL = ROOT / "statemachines" / "image_pipeline.asl.json"
EVENTS = ROOT / "events"
NAME = "ImagePipeline"
#: The bucket and upload prefix the mocked responses name (events/ inputs have a placeholder bucket).
SOURCE_BUCKET = "source-bucket"
UPLOAD_PREFIX = "uploads/"
ROLE = "arn:aws:iam::123456789012:role/DummyRole"
#: Time scale of the embedded engine: Retry waits of seconds become milliseconds.
TIME_SCALE = 0.002


def sample(name: str) -> Any:
    """An execution input from events/, with its placeholder bucket replaced by the mocks' source bucket."""
    text = (EVENTS / name).read_text(encoding="utf-8")
    return json.loads(text.replace("your-source-bucket", SOURCE_BUCKET))


MANUAL_INPUT = sample("manual-execution.json")


def definition(asl: dict[str, Any] | None = None) -> str:
    """The real ASL with its DefinitionSubstitutions filled in (every task is mocked in the cases)."""
    text = json.dumps(asl) if asl is not None else ASL.read_text(encoding="utf-8")
    text = re.sub(r"\$\{(\w+)FunctionArn\}", lambda m: f"arn:aws:lambda:us-east-1:123456789012:function:{m[1]}", text)
    text = text.replace("${TopicArn}", "arn:aws:sns:us-east-1:123456789012:imgpipe-outcomes")
    assert "${" not in text, "a DefinitionSubstitution of the ASL is not filled in"
    return text


@dataclass
class Engine:
    name: str
    sfn: Any
    arns: dict[str, str] = field(default_factory=dict)
    cloud: LocalCloud | None = None

    def create(self, name: str, text: str) -> str:
        for machine in self.sfn.list_state_machines()["stateMachines"]:
            if machine["name"] == name:
                self.sfn.delete_state_machine(stateMachineArn=machine["stateMachineArn"])
        arn: str = self.sfn.create_state_machine(name=name, definition=text, roleArn=ROLE)["stateMachineArn"]
        self.arns[name] = arn
        return arn

    def run(self, case: str, document: Any, machine: str = NAME, timeout_s: float = 300) -> dict[str, Any]:
        arn = self.sfn.start_execution(stateMachineArn=f"{self.arns[machine]}#{case}", input=json.dumps(document))[
            "executionArn"
        ]
        deadline = time.monotonic() + timeout_s
        # Poll until the execution leaves RUNNING (waiting only for success would hang on failures).
        while (described := self.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, f"{case} still RUNNING after {timeout_s} s"
            time.sleep(0.02)
        events: list[dict[str, Any]] = []
        for page in self.sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
            events.extend(page["events"])
        return {"described": described, "events": events}


@pytest.fixture(scope="module", params=["embedded", "sfn-local"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    if request.param == "embedded":
        with LocalCloud(time_scale=TIME_SCALE, mock_config=MOCK_CONFIG) as cloud:
            engine = Engine("embedded", cloud.client("stepfunctions"), cloud=cloud)
            engine.create(NAME, definition())
            yield engine
        return
    endpoint = os.environ.get("SFN_LOCAL_ENDPOINT")
    if not endpoint:
        pytest.skip("Step Functions Local is not reachable: set SFN_LOCAL_ENDPOINT (make test-sfn-local)")
    sfn = boto3.client(
        "stepfunctions",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    engine = Engine("sfn-local", sfn)
    engine.create(NAME, definition())
    yield engine
