"""What the service tests share: in-process moto clients, a recording Lambda invoker and EventBridge
deliverer, and builders for functions, state machines, queues, rules and stacks."""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto.s3.models import FakeBucket

REGION = "us-east-1"


ACCOUNT = "123456789012"


ROLE_NAME = "patches-test-role"


ROLE = f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"


ISO_SECONDS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


# The id moto 5.2.5 puts on every EventBridge event S3 sends (moto.events.utils._BASE_EVENT_MESSAGE).
MOTO_FIXED_EVENT_ID = "17793124-05d4-b198-2fde-7ededc63b103"


CREATED = json.dumps({"source": ["aws.s3"], "detail-type": ["Object Created"]})


def moto_config() -> Any:
    # A fresh dict each time: emulator.remove() pops the key from the live config.
    return {"stepfunctions": {"execute_state_machine": True}}


@dataclass
class FakeRuntime:
    """A Lambda invoker and EventBridge deliverer that record calls.

    ``invoke`` answers from ``replies``, then ``canned``."""

    canned: bytes = b'{"ok": true}'
    replies: list[tuple[bytes, str | None]] = field(default_factory=list)
    invocations: list[tuple[str, bytes]] = field(default_factory=list)
    deliveries: list[tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    deliver_error: Exception | None = None

    def invoke(self, function: Any, payload: bytes) -> tuple[bytes, str | None]:
        self.invocations.append((function.function_name, payload))
        if self.replies:
            return self.replies.pop(0)
        return self.canned, None

    def deliver(self, rule: Any, target: dict[str, Any], event: dict[str, Any]) -> None:
        if self.deliver_error is not None:
            raise self.deliver_error
        self.deliveries.append((rule.name, target, event))


@dataclass
class Clients:
    s3: Any
    sfn: Any
    events: Any
    sqs: Any
    lam: Any
    cfn: Any


def make_clients() -> Clients:
    iam = boto3.client("iam", region_name=REGION)
    iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"}))
    return Clients(
        s3=boto3.client("s3", region_name=REGION),
        sfn=boto3.client("stepfunctions", region_name=REGION),
        events=boto3.client("events", region_name=REGION),
        sqs=boto3.client("sqs", region_name=REGION),
        lam=boto3.client("lambda", region_name=REGION),
        cfn=boto3.client("cloudformation", region_name=REGION),
    )


def zip_files(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buf.getvalue()


HANDLER = "def handler(event, context):\n    return {'ran': True, 'event': event}\n"


def make_function(c: Clients, name: str = "fn") -> str:
    created = c.lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": zip_files({"app.py": HANDLER})},
    )
    return str(created["FunctionArn"])


def make_state_machine(c: Clients, definition: dict[str, Any], name: str = "sm") -> str:
    arn = c.sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    return str(arn)


PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


def make_queue(c: Clients, name: str) -> tuple[str, str]:
    url = c.sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = c.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return str(url), str(arn)


def queue_bodies(c: Clients, url: str) -> list[dict[str, Any]]:
    got = c.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    return [json.loads(m["Body"]) for m in got]


def make_rule(c: Clients, name: str, targets: list[dict[str, Any]], bus: str = "default", **kwargs: Any) -> None:
    c.events.put_rule(Name=name, EventBusName=bus, EventPattern=kwargs.pop("pattern", CREATED), **kwargs)
    c.events.put_targets(Rule=name, EventBusName=bus, Targets=targets)


def eventbridge_bucket(c: Clients, name: str) -> None:
    c.s3.create_bucket(Bucket=name)
    c.s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}})


def execution_ended(c: Clients, arn: str, timeout_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        described: dict[str, Any] = c.sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return described
        assert time.monotonic() < deadline, f"{arn} still RUNNING"
        time.sleep(0.01)


def deploy_stack(c: Clients, resources: dict[str, Any]) -> None:
    c.cfn.create_stack(StackName="patches", TemplateBody=json.dumps({"Resources": resources}))
    assert c.cfn.describe_stacks(StackName="patches")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"


def bucket_model(name: str) -> FakeBucket:
    from moto.s3.models import s3_backends

    bucket: FakeBucket = s3_backends[ACCOUNT]["aws"].get_bucket(name)
    return bucket


STATE_MACHINE_RESOURCES: dict[str, Any] = {
    "Substituted": {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {
            "StateMachineName": "substituted",
            "RoleArn": ROLE,
            "DefinitionString": json.dumps(
                {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"greeting": "${Greeting}"}, "End": True}}}
            ),
            "DefinitionSubstitutions": {"Greeting": "hello"},
        },
    },
    "Express": {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {
            "StateMachineName": "express",
            "RoleArn": ROLE,
            "Definition": PASS,
            "StateMachineType": "EXPRESS",
        },
    },
}


def sm_arn(name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"


def non_executing_state_machines() -> dict[str, Any]:
    from moto.stepfunctions.models import stepfunctions_backends

    return {sm.name: sm for sm in stepfunctions_backends[ACCOUNT][REGION].state_machines}
