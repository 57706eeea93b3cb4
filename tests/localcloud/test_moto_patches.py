"""moto_patches against moto itself: each gap is still there, and each patch bridges it.

For every entry of ``moto_patches.PATCHES`` there are two tests:

* ``test_gap_<name>`` runs *unpatched* moto in-process and asserts the broken behaviour exactly
  as the pinned moto shows it. These are the upgrade alarm: when one fails after a moto upgrade,
  moto changed (probably fixed) the gap, and the patch it names is to be dropped or revisited.
* ``test_patched_<name>`` applies the patches with a fake runtime and asserts the corrected behaviour.
"""

from __future__ import annotations

import ast
import copy
import gc
import importlib
import inspect
import io
import json
import os
import re
import sys
import threading
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType, SimpleNamespace
from typing import Any, cast

import boto3
import moto
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.awslambda.models import LambdaFunction
from moto.cloudformation.models import CloudFormationBackend
from moto.core.config import default_user_config
from moto.events.models import Rule
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.s3 import notifications as s3_notifications
from moto.s3.models import FakeBucket, S3Backend
from moto.s3.responses import S3Response
from moto.stepfunctions.models import StateMachine
from moto.stepfunctions.parser.asl.component import eval_component
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.common.retry.max_attempts_decl import MaxAttemptsDecl
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)
from moto.stepfunctions.parser.asl.component.state.fail import state_fail
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.utils import boto_client
from moto.stepfunctions.parser.backend.execution import Execution
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.stepfunctions.parser.backend.test_state import execution_worker as test_state_worker
from moto.stepfunctions.parser.mocking.mock_config import load_mock_test_case_for
from moto.stepfunctions.parser.models import StepFunctionsParserBackend
from moto.stepfunctions.parser.utils import long_uid

from localcloud import moto_patches

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE_NAME = "patches-test-role"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"
ISO_SECONDS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
# The id moto 5.2.5 puts on every EventBridge event S3 sends (moto.events.utils._BASE_EVENT_MESSAGE).
MOTO_FIXED_EVENT_ID = "17793124-05d4-b198-2fde-7ededc63b103"
CREATED = json.dumps({"source": ["aws.s3"], "detail-type": ["Object Created"]})


def _config() -> Any:
    # A fresh dict each time: moto_patches.remove() pops the key from the live config.
    return {"stepfunctions": {"execute_state_machine": True}}


# -- fixtures -----------------------------------------------------------------------------------


@dataclass
class FakeRuntime:
    """A moto_patches.Runtime that records calls; ``invoke`` answers from ``replies``, then ``canned``."""

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


@pytest.fixture(autouse=True)
def _no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's Lambda talks to Docker: point it at a daemon that is never there, whatever the host has."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/moto-patches-test/docker.sock")


def _clients() -> Clients:
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


@pytest.fixture
def unpatched() -> Iterator[Clients]:
    """moto as released, executing state machines in-process."""
    assert moto_patches._state.originals is None, "moto_patches left applied by an earlier test"
    with mock_aws(config=_config()):
        yield _clients()
    assert moto_patches._state.originals is None


@pytest.fixture
def runtime() -> FakeRuntime:
    return FakeRuntime()


@pytest.fixture
def patched(runtime: FakeRuntime) -> Iterator[Clients]:
    """moto with every patch applied (time scaled by 0.01), in-process."""
    assert moto_patches._state.originals is None, "moto_patches left applied by an earlier test"
    with mock_aws(config=_config()):
        moto_patches.apply(runtime, time_scale=0.01)
        try:
            yield _clients()
        finally:
            moto_patches.remove()


# -- helpers --------------------------------------------------------------------------------------


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buf.getvalue()


HANDLER = "def handler(event, context):\n    return {'ran': True, 'event': event}\n"


def _function(c: Clients, name: str = "fn") -> str:
    created = c.lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": _zip({"app.py": HANDLER})},
    )
    return str(created["FunctionArn"])


def _state_machine(c: Clients, definition: dict[str, Any], name: str = "sm") -> str:
    arn = c.sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    return str(arn)


PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


def _queue(c: Clients, name: str) -> tuple[str, str]:
    url = c.sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = c.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return str(url), str(arn)


def _bodies(c: Clients, url: str) -> list[dict[str, Any]]:
    got = c.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    return [json.loads(m["Body"]) for m in got]


def _rule(c: Clients, name: str, targets: list[dict[str, Any]], bus: str = "default", **kwargs: Any) -> None:
    c.events.put_rule(Name=name, EventBusName=bus, EventPattern=kwargs.pop("pattern", CREATED), **kwargs)
    c.events.put_targets(Rule=name, EventBusName=bus, Targets=targets)


def _eventbridge_bucket(c: Clients, name: str) -> None:
    c.s3.create_bucket(Bucket=name)
    c.s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}})


def _finished(c: Clients, arn: str, timeout_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        described: dict[str, Any] = c.sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return described
        assert time.monotonic() < deadline, f"{arn} still RUNNING"
        time.sleep(0.01)


def _stack(c: Clients, resources: dict[str, Any]) -> None:
    c.cfn.create_stack(StackName="patches", TemplateBody=json.dumps({"Resources": resources}))
    assert c.cfn.describe_stacks(StackName="patches")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"


def _bucket_model(name: str) -> FakeBucket:
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


def _sm_arn(name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"


def _non_executing_state_machines() -> dict[str, Any]:
    from moto.stepfunctions.models import stepfunctions_backends

    return {sm.name: sm for sm in stepfunctions_backends[ACCOUNT][REGION].state_machines}


# -- 1. cfn_state_machine_executes ------------------------------------------------------------------


def test_gap_cfn_state_machine_executes(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap: drop patch cfn_state_machine_executes from moto_patches."""
    c = unpatched
    _stack(c, STATE_MACHINE_RESOURCES)

    # The executing API (the one that runs executions) does not know the stack's state machines...
    assert c.sfn.list_state_machines()["stateMachines"] == []
    with pytest.raises(ClientError, match="StateMachineDoesNotExist"):
        c.sfn.describe_state_machine(stateMachineArn=_sm_arn("substituted"))
    # ...they landed in the non-executing backend, without substitutions, object Definition or type.
    machines = _non_executing_state_machines()
    assert sorted(machines) == ["express", "substituted"]
    assert "${Greeting}" in machines["substituted"].definition
    assert machines["express"].definition == ""
    assert machines["express"].type == "STANDARD"


def test_patched_cfn_state_machine_executes(patched: Clients) -> None:
    c = patched
    _stack(c, STATE_MACHINE_RESOURCES)

    assert sorted(m["name"] for m in c.sfn.list_state_machines()["stateMachines"]) == ["express", "substituted"]
    assert _non_executing_state_machines() == {}
    substituted = c.sfn.describe_state_machine(stateMachineArn=_sm_arn("substituted"))
    assert json.loads(substituted["definition"])["States"]["P"]["Result"] == {"greeting": "hello"}
    assert substituted["type"] == "STANDARD"
    assert substituted["roleArn"] == ROLE
    express = c.sfn.describe_state_machine(stateMachineArn=_sm_arn("express"))
    assert json.loads(express["definition"]) == PASS
    assert express["type"] == "EXPRESS"

    run = c.sfn.start_execution(stateMachineArn=_sm_arn("substituted"), name="one")
    finished = _finished(c, run["executionArn"])
    assert finished["status"] == "SUCCEEDED"
    assert json.loads(finished["output"]) == {"greeting": "hello"}


# -- 2. cfn_bucket_eventbridge ----------------------------------------------------------------------


def _eventbridge_bucket_resource(name: str, enabled: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::S3::Bucket",
        "Properties": {
            "BucketName": name,
            "NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": enabled}},
        },
    }


def test_gap_cfn_bucket_eventbridge(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap: drop patch cfn_bucket_eventbridge from moto_patches."""
    c = unpatched
    url, queue_arn = _queue(c, "created")
    _rule(c, "created", [{"Id": "q", "Arn": queue_arn}])
    _stack(c, {"Bucket": _eventbridge_bucket_resource("cfn-bucket", True)})

    assert _bucket_model("cfn-bucket").notification_configuration is None
    # (moto 5.2.5 never renders EventBridgeConfiguration here, even when set through the API: the
    # model and the missing event above are what tell this gap.)
    assert "EventBridgeConfiguration" not in c.s3.get_bucket_notification_configuration(Bucket="cfn-bucket")
    c.s3.put_object(Bucket="cfn-bucket", Key="a.jpg", Body=b"a")
    assert _bodies(c, url) == []


def test_patched_cfn_bucket_eventbridge(patched: Clients, runtime: FakeRuntime) -> None:
    c = patched
    sm = _state_machine(c, PASS)
    _rule(c, "created", [{"Id": "sm", "Arn": sm}])
    _stack(
        c,
        {
            "Enabled": _eventbridge_bucket_resource("cfn-enabled", True),
            "EnabledString": _eventbridge_bucket_resource("cfn-enabled-string", "true"),
            "Disabled": _eventbridge_bucket_resource("cfn-disabled", False),
            "Plain": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "cfn-plain"}},
        },
    )

    for name in ("cfn-enabled", "cfn-enabled-string"):
        config = _bucket_model(name).notification_configuration
        assert config is not None
        assert config.event_bridge == {}
    assert _bucket_model("cfn-disabled").notification_configuration is None
    assert _bucket_model("cfn-plain").notification_configuration is None

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
    """If this fails, moto fixed the gap: drop patch cfn_bucket_versioning from moto_patches."""
    c = unpatched
    _stack(c, {"Bucket": _versioned_bucket_resource("cfn-versioned", "Enabled")})
    assert "Status" not in c.s3.get_bucket_versioning(Bucket="cfn-versioned")
    assert "VersionId" not in c.s3.put_object(Bucket="cfn-versioned", Key="a.jpg", Body=b"a")


def test_patched_cfn_bucket_versioning(patched: Clients) -> None:
    c = patched
    _stack(
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


# -- 3. s3_eventbridge_event_shape ------------------------------------------------------------------


def test_gap_s3_eventbridge_event_shape(unpatched: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    """If this fails, moto fixed the gap: drop patch s3_eventbridge_event_shape from moto_patches."""
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
    queues = {name: _queue(c, name) for name in ("on-default", "on-custom", "disabled")}
    _rule(c, "on-default", [{"Id": "q", "Arn": queues["on-default"][1]}])
    _rule(c, "on-custom", [{"Id": "q", "Arn": queues["on-custom"][1]}], bus="custom")
    _rule(c, "disabled", [{"Id": "q", "Arn": queues["disabled"][1]}], State="DISABLED")
    _eventbridge_bucket(c, "events-bucket")

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
        assert [body["detail"]["object"]["key"] for body in _bodies(c, url)] == ["a.jpg", "b.jpg"]
    # moto also sends "Object Tags Added" for every PutObject (not bridged: rules filter on detail-type).
    assert {event["detail-type"] for _, event in seen} == {"Object Created", "Object Tags Added"}

    # An error on the way is swallowed: PutObject succeeds, the event is lost.
    sm = _state_machine(c, PASS)
    _rule(c, "to-state-machine", [{"Id": "sm", "Arn": sm}])
    seen.clear()
    c.s3.put_object(Bucket="events-bucket", Key="c.jpg", Body=b"c")
    assert raised
    assert all(isinstance(exc, NotImplementedError) for exc in raised)
    assert ("to-state-machine", "Object Created") in [(rule, e["detail-type"]) for rule, e in seen]


def test_patched_s3_eventbridge_event_shape(patched: Clients, runtime: FakeRuntime) -> None:
    c = patched
    sm = _state_machine(c, PASS)
    c.events.create_event_bus(Name="custom")
    _rule(c, "on-default", [{"Id": "sm", "Arn": sm}])
    _rule(c, "on-custom", [{"Id": "sm", "Arn": sm}], bus="custom")
    _rule(c, "disabled", [{"Id": "sm", "Arn": sm}], State="DISABLED")
    _eventbridge_bucket(c, "events-bucket")

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
    url, queue_arn = _queue(c, "created")
    _rule(c, "to-queue", [{"Id": "q", "Arn": queue_arn}])
    _eventbridge_bucket(c, "events-bucket")

    c.s3.put_object(Bucket="events-bucket", Key="a.jpg", Body=b"a")

    [body] = _bodies(c, url)
    assert ISO_SECONDS.match(body["time"])
    assert body["detail"]["object"]["key"] == "a.jpg"
    assert "etag" in body["detail"]["object"]


# -- 4. events_state_machine_target -----------------------------------------------------------------

MY_APP = json.dumps({"source": ["my.app"]})


def test_gap_events_state_machine_target(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap: drop patch events_state_machine_target from moto_patches."""
    c = unpatched
    sm = _state_machine(c, PASS)
    url, queue_arn = _queue(c, "also")
    _rule(c, "both", [{"Id": "a-sm", "Arn": sm, "RoleArn": ROLE}, {"Id": "b-queue", "Arn": queue_arn}], pattern=MY_APP)

    with pytest.raises(NotImplementedError, match=re.escape("Expr not defined for <class 'moto.events.models.Rule'>")):
        c.events.put_events(Entries=[{"Source": "my.app", "DetailType": "thing", "Detail": "{}"}])
    assert _bodies(c, url) == []  # the state machine target aborted the rule's other targets
    assert c.sfn.list_executions(stateMachineArn=sm)["executions"] == []


def test_patched_events_state_machine_target(patched: Clients, runtime: FakeRuntime) -> None:
    c = patched
    sm = _state_machine(c, PASS)
    url, queue_arn = _queue(c, "also")
    sm_target = {"Id": "a-sm", "Arn": sm, "RoleArn": ROLE, "RetryPolicy": {"MaximumRetryAttempts": 3}}
    _rule(c, "both", [sm_target, {"Id": "b-queue", "Arn": queue_arn}], pattern=MY_APP)

    reply = c.events.put_events(
        Entries=[
            {"Source": "my.app", "DetailType": "thing", "Detail": json.dumps({"n": 1})},
            {"Source": "other.app", "DetailType": "thing", "Detail": json.dumps({"n": 2})},
        ]
    )

    assert reply["FailedEntryCount"] == 0
    [(rule, target, event)] = runtime.deliveries
    assert rule == "both"
    assert target == sm_target
    assert event["source"] == "my.app"
    assert event["detail"] == {"n": 1}
    assert event["id"] == reply["Entries"][0]["EventId"]
    [body] = _bodies(c, url)
    assert body["source"] == "my.app"
    assert body["detail"] == {"n": 1}
    # Delivery is the runtime's job: moto itself started nothing.
    assert c.sfn.list_executions(stateMachineArn=sm)["executions"] == []


# -- 5. sfn_nameless_execution ----------------------------------------------------------------------


def test_gap_sfn_nameless_execution(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap: drop patch sfn_nameless_execution from moto_patches."""
    c = unpatched
    sm = _state_machine(c, PASS)

    first = c.sfn.start_execution(stateMachineArn=sm)["executionArn"]
    assert first == f"arn:aws:states:{REGION}:{ACCOUNT}:execution:sm:None"
    _finished(c, first)
    for execution_input in ("{}", '{"other": "input"}'):
        with pytest.raises(ClientError, match="ExecutionAlreadyExists"):
            c.sfn.start_execution(stateMachineArn=sm, input=execution_input)


def test_patched_sfn_nameless_execution(patched: Clients) -> None:
    c = patched
    sm = _state_machine(c, PASS)

    arns = [c.sfn.start_execution(stateMachineArn=sm)["executionArn"] for _ in range(2)]
    named = c.sfn.start_execution(stateMachineArn=sm, name="named")["executionArn"]

    assert len(set(arns)) == 2
    for arn in arns:
        name = arn.rsplit(":", 1)[1]
        assert uuid.UUID(name).version == 4
        described = _finished(c, arn)
        assert described["name"] == name
        assert described["status"] == "SUCCEEDED"
    assert named.endswith(":execution:sm:named")
    assert _finished(c, named)["status"] == "SUCCEEDED"


# -- 6. lambda_runs_locally -------------------------------------------------------------------------


def test_gap_lambda_runs_locally(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap: drop patch lambda_runs_locally from moto_patches."""
    c = unpatched
    _function(c)

    reply = c.lam.invoke(FunctionName="fn", Payload=json.dumps({"x": 1}).encode())

    payload = reply["Payload"].read()
    assert reply["FunctionError"] == "Handled"
    assert payload.startswith(b"error running docker: ")
    assert b"ran" not in payload


def test_patched_lambda_runs_locally(patched: Clients, runtime: FakeRuntime) -> None:
    c = patched
    _function(c)

    ok = c.lam.invoke(FunctionName="fn", Payload=json.dumps({"x": 1}).encode())
    assert "FunctionError" not in ok
    assert ok["StatusCode"] == 200
    assert json.loads(ok["Payload"].read()) == {"ok": True}

    error = json.dumps({"errorType": "ImageBroken", "errorMessage": "cannot decode"}).encode()
    runtime.replies.append((error, "ImageBroken"))
    failed = c.lam.invoke(FunctionName="fn", Payload=b'{"x": 2}')
    assert failed["FunctionError"] == "Unhandled"
    assert failed["Payload"].read() == error

    empty = c.lam.invoke(FunctionName="fn")
    assert "FunctionError" not in empty

    assert [name for name, _ in runtime.invocations] == ["fn", "fn", "fn"]
    assert [json.loads(payload) for _, payload in runtime.invocations] == [{"x": 1}, {"x": 2}, {}]


# -- 7. cfn_function_layers -------------------------------------------------------------------------


def _layers_stack(c: Clients) -> list[str]:
    """A stack whose function uses a layer of the stack (by Ref), and two published ones (by ARN, by name)."""
    c.s3.create_bucket(Bucket="code-bucket")
    c.s3.put_object(Bucket="code-bucket", Key="fn.zip", Body=_zip({"app.py": HANDLER}))
    c.s3.put_object(Bucket="code-bucket", Key="layer.zip", Body=_zip({"python/shared.py": "VALUE = 1\n"}))
    published = [
        c.lam.publish_layer_version(LayerName=name, Content={"ZipFile": _zip({"python/x.py": name})})["LayerVersionArn"]
        for name in ("by-arn", "by-name", "by-name")
    ]
    _stack(
        c,
        {
            "Layer": {
                "Type": "AWS::Lambda::LayerVersion",
                "Properties": {"LayerName": "shared", "Content": {"S3Bucket": "code-bucket", "S3Key": "layer.zip"}},
            },
            "Function": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": "with-layers",
                    "Runtime": "python3.12",
                    "Handler": "app.handler",
                    "Role": ROLE,
                    "Code": {"S3Bucket": "code-bucket", "S3Key": "fn.zip"},
                    "Layers": [{"Ref": "Layer"}, published[0], "by-name"],
                },
            },
        },
    )
    return [str(arn) for arn in published]


def test_gap_cfn_function_layers(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap: drop patch cfn_function_layers from moto_patches."""
    c = unpatched
    _layers_stack(c)

    assert c.lam.get_function(FunctionName="with-layers")["Configuration"]["Layers"] == []


def test_patched_cfn_function_layers(patched: Clients) -> None:
    c = patched
    published = _layers_stack(c)

    layers = c.lam.get_function(FunctionName="with-layers")["Configuration"]["Layers"]
    stack_layer = next(
        item["LatestMatchingVersion"]["LayerVersionArn"]
        for item in c.lam.list_layers()["Layers"]
        if item["LayerName"] not in ("by-arn", "by-name")
    )
    assert [layer["Arn"] for layer in layers] == [stack_layer, published[0], published[2]]
    assert published[2].endswith(":layer:by-name:2")  # a bare name means its latest version
    assert all(layer["CodeSize"] > 0 for layer in layers)


# -- 8. scaled_time ---------------------------------------------------------------------------------


def _retry_machine(task: dict[str, Any], wait_s: int, interval_s: int, attempts: int) -> dict[str, Any]:
    task = {
        **task,
        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": interval_s, "MaxAttempts": attempts}],
        "End": True,
    }
    return {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": wait_s, "Next": "T"}, "T": task}}


def test_gap_scaled_time(unpatched: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    """If this fails, moto fixed the gap: drop patch scaled_time from moto_patches (or rework it:
    it replaces the retrier module's ``time`` and WaitFunction._wait_interval)."""
    c = unpatched
    real_sleep = time.sleep
    retrier_sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        if sys._getframe(1).f_globals.get("__name__") == retrier_decl.__name__:
            retrier_sleeps.append(seconds)  # recorded, not slept: the test need not take 2 s
            return
        real_sleep(seconds)

    # The retrier sleeps with the time module's own sleep; nothing scales it.
    assert vars(retrier_decl)["time"] is time
    monkeypatch.setattr(time, "sleep", sleep)
    failing_branch = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "always"}}}
    sm = _state_machine(c, _retry_machine({"Type": "Parallel", "Branches": [failing_branch]}, 1, 2, 1))

    started = time.monotonic()
    run = c.sfn.start_execution(stateMachineArn=sm, name="one")
    described = _finished(c, run["executionArn"])
    elapsed = time.monotonic() - started

    assert described["status"] == "FAILED"
    assert retrier_sleeps == [2]  # IntervalSeconds, as written
    assert elapsed >= 1.0  # the Wait state's second, for real


def test_patched_scaled_time(patched: Clients, runtime: FakeRuntime) -> None:
    c = patched
    fn = _function(c)
    error = json.dumps({"errorType": "ImageBroken", "errorMessage": "cannot decode"}).encode()
    runtime.replies.extend([(error, "ImageBroken"), (error, "ImageBroken")])
    definition = _retry_machine({"Type": "Task", "Resource": fn}, 2, 2, 2)
    definition["States"]["T"]["Retry"][0].update(ErrorEquals=["ImageBroken"], BackoffRate=1.5)
    sm = _state_machine(c, definition)

    started = time.monotonic()
    run = c.sfn.start_execution(stateMachineArn=sm, name="one", input=json.dumps({"key": "a.jpg"}))
    described = _finished(c, run["executionArn"])
    elapsed = time.monotonic() - started

    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {"ok": True}
    assert elapsed < 1.0  # 2 s of Wait and 2 + 3 s of Retry, at 0.01
    assert moto_patches.retry_waits() == [2.0, 3.0]  # as the interpreter asked for them
    assert [json.loads(payload) for _, payload in runtime.invocations] == [{"key": "a.jpg"}] * 3


def test_patched_wait_with_fractional_scale(patched: Clients, runtime: FakeRuntime) -> None:
    """A scaled Wait of less than a second waits once for the scaled time (moto's own loop would
    re-enter the patched function for the rest and rescale it: a RecursionError near scale 1)."""
    c = patched
    moto_patches.apply(runtime, time_scale=0.5)
    sm = _state_machine(c, {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "End": True}}})

    started = time.monotonic()
    run = c.sfn.start_execution(stateMachineArn=sm, name="one")
    described = _finished(c, run["executionArn"])
    elapsed = time.monotonic() - started

    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert 0.5 <= elapsed < 0.9


def test_patched_end_waits_ends_retry_intervals(patched: Clients, runtime: FakeRuntime) -> None:
    """end_waits() ends the Retry interval being slept and the ones to come; apply() restores them."""
    c = patched
    moto_patches.apply(runtime, time_scale=1.0)
    fn = _function(c)
    error = json.dumps({"errorType": "ImageBroken", "errorMessage": "cannot decode"}).encode()
    runtime.replies.extend([(error, "ImageBroken")] * 2)
    definition = _retry_machine({"Type": "Task", "Resource": fn}, 0, 30, 2)
    definition["States"]["T"]["Retry"][0]["ErrorEquals"] = ["ImageBroken"]
    sm = _state_machine(c, definition)

    run = c.sfn.start_execution(stateMachineArn=sm, name="one")
    deadline = time.monotonic() + 10
    while not moto_patches.retry_waits():  # asleep in the first 30 s interval
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    moto_patches.end_waits()
    described = _finished(c, run["executionArn"])

    assert time.monotonic() - started < 5
    assert described["status"] == "SUCCEEDED"
    assert moto_patches.retry_waits() == [30.0, 60.0]  # BackoffRate 2 by default
    moto_patches.apply(runtime, time_scale=1.0)
    assert not moto_patches._waits_ended.is_set()


# -- 9. sfn_mock_config ----------------------------------------------------------------------------

MOCK_CONFIG: dict[str, Any] = {
    "StateMachines": {"sm": {"TestCases": {"FlakyThenOK": {"T": "FlakyThenOK"}}}},
    "MockedResponses": {
        "FlakyThenOK": {
            "0": {"Throw": {"Error": "ImageBroken", "Cause": "mocked failure"}},
            "1": {"Return": {"StatusCode": 200, "Payload": {"mocked": True}}},
        }
    },
}


def _mockable_machine(c: Clients) -> str:
    fn = _function(c)
    retry = [{"ErrorEquals": ["ImageBroken"], "IntervalSeconds": 2, "MaxAttempts": 1}]
    task = {"Type": "Task", "Resource": fn, "Retry": retry, "End": True}
    return _state_machine(c, {"StartAt": "T", "States": {"T": task}})


def test_gap_sfn_mock_config(unpatched: Clients, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """If this fails, moto fixed the gap: drop patch sfn_mock_config from moto_patches."""
    c = unpatched
    path = tmp_path / "MockConfigFile.json"
    path.write_text(json.dumps(MOCK_CONFIG))
    monkeypatch.setenv("SFN_MOCK_CONFIG", str(path))  # what Step Functions Local reads
    sm = _mockable_machine(c)

    # moto carries the mock machinery, but its loader never reads a configuration...
    assert load_mock_test_case_for("sm", "FlakyThenOK") is None
    # ...and a test case in the ARN is taken for part of the state machine's name.
    with pytest.raises(ClientError, match=r"StateMachineDoesNotExist.*stateMachine:sm#FlakyThenOK"):
        c.sfn.start_execution(stateMachineArn=f"{sm}#FlakyThenOK", name="one")


def test_patched_sfn_mock_config(patched: Clients, runtime: FakeRuntime) -> None:
    c = patched
    sm = _mockable_machine(c)
    moto_patches.apply(runtime, time_scale=0.01, mock_config=MOCK_CONFIG)

    mocked = c.sfn.start_execution(stateMachineArn=f"{sm}#FlakyThenOK", name="mocked")
    assert mocked["executionArn"].endswith(":execution:sm:mocked")
    described = _finished(c, mocked["executionArn"])
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {"mocked": True}
    assert runtime.invocations == []  # the mocked task never reached the function
    assert moto_patches.retry_waits() == [2.0]  # the mocked Throw was retried like a real error

    # Without a test case the same machine runs for real.
    plain = c.sfn.start_execution(stateMachineArn=sm, name="plain")
    assert json.loads(_finished(c, plain["executionArn"])["output"]) == {"ok": True}
    assert len(runtime.invocations) == 1

    with pytest.raises(ClientError, match=r"InvalidName.*no test case 'Missing'"):
        c.sfn.start_execution(stateMachineArn=f"{sm}#Missing", name="missing")
    moto_patches.apply(runtime, time_scale=0.01, mock_config=None)
    with pytest.raises(ClientError, match=r"InvalidName.*no mock config file is loaded"):
        c.sfn.start_execution(stateMachineArn=f"{sm}#FlakyThenOK", name="unloaded")


# -- apply / remove ---------------------------------------------------------------------------------


# -- 10. cfn_stack_reads_wait_for_create -----------------------------------------------------------


def _race_stack(c: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    """Create a one-state-machine stack while another thread reads it in the middle of the creation."""
    current = StateMachine.__dict__["create_from_cloudformation_json"].__func__
    reader_done = threading.Event()

    def read() -> None:
        try:
            c.cfn.describe_stacks(StackName="race")
        finally:
            reader_done.set()

    def racing(cls: Any, *args: Any, **kwargs: Any) -> Any:
        if not reader_done.is_set() and not getattr(racing, "started", False):
            racing.started = True  # type: ignore[attr-defined]
            threading.Thread(target=read).start()
            reader_done.wait(3)  # a reader that is kept out returns only after the creation
        return current(cls, *args, **kwargs)

    monkeypatch.setattr(StateMachine, "create_from_cloudformation_json", classmethod(racing))
    resources = {
        "Machine": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {"RoleArn": ROLE, "Definition": PASS}}
    }
    outputs = {"Arn": {"Value": {"Ref": "Machine"}}}
    c.cfn.create_stack(StackName="race", TemplateBody=json.dumps({"Resources": resources, "Outputs": outputs}))
    reader_done.wait(5)


def test_gap_cfn_stack_reads_wait_for_create(unpatched: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    """If this fails, moto fixed the gap: drop patch cfn_stack_reads_wait_for_create from moto_patches."""
    c = unpatched
    _race_stack(c, monkeypatch)
    names = [n for n in _non_executing_state_machines() if n.startswith("race-Machine")]
    assert len(names) == 2, f"a read during creation creates the state machine a second time: {names}"


def test_patched_cfn_stack_reads_wait_for_create(patched: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    c = patched
    _race_stack(c, monkeypatch)
    machines = [m["name"] for m in c.sfn.list_state_machines()["stateMachines"] if m["name"].startswith("race-")]
    assert len(machines) == 1, machines
    output = c.cfn.describe_stacks(StackName="race")["Stacks"][0]["Outputs"][0]["OutputValue"]
    assert output.endswith(":" + machines[0])


# -- 11. fault_injection -----------------------------------------------------------------------------


def _signed(service: str) -> dict[str, str]:
    return {"Authorization": f"AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/{service}/aws4_request, Signature=x"}


def test_gap_fault_injection(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap: drop patch fault_injection from moto_patches (use moto's own)."""
    from moto.moto_api._internal.urls import url_paths

    assert not [path for path in url_paths if "fault" in path.lower() or "chaos" in path.lower()]


def test_patched_fault_injection(patched: Clients) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.test import Client

    patched.s3.create_bucket(Bucket="faulty")
    app = Client(DomainDispatcherApplication(create_backend_app))
    fault = moto_patches.inject(moto_patches.Fault("s3", 2, "PUT", "/faulty/in/"))
    statuses = [app.put("/faulty/in/a.jpg", data=b"x", headers=_signed("s3")).status_code for _ in range(3)]
    assert statuses[:2] == [503, 503]
    assert statuses[2] == 200
    assert fault.hits == 2
    denied = app.put("/faulty/in/b.jpg", data=b"x", headers=_signed("s3"))
    assert denied.status_code == 200, "a fault answers only its count"
    other = moto_patches.inject(moto_patches.Fault("sns", 1, code="InternalError", status=500))
    assert app.put("/faulty/out/c.jpg", data=b"x", headers=_signed("s3")).status_code == 200, "other service"
    assert other.hits == 0
    body = app.post("/", data="Action=ListTopics", headers=_signed("sns"))
    assert body.status_code == 500
    assert b"<Code>InternalError</Code>" in body.data


# -- 12. sfn_nested_execution -----------------------------------------------------------------------

START_EXECUTION = "arn:aws:states:::states:startExecution"
ECHO = {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "Parameters": {"seen.$": "$.key"}, "End": True}}}
FAILING = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "the child failed"}}}


def _nested(c: Clients, name: str, resource: str, child: str, **parameters: Any) -> dict[str, Any]:
    """Run a parent whose one task starts ``child`` with ``resource``; the finished parent execution."""
    task = {
        "Type": "Task",
        "Resource": resource,
        "Parameters": {"StateMachineArn": child, "Input": {"key.$": "$.key"}, **parameters},
        "End": True,
    }
    parent = _state_machine(c, {"StartAt": "Run", "States": {"Run": task}}, name)
    run = c.sfn.start_execution(stateMachineArn=parent, name="one", input=json.dumps({"key": "a.jpg"}))
    return _finished(c, run["executionArn"])


def test_gap_sfn_nested_execution(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap: drop patch sfn_nested_execution from moto_patches."""
    c = unpatched
    child = _state_machine(c, ECHO, "child")
    for suffix in ("", ".sync", ".sync:2"):
        described = _nested(c, "parent" + suffix.replace(".", "-").replace(":", ""), START_EXECUTION + suffix, child)
        # The ASL's parameter names reach boto3 as written: the task fails before anything starts.
        assert described["status"] == "FAILED"
        assert described["error"] == "States.Runtime"
        assert described["cause"].endswith("). 'StateMachineArn'")  # a KeyError's message
    assert c.sfn.list_executions(stateMachineArn=child)["executions"] == []


def test_patched_sfn_nested_execution(patched: Clients) -> None:
    c = patched
    child = _state_machine(c, ECHO, "child")
    failing = _state_machine(c, FAILING, "failing")

    # .sync:2 waits for the child and gives its Input and Output as JSON, dates in epoch milliseconds.
    sync2 = _nested(c, "parent-sync2", START_EXECUTION + ".sync:2", child, Name="named")
    assert sync2["status"] == "SUCCEEDED", sync2.get("cause")
    result = json.loads(sync2["output"])
    assert result["ExecutionArn"] == f"arn:aws:states:{REGION}:{ACCOUNT}:execution:child:named"
    assert result["StateMachineArn"] == child
    assert result["Status"] == "SUCCEEDED"
    assert result["Input"] == {"key": "a.jpg"}
    assert result["Output"] == {"seen": "a.jpg"}
    assert isinstance(result["StartDate"], int)
    assert result["StopDate"] >= result["StartDate"] > 1_600_000_000_000

    # .sync gives them as the JSON strings DescribeExecution returns.
    sync = json.loads(_nested(c, "parent-sync", START_EXECUTION + ".sync", child)["output"])
    assert json.loads(sync["Output"]) == {"seen": "a.jpg"}
    assert sync["Status"] == "SUCCEEDED"

    # Without a suffix the task only starts the child (a nameless one: patch sfn_nameless_execution).
    started = json.loads(_nested(c, "parent-start", START_EXECUTION, child)["output"])
    assert set(started) == {"ExecutionArn", "StartDate"}
    assert started["ExecutionArn"].startswith(f"arn:aws:states:{REGION}:{ACCOUNT}:execution:child:")
    _finished(c, started["ExecutionArn"])
    assert len(c.sfn.list_executions(stateMachineArn=child)["executions"]) == 3

    # A failed child fails the task with States.TaskFailed (what a Catch takes), its description as the cause.
    failed = _nested(c, "parent-failing", START_EXECUTION + ".sync:2", failing)
    assert failed["status"] == "FAILED"
    assert failed["error"] == "States.TaskFailed"
    assert json.loads(failed["cause"])["Status"] == "FAILED"


# -- 13. fail_state_error_name ------------------------------------------------------------------------

FAIL_WITH_STATES_ERROR = {
    "StartAt": "Fail",
    "States": {"Fail": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}},
}


def test_gap_fail_state_error_name(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap: drop patch fail_state_error_name from moto_patches."""
    c = unpatched
    arn = _state_machine(c, FAIL_WITH_STATES_ERROR, name="fail-states")
    execution = c.sfn.start_execution(
        stateMachineArn=arn, name="x", input=json.dumps({"error": {"Error": "States.Timeout", "Cause": "late"}})
    )["executionArn"]
    assert _finished(c, execution)["error"] == "States.Runtime"


def test_patched_fail_state_error_name(patched: Clients) -> None:
    c = patched
    arn = _state_machine(c, FAIL_WITH_STATES_ERROR, name="fail-states")
    execution = c.sfn.start_execution(
        stateMachineArn=arn, input=json.dumps({"error": {"Error": "States.Timeout", "Cause": "late"}})
    )["executionArn"]
    described = _finished(c, execution)
    assert described["error"] == "States.Timeout"
    assert described["cause"] == "late"


# -- 14. sfn_task_clients_reused ---------------------------------------------------------------------


def _boto_client_importers() -> set[str]:
    """The modules of moto's interpreter whose source imports boto_client_for by name."""
    import moto.stepfunctions.parser as parser

    root = os.path.dirname(parser.__file__)
    found = set()
    for folder, _dirs, files in os.walk(root):
        for file in files:
            path = os.path.join(folder, file)
            with open(path, encoding="utf-8") as source:
                imports = file.endswith(".py") and "import boto_client_for" in source.read()
            if imports:
                relative = os.path.relpath(path, root).removesuffix(".py").replace(os.sep, ".")
                found.add(f"{parser.__name__}.{relative}")
    return found


def test_gap_sfn_task_clients_reused(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap: drop patch sfn_task_clients_reused from moto_patches (or revisit it:
    it replaces boto_client_for where each of BOTO_CLIENT_USERS imported it, and keys clients on what it reads)."""
    first = boto_client.boto_client_for(REGION, "lambda")
    second = boto_client.boto_client_for(REGION, "lambda")
    assert first is not second, "a new client for every call"
    assert list(inspect.signature(boto_client.boto_client_for).parameters) == ["region", "service", "state_credentials"]
    # What a client is made of: the arguments, the stubber's state, the server's port, the timeout; nothing else.
    assert set(boto_client.boto_client_for.__code__.co_names) == {
        "botocore_stubber",
        "enabled",
        "moto_server_port",
        "boto3",
        "client",
        "Config",
        "TimeoutSeconds",
        "DEFAULT_TIMEOUT_SECONDS",
    }
    # Every caller holds its own reference, taken at import: patching boto_client alone would not reach them.
    assert _boto_client_importers() == set(moto_patches.BOTO_CLIENT_USERS)
    for name in moto_patches.BOTO_CLIENT_USERS:
        assert vars(importlib.import_module(name))["boto_client_for"] is boto_client.boto_client_for, name


def _on_a_thread(call: Callable[[], Any]) -> Any:
    """``call()`` on a thread of its own, ended when this returns: as the interpreter runs a task."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    return result[0]


def test_patched_sfn_task_clients_reused(
    patched: Clients, runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.credentials import StateCredentials

    c = patched
    made: list[tuple[Any, ...]] = []
    build = moto_patches._originals().boto_client_for[boto_client.__name__]

    def counting(*args: Any) -> Any:
        made.append(args)
        return build(*args)

    monkeypatch.setitem(moto_patches._originals().boto_client_for, boto_client.__name__, counting)
    for name in (boto_client.__name__, *moto_patches.BOTO_CLIENT_USERS):
        assert vars(importlib.import_module(name))["boto_client_for"] is moto_patches._boto_client_for, name

    # A state machine's tasks (a thread each) take over the client of the task before; the invocations are as ever.
    fn = _function(c)
    task = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": fn}}
    steps = {f"T{i}": {**task, **({"Next": f"T{i + 1}"} if i < 2 else {"End": True})} for i in range(3)}
    sm = _state_machine(c, {"StartAt": "T0", "States": steps})
    for run in range(2):
        arn = c.sfn.start_execution(stateMachineArn=sm, name=f"run{run}")["executionArn"]
        assert _finished(c, arn)["status"] == "SUCCEEDED"
    assert [json.loads(payload) for _, payload in runtime.invocations] == [{}] * 6
    # Unpatched: six. A task's thread still ending as the next task asks can make it two.
    assert 1 <= len(made) <= 2
    assert {args[:2] for args in made} == {(REGION, "lambda")}
    assert made[0][2] == StateCredentials(role_arn=ROLE), "the execution's role"
    made.clear()

    def lam() -> Any:
        return moto_patches._boto_client_for(REGION, "lambda")

    # One thread asking again gets the same client; a later thread takes it over once the first has ended.
    first, again = _on_a_thread(lambda: (lam(), lam()))
    assert first is again
    assert _on_a_thread(lam) is first
    assert made == [(REGION, "lambda", None)]

    # Threads running at once never share one.
    hold = threading.Barrier(2)

    def lam_held() -> Any:
        client = lam()
        hold.wait(5)
        return client

    both: list[Any] = []
    threads = [threading.Thread(target=lambda: both.append(lam_held())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(both) == 2
    assert both[0] is not both[1]

    # Whatever makes a client different makes another client.
    made.clear()
    role = StateCredentials(role_arn=f"{ROLE}-other")
    others = _on_a_thread(
        lambda: [
            moto_patches._boto_client_for("eu-west-1", "lambda"),
            moto_patches._boto_client_for(REGION, "sqs"),
            moto_patches._boto_client_for(REGION, "lambda", role),
        ]
    )
    assert len({id(client) for client in [*both, *others]}) == 5
    assert made == [("eu-west-1", "lambda", None), (REGION, "sqs", None), (REGION, "lambda", role)]


def test_client_key_follows_what_boto_client_for_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.credentials import StateCredentials

    stubber = vars(boto_client)["botocore_stubber"]
    monkeypatch.setattr(stubber, "enabled", False)
    monkeypatch.setenv("MOTO_PORT", "5001")
    key = moto_patches._client_key(REGION, "lambda", None)
    assert key == moto_patches._client_key(REGION, "lambda", None)
    monkeypatch.setenv("MOTO_PORT", "5002")
    assert moto_patches._client_key(REGION, "lambda", None) != key, "another server"
    monkeypatch.setenv("MOTO_PORT", "5001")
    role = StateCredentials(role_arn=ROLE)
    assert moto_patches._client_key(REGION, "lambda", role) != key, "other credentials"
    assert moto_patches._client_key(REGION, "lambda", role) == moto_patches._client_key(
        REGION, "lambda", StateCredentials(role_arn=ROLE)
    )
    monkeypatch.setattr(TimeoutSeconds, "DEFAULT_TIMEOUT_SECONDS", 60)
    assert moto_patches._client_key(REGION, "lambda", None) != key, "other timeouts"
    monkeypatch.undo()
    monkeypatch.setattr(stubber, "enabled", True)
    assert moto_patches._client_key(REGION, "lambda", None)[3:5] == (True, None), "in-process: no endpoint"


def test_remove_drops_the_cached_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(default_user_config, "stepfunctions", dict(default_user_config.get("stepfunctions", {})))
    try:
        moto_patches.apply(FakeRuntime())
        first = _on_a_thread(lambda: moto_patches._boto_client_for(REGION, "lambda"))
        assert _on_a_thread(lambda: moto_patches._boto_client_for(REGION, "lambda")) is first
        moto_patches.remove()
        moto_patches.apply(FakeRuntime())
        second = _on_a_thread(lambda: moto_patches._boto_client_for(REGION, "lambda"))
    finally:
        moto_patches.remove()
    assert second is not first


# -- 15. dispatch_backend_lookup_cached ------------------------------------------------------------

HOSTS = (
    "lambda.us-east-1.amazonaws.com",
    "states.us-east-1.amazonaws.com",
    "s3.amazonaws.com",
    "bucket.s3.amazonaws.com",
    "sqs.eu-west-1.amazonaws.com",
    "moto_api",
    "sns",
    None,
)


def _counting_listdir(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    listdir = os.listdir

    def counting(path: Any = ".") -> list[str]:
        calls.append(str(path))
        return listdir(path)

    monkeypatch.setattr(os, "listdir", counting)
    return calls


def test_gap_dispatch_backend_lookup_cached(unpatched: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    """If this fails, moto fixed the gap: drop patch dispatch_backend_lookup_cached from moto_patches."""
    from moto.moto_server.werkzeug_app import create_backend_app

    app = DomainDispatcherApplication(create_backend_app)
    calls = _counting_listdir(monkeypatch)
    assert [app.get_backend_for_host("lambda.us-east-1.amazonaws.com") for _ in range(3)] == ["awslambda"] * 3
    assert len(calls) == 3, "moto's package directory is listed for every lookup"
    assert all(path == os.path.dirname(moto.__file__) for path in calls)


def test_patched_dispatch_backend_lookup_cached(patched: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.moto_server.werkzeug_app import create_backend_app
    from werkzeug.test import Client

    app = DomainDispatcherApplication(create_backend_app)
    original = moto_patches._originals().backend_for_host
    expected = [original(app, host) for host in HOSTS]
    assert expected[:3] == ["awslambda", "stepfunctions", "s3"]
    calls = _counting_listdir(monkeypatch)
    assert [app.get_backend_for_host(host) for host in HOSTS] == expected
    first_round = len(calls)
    assert [app.get_backend_for_host(host) for host in HOSTS] * 2 == expected * 2
    assert len(calls) == first_round, "answered from the cache"
    # Another dispatcher has its own answers.
    other = DomainDispatcherApplication(create_backend_app)
    assert other.get_backend_for_host(HOSTS[0]) == "awslambda"
    assert len(calls) == first_round + 1
    # Requests are still routed by it.
    topics = Client(app).post("/", data="Action=ListTopics", headers=_signed("sns"))
    assert topics.status_code == 200
    assert b"ListTopicsResponse" in topics.data


# -- 16. sfn_definition_parsed_once -----------------------------------------------------------------

RETRY_ATTEMPTS = 3
CONCURRENT_EXECUTIONS = 6
BOOM = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "always"}}}
RETRIED_PARALLEL: dict[str, Any] = {
    "StartAt": "Par",
    "States": {
        "Par": {
            "Type": "Parallel",
            "Branches": [BOOM],
            "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 1, "MaxAttempts": RETRY_ATTEMPTS, "BackoffRate": 2}],
            "End": True,
        }
    },
}
_RETRY = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1.5}]
_ITEMS = {
    "StartAt": "Shape",
    "States": {
        "Shape": {"Type": "Pass", "Parameters": {"item.$": "$", "fixed": [1, {"a": 2}]}, "Next": "Work"},
        "Work": {
            "Type": "Task",
            "Resource": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:f",
            "Retry": _RETRY,
            "End": True,
        },
    },
}
#: One of each kind of state and of the parts that hold other states (branches, item processors, iterators).
EVERY_KIND: dict[str, Any] = {
    "TimeoutSeconds": 60,
    "StartAt": "Pass",
    "States": {
        "Pass": {"Type": "Pass", "Result": {"r": [1, 2]}, "ResultPath": "$.r", "Next": "Parallel"},
        "Parallel": {
            "Type": "Parallel",
            "Branches": [_ITEMS, BOOM],
            "Retry": _RETRY,
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Inline"}],
            "Next": "Inline",
        },
        "Inline": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 2,
            "ItemSelector": {"value.$": "$$.Map.Item.Value"},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, **_ITEMS},
            "Next": "Distributed",
        },
        "Distributed": {
            "Type": "Map",
            "ItemReader": {
                "Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW", "MaxItems": 10},
                "Parameters": {"Bucket": "b", "Key": "k"},
            },
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, **_ITEMS},
            "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "b", "Prefix": "p"}},
            "Next": "Iterator",
        },
        "Iterator": {"Type": "Map", "Iterator": _ITEMS, "Next": "Choice"},
        "Choice": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.n", "NumericGreaterThan": 1, "Next": "Wait"}],
            "Default": "Send",
        },
        "Wait": {"Type": "Wait", "SecondsPath": "$.s", "Next": "Task"},
        "Task": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "f", "Payload.$": "States.JsonMerge($.a, States.StringToJson($.b), false)"},
            "Retry": _RETRY,
            "Next": "Send",
        },
        "Send": {
            "Type": "Task",
            "QueryLanguage": "JSONata",
            "Resource": "arn:aws:states:::sqs:sendMessage",
            "Arguments": {"QueueUrl": "q", "MessageBody": "{% $string($states.input) %}"},
            "Assign": {"sent": "{% $states.result %}", "count": [1, "{% 2 %}"]},
            "Retry": _RETRY,
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}
#: Methods that build a component: its constructor, and from_state_props, which the parser calls on a new state.
CONSTRUCTION = ("__init__", "from_state_props")
MUTATORS = frozenset(
    {"append", "extend", "insert", "pop", "remove", "clear", "update", "setdefault", "add", "discard", "popitem"}
    | {"sort", "reverse"}
)
#: What moto's ASL component classes write after construction, by class. EvalComponent.heap_key aside, these
#: are made for one evaluation of a state (workers, job pools, counters) and never held by a parsed program.
WRITTEN_AFTER_CONSTRUCTION = {
    "eval_component.EvalComponent": {"__heap_key"},
    "state.exec.state_map.iteration.iteration_worker.IterationWorker": {"_stop_signal_received"},
    "state.exec.state_map.iteration.job.JobPool": {"_open_jobs", "_closed_jobs", "_worker_exception"},
    "state.exec.state_map.iteration.itemprocessor.map_run_record.Counter": {"_count"},
    "state.exec.state_map.iteration.itemprocessor.map_run_record.MapRunRecord": {
        "status",
        "stop_date",
        "max_concurrency",
        "tolerated_failure_count",
        "tolerated_failure_percentage",
    },
    "state.exec.state_map.iteration.itemprocessor.map_run_record.MapRunRecordPoolManager": {"_pool"},
    "state.exec.state_parallel.branch_worker.BranchWorker": {"_worker_thread"},
    "state.exec.state_parallel.branches_decl.BranchWorkerPool": {"_terminated_with_error", "_active_workers_num"},
}


def _self_attribute(target: ast.expr) -> str | None:
    """The attribute of ``self`` (or ``cls``) a target writes into: self.a, self.a.b, self.a[k]: a; self[k]: self."""
    attribute = None
    while isinstance(target, ast.Attribute | ast.Subscript):
        if isinstance(target, ast.Attribute):
            attribute = target.attr
        target = target.value
    if isinstance(target, ast.Name) and target.id in ("self", "cls"):
        return attribute or target.id
    return None


def _written_targets(method: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[ast.expr]:
    """What a method (and any function inside it) assigns, deletes, mutates in place or setattr()s."""
    for node in ast.walk(method):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign | ast.Delete):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
            targets = [node.func.value]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
            targets = node.args[:1]
        for target in targets:
            yield from target.elts if isinstance(target, ast.Tuple | ast.List) else [target]


def _written_after_construction() -> dict[str, set[str]]:
    """For every class of moto's ASL components package: the attributes of ``self`` its methods write, but
    for construction's (CONSTRUCTION), keyed by module (relative to the package) and qualified class name."""
    import moto.stepfunctions.parser.asl.component as package

    root = os.path.dirname(package.__file__)
    written: dict[str, set[str]] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for cls in (node for node in body if isinstance(node, ast.ClassDef)):
            for method in cls.body:
                if isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef) and method.name not in CONSTRUCTION:
                    for target in _written_targets(method):
                        attribute = _self_attribute(target)
                        if attribute is not None:
                            written.setdefault(prefix + cls.name, set()).add(attribute)
            visit(cls.body, f"{prefix}{cls.name}.")

    for folder, _dirs, files in os.walk(root):
        for file in (f for f in files if f.endswith(".py")):
            path = os.path.join(folder, file)
            module = os.path.relpath(path, root).removesuffix(".py").replace(os.sep, ".")
            with open(path, encoding="utf-8") as source:
                visit(ast.parse(source.read()).body, f"{module}.")
    return written


def _component_class_name(obj: Any) -> str:
    """An object's class as _written_after_construction names it (module relative to the components package)."""
    import moto.stepfunctions.parser.asl.component as package

    return f"{type(obj).__module__.removeprefix(package.__name__ + '.')}.{type(obj).__qualname__}"


_NOT_WALKED = (type, ModuleType, FunctionType, BuiltinFunctionType, MethodType, Enum)


def _reachable(root: Any) -> list[Any]:
    """Every object a parsed program refers to, found by the garbage collector's own references (not by
    moto_patches' walk), without going into classes, modules, functions or enum members."""
    seen: set[int] = set()
    found: list[Any] = []
    pending = [root]
    while pending:
        obj = pending.pop()
        if id(obj) in seen or isinstance(obj, _NOT_WALKED):
            continue
        seen.add(id(obj))
        found.append(obj)
        pending.extend(gc.get_referents(obj))
    return found


def _counting_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    parses: list[str] = []
    parse = AmazonStateLanguageParser.parse

    def counting(definition: str) -> Any:
        parses.append(definition)
        return parse(definition)

    monkeypatch.setattr(AmazonStateLanguageParser, "parse", staticmethod(counting))
    return parses


def _worker(definition: dict[str, Any]) -> ExecutionWorker:
    """An execution's worker, as far as _get_evaluation_entrypoint reads it."""
    details = SimpleNamespace(state_machine_details=SimpleNamespace(definition=json.dumps(definition)))
    return ExecutionWorker(
        evaluation_details=cast(Any, details),
        exec_comm=cast(Any, None),
        cloud_watch_logging_session=None,
        activity_store={},
    )


def test_gap_sfn_definition_parsed_once(unpatched: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    """If this fails, moto changed how an execution gets its program or what its components write while they
    run: drop patch sfn_definition_parsed_once from moto_patches, or revisit what makes sharing a program safe."""
    c = unpatched
    parses = _counting_parses(monkeypatch)

    # Every execution parses its definition again (CreateStateMachine parsed it once already, to validate it).
    sm = _state_machine(c, PASS)
    for run in range(2):
        _finished(c, c.sfn.start_execution(stateMachineArn=sm, name=f"run{run}")["executionArn"])
    assert parses == [json.dumps(PASS)] * 3
    worker = _worker(EVERY_KIND)
    first, second = worker._get_evaluation_entrypoint(), worker._get_evaluation_entrypoint()
    assert first is not second
    # TestState's worker has a parser of its own and is not the one patched.
    assert "_get_evaluation_entrypoint" in vars(test_state_worker.TestStateExecutionWorker)

    # Nothing a parsed program holds is written once it is built, but EvalComponent's heap key...
    assert _written_after_construction() == WRITTEN_AFTER_CONSTRUCTION
    reachable = {_component_class_name(obj) for obj in _reachable(first)}
    assert "program.program.Program" in reachable
    assert "state.exec.state_map.state_map.StateMap" in reachable
    assert not reachable & (set(WRITTEN_AFTER_CONSTRUCTION) - {"eval_component.EvalComponent"})
    # ...a private attribute, set on first read of the heap_key property...
    assert isinstance(vars(EvalComponent)["heap_key"], property)
    assert vars(EvalComponent)["_EvalComponent__heap_key"] is None
    components = [obj for obj in _reachable(first) if isinstance(obj, EvalComponent)]
    assert len(components) > 100
    assert not [obj for obj in components if "_EvalComponent__heap_key" in vars(obj)]
    # ...without a lock: two first reads at once make a key each, and the component keeps the last written.
    made: list[str] = []
    both_inside = threading.Barrier(2, timeout=5)

    def uid() -> str:
        both_inside.wait()
        made.append(long_uid())
        return made[-1]

    monkeypatch.setattr(eval_component, "long_uid", uid)
    attempts = MaxAttemptsDecl(attempts=1)
    readers = [threading.Thread(target=lambda: attempts.heap_key) for _ in range(2)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(5)
    assert len(set(made)) == 2
    assert attempts.heap_key in made


def test_patched_sfn_definition_parsed_once(patched: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    c = patched
    parses = _counting_parses(monkeypatch)

    # Parsed, every component of every kind of state has its heap key.
    every_kind = moto_patches._parsed_program(json.dumps(EVERY_KIND))
    reachable = [obj for obj in _reachable(every_kind) if isinstance(obj, EvalComponent)]
    assert len(reachable) > 100
    assert all("_EvalComponent__heap_key" in vars(obj) for obj in reachable)
    assert moto_patches._parsed_program(json.dumps(EVERY_KIND)) is every_kind
    assert parses == [json.dumps(EVERY_KIND)]
    parses.clear()

    sm = _state_machine(c, RETRIED_PARALLEL, name="retried")
    definition = json.dumps(RETRIED_PARALLEL)
    assert parses == [definition]  # CreateStateMachine's validation
    parses.clear()
    keys: list[str] = []

    def slow_uid() -> str:
        time.sleep(0.005)  # a wide window for two first reads of a heap key to meet in
        keys.append(long_uid())
        return keys[-1]

    monkeypatch.setattr(eval_component, "long_uid", slow_uid)

    # Executions started together: one parse, and each retries exactly as often as its Retry says.
    arns = [
        c.sfn.start_execution(stateMachineArn=sm, name=f"run{n}")["executionArn"] for n in range(CONCURRENT_EXECUTIONS)
    ]
    for arn in arns:
        described = _finished(c, arn)
        assert (described["status"], described["error"]) == ("FAILED", "Boom")
        events = [event["type"] for event in c.sfn.get_execution_history(executionArn=arn)["events"]]
        assert events.count("ParallelStateStarted") == 1 + RETRY_ATTEMPTS, events
    assert parses == [definition]
    assert sorted(moto_patches.retry_waits()) == sorted([1.0, 2.0, 4.0] * CONCURRENT_EXECUTIONS)

    # The shared program had every heap key before any execution ran: one key made for each component.
    program = moto_patches._parsed_program(definition)
    components = [obj for obj in _reachable(program) if isinstance(obj, EvalComponent)]
    assert components
    assert all("_EvalComponent__heap_key" in vars(obj) for obj in components)
    assert sorted(keys) == sorted(obj.heap_key for obj in components)
    assert len(set(keys)) == len(keys)
    assert {id(obj) for obj in moto_patches._eval_components(program)} == {id(obj) for obj in components}
    assert parses == [definition]

    # Another definition has a program of its own; the first one stays.
    parses.clear()
    other = _state_machine(c, PASS, name="other")
    assert _finished(c, c.sfn.start_execution(stateMachineArn=other)["executionArn"])["status"] == "SUCCEEDED"
    assert parses == [json.dumps(PASS)] * 2  # CreateStateMachine's, then the execution's
    assert moto_patches._parsed_program(json.dumps(PASS)) is not program
    assert moto_patches._parsed_program(definition) is program
    assert moto_patches._parsed_program.cache_info().maxsize == moto_patches.PROGRAMS_KEPT


# -- 17. s3_conditional_writes_atomic ----------------------------------------------------------------

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
    """If this fails, moto fixed the gap: drop patch s3_conditional_writes_atomic from moto_patches."""
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
    assert len(moto_patches._key_locks) == 0, "no lock outlives its requests"

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


# -- 18. s3_delete_if_match_any ---------------------------------------------------------------------


def test_gap_s3_delete_if_match_any(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap: drop patch s3_delete_if_match_any from moto_patches."""
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


# -- 19. s3_multipart_one_created_event -------------------------------------------------------------


def _multipart_upload(c: Clients, bucket: str, key: str, body: bytes) -> str:
    """One multipart upload of ``body`` in one part; the ETag S3 gives the object."""
    upload = c.s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    part = c.s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=body)
    done = c.s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    )
    return str(done["ETag"]).strip('"')


def test_gap_s3_multipart_one_created_event(unpatched: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    """If this fails, moto fixed the gap: drop patch s3_multipart_one_created_event from moto_patches."""
    c = unpatched
    sent: list[str] = []
    original = s3_notifications._send_event_bridge_message

    def spy(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
        sent.append(event_name)
        original(account_id, bucket, event_name, key)

    monkeypatch.setattr(s3_notifications, "_send_event_bridge_message", spy)
    url, queue_arn = _queue(c, "created")
    _rule(c, "created", [{"Id": "q", "Arn": queue_arn}])
    _eventbridge_bucket(c, "events-bucket")

    _multipart_upload(c, "events-bucket", "big.jpg", b"a" * 1024)

    created = [name for name in sent if name.startswith("s3:ObjectCreated:")]
    assert created == ["s3:ObjectCreated:Put", "s3:ObjectCreated:CompleteMultipartUpload"]
    assert [body["detail"]["object"]["key"] for body in _bodies(c, url)] == ["big.jpg", "big.jpg"]


def test_patched_s3_multipart_one_created_event(patched: Clients, runtime: FakeRuntime) -> None:
    c = patched
    sm = _state_machine(c, PASS)
    _rule(c, "created", [{"Id": "sm", "Arn": sm}])
    _eventbridge_bucket(c, "events-bucket")

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


def _patched_attributes() -> dict[str, Any]:
    return {
        "StateMachine.create_from_cloudformation_json": StateMachine.__dict__["create_from_cloudformation_json"],
        "FakeBucket.create_from_cloudformation_json": FakeBucket.__dict__["create_from_cloudformation_json"],
        "s3_notifications._send_event_bridge_message": s3_notifications._send_event_bridge_message,
        "Rule.send_to_targets": Rule.__dict__["send_to_targets"],
        "StepFunctionsParserBackend.start_execution": StepFunctionsParserBackend.__dict__["start_execution"],
        "LambdaFunction.invoke": LambdaFunction.__dict__["invoke"],
        "LambdaFunction.create_from_cloudformation_json": LambdaFunction.__dict__["create_from_cloudformation_json"],
        "retrier_decl.time": vars(retrier_decl)["time"],
        "WaitFunction._wait_interval": WaitFunction.__dict__["_wait_interval"],
        "Execution._get_start_execution_worker": Execution.__dict__["_get_start_execution_worker"],
        "StateTaskServiceSfn._normalise_parameters": StateTaskServiceSfn.__dict__["_normalise_parameters"],
        "StateTaskServiceSfn._normalise_response": StateTaskServiceSfn.__dict__.get("_normalise_response"),
        "DomainDispatcherApplication.__call__": DomainDispatcherApplication.__dict__["__call__"],
        "state_fail.CustomErrorName": vars(state_fail)["CustomErrorName"],
        **{f"CloudFormationBackend.{name}": CloudFormationBackend.__dict__[name] for name in moto_patches._CFN_GUARDED},
        **{
            f"{name}.boto_client_for": vars(importlib.import_module(name))["boto_client_for"]
            for name in (boto_client.__name__, *moto_patches.BOTO_CLIENT_USERS)
        },
        "DomainDispatcherApplication.get_backend_for_host": vars(DomainDispatcherApplication)["get_backend_for_host"],
        "ExecutionWorker._get_evaluation_entrypoint": vars(ExecutionWorker)["_get_evaluation_entrypoint"],
        "S3Response.put_object": vars(S3Response)["put_object"],
        "S3Response.delete_object": vars(S3Response)["delete_object"],
        "S3Backend.put_object": vars(S3Backend)["put_object"],
        "S3Backend.delete_object": vars(S3Backend)["delete_object"],
        "S3Backend.complete_multipart_upload": vars(S3Backend)["complete_multipart_upload"],
    }


def test_remove_restores_every_original(monkeypatch: pytest.MonkeyPatch) -> None:
    assert moto_patches._state.originals is None
    # apply/remove write to moto's process-wide config: let them write to a copy, restored afterwards.
    monkeypatch.setitem(default_user_config, "stepfunctions", dict(default_user_config.get("stepfunctions", {})))
    executing_before = default_user_config["stepfunctions"].get("execute_state_machine", False)
    before = _patched_attributes()
    runtime = FakeRuntime()
    try:
        moto_patches.apply(runtime, time_scale=0.5)
        moto_patches.apply(runtime, time_scale=0.25)  # idempotent: the originals are kept, not re-read
        during = _patched_attributes()
        assert [name for name in before if during[name] is before[name]] == []
        assert default_user_config["stepfunctions"]["execute_state_machine"] is True
        assert moto_patches._state.time_scale == 0.25
        moto_patches._parsed_program(json.dumps(PASS))
        assert moto_patches._parsed_program.cache_info().currsize == 1
    finally:
        moto_patches.remove()
    assert moto_patches._parsed_program.cache_info().currsize == 0, "no program outlives the patches"
    after = _patched_attributes()
    assert [name for name in before if after[name] is not before[name]] == []
    assert moto_patches._state.originals is None
    assert moto_patches._state.runtime is None
    assert default_user_config["stepfunctions"].get("execute_state_machine", False) == executing_before
    moto_patches.remove()  # removing twice is harmless
    assert _patched_attributes() == after


def test_apply_refuses_another_moto_version(monkeypatch: pytest.MonkeyPatch) -> None:
    assert moto_patches._state.originals is None
    before = _patched_attributes()
    monkeypatch.setattr(moto, "__version__", "5.2.6")
    try:
        with pytest.raises(RuntimeError, match=r"patches moto 5\.2\.5; moto 5\.2\.6 is installed"):
            moto_patches.apply(FakeRuntime())
    finally:
        moto_patches.remove()
    assert moto_patches._state.originals is None
    assert _patched_attributes() == before


def test_the_pinned_moto_is_the_patched_one() -> None:
    assert moto.__version__ == moto_patches.MOTO_VERSION


@pytest.mark.parametrize("name", sorted(moto_patches.PATCHES))
def test_every_patch_has_both_tests(name: str) -> None:
    tests: dict[str, Callable[..., Any]] = {k: v for k, v in globals().items() if k.startswith("test_")}
    assert f"test_gap_{name}" in tests
    assert f"test_patched_{name}" in tests
    assert "drop patch " + name + " from moto_patches" in (tests[f"test_gap_{name}"].__doc__ or "")


DELETED = json.dumps({"source": ["aws.s3"], "detail-type": ["Object Deleted"]})


def _versioned_deletions(c: Clients) -> tuple[str, list[str]]:
    """Three versions of a key in a versioned bucket; then a delete (marker) and a permanent delete of
    one noncurrent version. Returns the queue receiving Object Deleted events and the versions."""
    url, arn = _queue(c, "deleted")
    _rule(c, "deleted", [{"Id": "q", "Arn": arn}], pattern=DELETED)
    _eventbridge_bucket(c, "versioned")
    c.s3.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
    versions = [c.s3.put_object(Bucket="versioned", Key="k.jpg", Body=bytes([n]))["VersionId"] for n in range(3)]
    return url, versions


def test_gap_s3_versioned_deletion_event(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap: drop patch s3_versioned_deletion_event from moto_patches."""
    c = unpatched
    url, versions = _versioned_deletions(c)
    c.s3.delete_object(Bucket="versioned", Key="k.jpg")
    c.s3.delete_object(Bucket="versioned", Key="k.jpg", VersionId=versions[0])
    assert _bodies(c, url) == [], "no event for a delete marker, nor for a permanent delete of one version"


def test_patched_s3_versioned_deletion_event(patched: Clients) -> None:
    c = patched
    url, versions = _versioned_deletions(c)
    marker = c.s3.delete_object(Bucket="versioned", Key="k.jpg")["VersionId"]
    c.s3.delete_object(Bucket="versioned", Key="k.jpg", VersionId=versions[0])
    events = _bodies(c, url)
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
    assert [e["detail"]["object"]["version-id"] for e in _bodies(c, url)] == [marker, versions[1], versions[2]]
