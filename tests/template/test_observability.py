"""Observability in template.yaml, transformed offline by the real aws-sam-translator: the pipeline state
machine's execution log, X-Ray tracing, the e-mail subscription and its filter policy, the dashboard.

docs/observability.md says what each is for. test_template.py holds the IAM scope rules: the grants on
"*" these need (log delivery, X-Ray) are exceptions there, each allowed only in the role or policy that
needs it. Parameters are decided here as CloudFormation would (``deployed``: conditions evaluated,
``Fn::If`` chosen, intrinsic functions resolved with ``helpers.Resolver``).
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple, cast

import boto3
import pytest
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider
from moto import mock_aws
from moto.sns.utils import FilterPolicyMatcher

from localcloud import sam
from pipeline import steps
from pipeline.events import NotifyEvent, RemoveEvent
from pipeline.observability import metrics
from pipeline.settings import NotifySettings, Staging, StoreSettings
from pipeline.storage import Topic
from tests.template.helpers import ACCOUNT, ROOT, Resolver, constraint_violations, listify, of_type, props, references
from tests.template.test_asl import (
    CLEANUP,
    DESTINATION_BUCKET,
    FAILURE,
    MANUAL_INPUT,
    REMOVE,
    STAGING_BUCKET,
    UNREPORTED,
    UPLOAD_PREFIX,
    Pipeline,
    deleted_source,
    empty,
    lambda_error,
    walk,
)
from tests.template.test_template import (
    ALL_FUNCTIONS,
    LOG_DELIVERY_ACTIONS,
    STATE_MACHINE,
    TRACING_POLICY,
    XRAY_STATE_MACHINE_ACTIONS,
    XRAY_WRITE_ACTIONS,
    function_env,
    getatt,
    granted_statements,
    role_of,
    state_machine_role,
)

LOG_GROUP = "ImagePipelineLogGroup"
SUBSCRIPTION = "NotificationSubscription"
DASHBOARD = "Dashboard"
PIPELINE = ROOT / "layers" / "shared" / "pipeline"
REGION = "us-east-1"
NO_VALUE = {"Ref": "AWS::NoValue"}


# ---------------------------------------------------------------- conditions, as CloudFormation decides them


def conditions(cfn: Mapping[str, Any], parameters: Mapping[str, str] | None = None) -> dict[str, bool]:
    """Every condition of the template, evaluated with the parameter defaults and ``parameters``."""
    resolve = Resolver(cfn, parameters)
    definitions: Mapping[str, Any] = cfn.get("Conditions", {})
    decided: dict[str, bool] = {}

    def evaluate(expression: Mapping[str, Any]) -> bool:
        [(function, argument)] = expression.items()
        if function == "Fn::Equals":
            left, right = argument
            return str(resolve(left)) == str(resolve(right))
        if function == "Fn::Not":
            return not evaluate(argument[0])
        if function == "Fn::And":
            return all(evaluate(a) for a in argument)
        if function == "Fn::Or":
            return any(evaluate(a) for a in argument)
        if function == "Condition":
            return value(argument)
        raise NotImplementedError(f"condition function {function}")

    def value(name: str) -> bool:
        if name not in decided:
            decided[name] = evaluate(definitions[name])
        return decided[name]

    return {name: value(name) for name in definitions}


def decide(value: Any, truth: Mapping[str, bool]) -> Any:
    """``value`` with every Fn::If chosen; AWS::NoValue removes the key or the list item, as in CloudFormation."""
    if isinstance(value, Mapping):
        if set(value) == {"Fn::If"}:
            name, when_true, when_false = value["Fn::If"]
            return decide(when_true if truth[name] else when_false, truth)
        decided = {key: decide(item, truth) for key, item in value.items()}
        return {key: item for key, item in decided.items() if item != NO_VALUE}
    if isinstance(value, list):
        return [item for item in (decide(i, truth) for i in value) if item != NO_VALUE]
    return value


def deployed(cfn: Mapping[str, Any], name: str, parameters: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The properties CloudFormation would create resource ``name`` with, given ``parameters``."""
    properties = decide(props(cfn["Resources"], name), conditions(cfn, parameters))
    resolved = Resolver(cfn, parameters)(properties)
    assert isinstance(resolved, dict)
    return resolved


def created(cfn: Mapping[str, Any], name: str, parameters: Mapping[str, str] | None = None) -> bool:
    condition = cfn["Resources"][name].get("Condition")
    return condition is None or conditions(cfn, parameters)[condition]


def test_condition_evaluation_follows_the_parameters(cfn: dict[str, Any]) -> None:
    """Control of the helpers above: the defaults, then each condition flipped by its parameter."""
    assert conditions(cfn) == {
        "UseJwt": False,
        "IsExpress": False,
        "DefaultLogLevel": True,
        "LogExecutionData": False,
        "TracingOn": True,
        "HasNotificationEmail": False,
        "NotifyOnSuccess": False,
    }
    flipped = {
        "UseJwt": {"ApiAuth": "JWT"},
        "IsExpress": {"WorkflowType": "EXPRESS"},
        "DefaultLogLevel": {"StateMachineLogLevel": "ALL"},
        "LogExecutionData": {"StateMachineLogExecutionData": "true"},
        "TracingOn": {"Tracing": "Disabled"},
        "HasNotificationEmail": {"NotificationEmail": "ops@example.com"},
        "NotifyOnSuccess": {"NotifySuccesses": "true"},
    }
    defaults = conditions(cfn)
    for name, parameters in flipped.items():
        assert conditions(cfn, parameters) == {**defaults, name: not defaults[name]}, name
    assert decide({"a": {"Fn::If": ["TracingOn", NO_VALUE, 1]}, "b": [NO_VALUE, 2]}, defaults) == {"b": [2]}


# ---------------------------------------------------------------- the state machine's execution log


def test_state_machine_logs_to_a_log_group_of_its_own(resources: dict[str, Any]) -> None:
    logging = props(resources, STATE_MACHINE)["LoggingConfiguration"]
    [destination] = logging["Destinations"]
    assert set(destination) == {"CloudWatchLogsLogGroup"}
    assert getatt(destination["CloudWatchLogsLogGroup"]["LogGroupArn"]) == (LOG_GROUP, "Arn")  # ends in ":*"
    group = props(resources, LOG_GROUP)
    assert resources[LOG_GROUP]["Type"] == "AWS::Logs::LogGroup"
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    # Vended logs under /aws/vendedlogs/ need no entry of their own in the account's log resource policy.
    assert group["LogGroupName"] == {"Fn::Sub": "/aws/vendedlogs/states/${AWS::StackName}-pipeline"}
    writers = [
        f for f in of_type(resources, "AWS::Lambda::Function") if props(resources, f)["LoggingConfig"]["LogGroup"]
    ]
    assert all(props(resources, f)["LoggingConfig"]["LogGroup"] != {"Ref": LOG_GROUP} for f in writers)


LEVELS = [
    pytest.param({}, "ERROR", id="STANDARD, DEFAULT"),
    pytest.param({"WorkflowType": "EXPRESS"}, "ALL", id="EXPRESS, DEFAULT"),
    pytest.param({"StateMachineLogLevel": "ALL"}, "ALL", id="STANDARD, ALL"),
    pytest.param({"WorkflowType": "EXPRESS", "StateMachineLogLevel": "ERROR"}, "ERROR", id="EXPRESS, ERROR"),
    pytest.param({"StateMachineLogLevel": "FATAL"}, "FATAL", id="STANDARD, FATAL"),
    pytest.param({"WorkflowType": "EXPRESS", "StateMachineLogLevel": "OFF"}, "OFF", id="EXPRESS, OFF"),
]


@pytest.mark.parametrize(("parameters", "level"), LEVELS)
def test_log_level_follows_the_parameter_and_the_workflow_type(
    parameters: dict[str, str], level: str, cfn: dict[str, Any], template: dict[str, Any]
) -> None:
    for name, value in parameters.items():
        assert constraint_violations(template["Parameters"][name], value) == []
    assert deployed(cfn, STATE_MACHINE, parameters)["LoggingConfiguration"]["Level"] == level


def test_every_log_level_the_parameter_allows_is_one_step_functions_takes(
    cfn: dict[str, Any], template: dict[str, Any]
) -> None:
    definition = template["Parameters"]["StateMachineLogLevel"]
    assert definition["Default"] == "DEFAULT"
    assert set(definition["AllowedValues"]) == {"DEFAULT", "ALL", "ERROR", "FATAL", "OFF"}
    for workflow in template["Parameters"]["WorkflowType"]["AllowedValues"]:
        for value in definition["AllowedValues"]:
            parameters = {"WorkflowType": workflow, "StateMachineLogLevel": value}
            level = deployed(cfn, STATE_MACHINE, parameters)["LoggingConfiguration"]["Level"]
            assert level in ("ALL", "ERROR", "FATAL", "OFF"), parameters  # the API's LogLevel


def test_an_express_workflow_logs_everything_by_default(packaged: dict[str, Any]) -> None:
    """Through the real transform: an EXPRESS workflow has no execution history but its log."""
    overrides = {"WorkflowType": "EXPRESS"}
    transformed = sam.to_cloudformation(packaged, overrides)
    machine = deployed(transformed, STATE_MACHINE, overrides)
    assert machine["StateMachineType"] == "EXPRESS"
    assert machine["LoggingConfiguration"]["Level"] == "ALL"
    assert machine["LoggingConfiguration"]["IncludeExecutionData"] is False


@pytest.mark.parametrize(("value", "included"), [("false", False), ("true", True)])
def test_execution_data_is_left_out_of_the_log_unless_asked(
    value: str, included: bool, cfn: dict[str, Any], template: dict[str, Any]
) -> None:
    definition = template["Parameters"]["StateMachineLogExecutionData"]
    assert definition["Default"] == "false"
    assert constraint_violations(definition, value) == []
    logging = deployed(cfn, STATE_MACHINE, {"StateMachineLogExecutionData": value})["LoggingConfiguration"]
    assert logging["IncludeExecutionData"] is included  # a Boolean, not the parameter's string


# ---------------------------------------------------------------- tracing


@pytest.mark.parametrize(
    ("value", "mode", "enabled"), [("Enabled", "Active", True), ("Disabled", "PassThrough", False)]
)
def test_tracing_switches_every_function_and_the_state_machine(
    value: str, mode: str, enabled: bool, cfn: dict[str, Any], template: dict[str, Any]
) -> None:
    assert constraint_violations(template["Parameters"]["Tracing"], value) == []
    functions = of_type(cfn["Resources"], "AWS::Lambda::Function")
    assert set(functions) == set(ALL_FUNCTIONS)
    for function in functions:
        assert deployed(cfn, function, {"Tracing": value})["TracingConfig"] == {"Mode": mode}, function
    assert deployed(cfn, STATE_MACHINE, {"Tracing": value})["TracingConfiguration"] == {"Enabled": enabled}


def test_tracing_is_on_by_default(template: dict[str, Any]) -> None:
    definition = template["Parameters"]["Tracing"]
    assert (definition["Default"], set(definition["AllowedValues"])) == ("Enabled", {"Enabled", "Disabled"})
    assert "Tracing" in template["Globals"]["Function"], "one switch for every function"


def _imports(path: Path) -> Iterator[tuple[str, str]]:
    """(module, name) of every import of a Python file (name is "" for ``import module``)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, "") for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield from ((node.module or "", alias.name) for alias in node.names)


def test_no_function_carries_a_tracing_sdk() -> None:
    """Lambda's active tracing records each invocation without any code: no X-Ray SDK, no Powertools Tracer
    (each adds its import and a patch of botocore to every cold start)."""
    sources = [*PIPELINE.rglob("*.py"), *(ROOT / "functions").glob("*/*.py")]
    assert len(sources) > 20
    for path in sources:
        for module, name in _imports(path):
            assert not module.startswith(("aws_xray_sdk", "opentelemetry")), (path, module)
            assert not module.startswith("aws_lambda_powertools.tracing"), (path, module)
            assert not (module == "aws_lambda_powertools" and name == "Tracer"), path
    requirements = [ROOT / "layers" / "shared" / "requirements.txt", *(ROOT / "functions").glob("*/requirements.txt")]
    for path in requirements:
        text = path.read_text(encoding="utf-8").lower()
        assert "xray" not in text, path
        assert "aws-lambda-powertools[tracer]" not in text, path


# ---------------------------------------------------------------- what logging and tracing need from IAM


def test_every_function_role_attaches_the_tracing_policy_and_no_other_role_does(resources: dict[str, Any]) -> None:
    function_roles = {role_of(resources, f) for f in of_type(resources, "AWS::Lambda::Function")}
    assert len(function_roles) == len(ALL_FUNCTIONS)
    attaching = {
        name
        for name, role in of_type(resources, "AWS::IAM::Role").items()
        if {"Ref": TRACING_POLICY} in role["Properties"].get("ManagedPolicyArns", [])
    }
    assert attaching == function_roles
    policy = props(resources, TRACING_POLICY)
    assert resources[TRACING_POLICY]["Type"] == "AWS::IAM::ManagedPolicy"
    # Attached by the roles themselves: a function is created after its role, so it can send traces from the start
    # (Lambda refuses Active tracing to a role lacking xray:PutTraceSegments).
    assert not {"Roles", "Users", "Groups"} & set(policy)
    assert "Condition" not in resources[TRACING_POLICY], "granted whatever Tracing says: no race when it changes"
    [statement] = listify(policy["PolicyDocument"]["Statement"])
    assert statement["Effect"] == "Allow"
    assert set(listify(statement["Action"])) == XRAY_WRITE_ACTIONS
    assert statement["Resource"] == "*"


def test_the_grants_on_star_are_the_documented_ones_each_where_it_is_needed(resources: dict[str, Any]) -> None:
    """Logging and tracing are the only grants on "*"; the IAM scope test holds the rule, this the inventory."""
    on_star = {
        (holder, frozenset(listify(statement["Action"])))
        for holder, _, statement in granted_statements(resources)
        if statement.get("Effect") == "Allow" and "*" in listify(statement.get("Resource", []))
    }
    machine = state_machine_role(resources)
    assert machine is not None
    assert on_star == {
        (machine, LOG_DELIVERY_ACTIONS),
        (machine, XRAY_STATE_MACHINE_ACTIONS),
        (TRACING_POLICY, XRAY_WRITE_ACTIONS),
    }


# ---------------------------------------------------------------- the e-mail subscription and its filter policy


def test_an_email_subscription_only_when_an_address_is_given(cfn: dict[str, Any]) -> None:
    resource = cfn["Resources"][SUBSCRIPTION]
    assert resource["Type"] == "AWS::SNS::Subscription"
    assert cfn["Conditions"][resource["Condition"]] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "NotificationEmail"}, ""]}]}
    assert cfn["Parameters"]["NotificationEmail"]["Default"] == ""
    assert not created(cfn, SUBSCRIPTION)
    address = {"NotificationEmail": "ops@example.com"}
    assert created(cfn, SUBSCRIPTION, address)
    subscription = deployed(cfn, SUBSCRIPTION, address)
    assert subscription["Protocol"] == "email"
    assert subscription["Endpoint"] == "ops@example.com"
    assert subscription["TopicArn"] == Resolver(cfn)({"Ref": "Topic"})
    assert subscription["FilterPolicyScope"] == "MessageBody"


EMAILS = [
    ("", True),
    ("ops@example.com", True),
    ("first.last+imgpipe@mail.example.org", True),
    ("ops", False),
    ("ops@example", False),
    ("two words@example.com", False),
    ("@example.com", False),
]


@pytest.mark.parametrize(("value", "accepted"), EMAILS, ids=[repr(v) for v, _ in EMAILS])
def test_notification_email_takes_an_address_or_nothing(value: str, accepted: bool, template: dict[str, Any]) -> None:
    assert (constraint_violations(template["Parameters"]["NotificationEmail"], value) == []) is accepted


def filter_policy(cfn: Mapping[str, Any], notify_successes: str) -> dict[str, Any]:
    parameters = {"NotificationEmail": "ops@example.com", "NotifySuccesses": notify_successes}
    policy = deployed(cfn, SUBSCRIPTION, parameters)["FilterPolicy"]
    assert isinstance(policy, dict)
    return policy


def alternatives(policy: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The policies a top-level "$or" stands for: one per object of its array, each with the keys beside it
    (https://docs.aws.amazon.com/sns/latest/dg/and-or-logic.html: {"a": .., "$or": [{"b": ..}, {"c": ..}]} is
    a && (b || c)). moto's matcher evaluates each (test_moto_cannot_evaluate_or_on_a_message_body_yet)."""
    if "$or" not in policy:
        return [dict(policy)]
    rest = {key: value for key, value in policy.items() if key != "$or"}
    assert len(policy["$or"]) >= 2, "SNS reads a single-object $or as a property name"
    return [each for option in policy["$or"] for each in alternatives({**rest, **option})]


def delivered(policy: Mapping[str, Any], scope: str, message: Mapping[str, Any]) -> bool:
    """Whether SNS would deliver ``message`` (a Publish call's Message and MessageAttributes), by moto's matcher."""
    attributes = {
        name: {"Type": attribute["DataType"], "Value": attribute["StringValue"]}
        for name, attribute in message.get("MessageAttributes", {}).items()
    }
    return any(
        FilterPolicyMatcher(option, scope).matches(attributes, message["Message"]) for option in alternatives(policy)
    )


class RecordingSns:
    """An SNS client that keeps what it is asked to publish."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, **request: Any) -> dict[str, str]:
        self.published.append(request)
        return {"MessageId": f"m-{len(self.published)}"}


TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:Topic"
STORE_SETTINGS = StoreSettings(
    destination_bucket=DESTINATION_BUCKET,
    upload_prefix=UPLOAD_PREFIX,
    cache_control="no-cache",
    staging=Staging(bucket=STAGING_BUCKET, prefix="staging/"),
)


def published_by_a_function(publish: Callable[[Topic], object]) -> dict[str, Any]:
    """What a step's pipeline.storage.Topic sends to SNS (the real serialisation of the real message)."""
    client = RecordingSns()
    try:
        publish(Topic(cast(Any, client), TOPIC_ARN))
    finally:
        metrics.clear_metrics()
    [request] = client.published
    return request


def published_by_the_state_machine(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """What an sns:publish task sends: Step Functions serialises a JSON object Message to its JSON text."""
    message = parameters["Message"]
    return {**parameters, "Message": message if isinstance(message, str) else json.dumps(message)}


def succeeded(asl: Mapping[str, Any]) -> dict[str, Any]:
    run = walk(asl, MANUAL_INPUT)
    event = NotifyEvent(run.call("Notify").parameters["Payload"])
    settings = NotifySettings(topic_arn=TOPIC_ARN, idempotency_table="table", idempotency_seconds=60)
    return published_by_a_function(lambda topic: steps.notify(event, settings, topic))


def removed(asl: Mapping[str, Any]) -> dict[str, Any]:
    pipeline, execution_input = deleted_source()
    run = walk(asl, execution_input, pipeline)
    event = RemoveEvent(run.call(REMOVE).parameters["Payload"])
    return published_by_a_function(lambda topic: steps.remove(event, STORE_SETTINGS, pipeline.s3, topic))


def failed(asl: Mapping[str, Any], prepare: Callable[[Pipeline], Any], state: str = FAILURE) -> dict[str, Any]:
    pipeline = Pipeline()
    run = walk(asl, prepare(pipeline), pipeline)
    return published_by_the_state_machine(run.call(state).parameters)


def store_failed(pipeline: Pipeline) -> Any:
    pipeline.fail("Store")
    return MANUAL_INPUT


def store_and_cleanup_failed(pipeline: Pipeline) -> Any:
    pipeline.fail(CLEANUP, lambda_error("InternalError", "KeyError: 'watermarked'"))
    return store_failed(pipeline)


#: A CloudWatch alarm notification as AWS publishes it, from AWS's own sample (aws/aws-lambda-go,
#: events/testdata/cloudwatch-alarm-sns-payload-single-metric.json): a JSON body and no message attribute.
AWS_SAMPLE_ALARM: dict[str, Any] = {
    "Message": json.dumps(
        {
            "AlarmName": "EXAMPLE",
            "AlarmDescription": "EXAMPLE",
            "AWSAccountId": "123456789012",
            "NewStateValue": "ALARM",
            "NewStateReason": "Threshold Crossed: 1 out of the last 1 datapoints [1234.0 (06/03/15 17:43:27)] was "
            "greater than the threshold (0.0) (minimum 1 datapoint for OK -> ALARM transition).",
            "StateChangeTime": "2015-06-03T17:43:27.123+0000",
            "Region": "EXAMPLE",
            "AlarmArn": "arn:aws:cloudwatch:REGION:ACCOUNT_NUMBER:alarm:EXAMPLE",
            "OldStateValue": "INSUFFICIENT_DATA",
            "Trigger": {
                "MetricName": "NetworkOut",
                "Namespace": "AWS/EC2",
                "StatisticType": "Statistic",
                "Statistic": "AVERAGE",
                "Unit": "Bytes",
                "Dimensions": [{"value": "TestInstance", "name": "InstanceId"}],
                "Period": 60,
                "EvaluationPeriods": 1,
                "ComparisonOperator": "GreaterThanThreshold",
                "Threshold": 0.0,
                "TreatMissingData": "- TreatMissingData:                    missing",
                "EvaluateLowSampleCountPercentile": "",
            },
        }
    ),
    "MessageAttributes": {},
}


def alarm_notification(cfn: Mapping[str, Any], alarm: str) -> dict[str, Any]:
    """The notification one of the template's alarms publishes, in the shape of AWS's sample."""
    properties = deployed(cfn, alarm)
    sample = json.loads(AWS_SAMPLE_ALARM["Message"])
    body = {
        **sample,
        "AlarmName": f"imgpipe-{alarm}-1A2B3C4D5E6F",
        "AlarmDescription": properties["AlarmDescription"],
        "Region": "US East (N. Virginia)",
        "AlarmArn": f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:imgpipe-{alarm}-1A2B3C4D5E6F",
        "Trigger": {
            **sample["Trigger"],
            "MetricName": properties["MetricName"],
            "Namespace": properties["Namespace"],
            "Statistic": properties["Statistic"].upper(),
            "Dimensions": [{"value": d["Value"], "name": d["Name"]} for d in properties["Dimensions"]],
        },
    }
    return {"Message": json.dumps(body), "MessageAttributes": {}}


@pytest.fixture(scope="module")
def notifications(cfn: dict[str, Any], asl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every kind of message the topic carries: the pipeline's (published by its code and its definition) and
    the alarms'."""
    found = {
        "SUCCEEDED": succeeded(asl),
        "DELETED": removed(asl),
        "FAILED (a step failed)": failed(asl, store_failed),
        "FAILED (upload rejected)": failed(asl, empty),
        "FAILED (clean-up failed too)": failed(asl, store_and_cleanup_failed, UNREPORTED),
        "alarm (AWS's sample)": AWS_SAMPLE_ALARM,
    }
    found |= {
        f"alarm {name}": alarm_notification(cfn, name) for name in of_type(cfn["Resources"], "AWS::CloudWatch::Alarm")
    }
    return found


def test_the_messages_are_the_pipelines_and_the_alarms(notifications: dict[str, dict[str, Any]]) -> None:
    """The premise of the filter: a pipeline message's body and attribute carry its status, an alarm's body its
    AlarmName and no attribute at all."""
    for name, message in notifications.items():
        body = json.loads(message["Message"])
        if name.startswith("alarm"):
            assert message["MessageAttributes"] == {}
            assert "AlarmName" in body
            assert "status" not in body
        else:
            status = name.split()[0]
            assert body["status"] == status
            assert message["MessageAttributes"]["status"] == {"DataType": "String", "StringValue": status}
    assert len([n for n in notifications if n.startswith("alarm")]) == 4


#: message -> (mailed by default, mailed with NotifySuccesses=true)
MAILED = {
    "SUCCEEDED": (False, True),
    "DELETED": (False, True),
    "FAILED (a step failed)": (True, True),
    "FAILED (upload rejected)": (True, True),
    "FAILED (clean-up failed too)": (True, True),
    "alarm (AWS's sample)": (True, True),
    "alarm ExecutionsFailedAlarm": (True, True),
    "alarm ExecutionsTimedOutAlarm": (True, True),
    "alarm DeadLetterQueueDepthAlarm": (True, True),
}


@pytest.mark.parametrize("notify_successes", ["false", "true"])
def test_the_filter_mails_failures_and_alarms_and_successes_when_asked(
    notify_successes: str, cfn: dict[str, Any], notifications: dict[str, dict[str, Any]]
) -> None:
    assert set(notifications) == set(MAILED)
    policy = filter_policy(cfn, notify_successes)
    scope = deployed(cfn, SUBSCRIPTION, {"NotificationEmail": "ops@example.com"})["FilterPolicyScope"]
    mailed = {name: delivered(policy, scope, message) for name, message in notifications.items()}
    column = notify_successes == "true"
    assert mailed == {name: expected[column] for name, expected in MAILED.items()}


def test_an_attribute_filter_would_drop_every_alarm(notifications: dict[str, dict[str, Any]]) -> None:
    """Why the filter reads the body, and why it needs "$or": filtered on status alone, in either scope,
    no alarm would reach the mailbox."""
    alarms = [message for name, message in notifications.items() if name.startswith("alarm")]
    for scope in ("MessageAttributes", "MessageBody"):
        assert delivered({"status": ["FAILED"]}, scope, notifications["FAILED (a step failed)"])
        assert not any(delivered({"status": ["FAILED"]}, scope, alarm) for alarm in alarms), scope


@pytest.mark.parametrize("notify_successes", ["false", "true"])
def test_sns_accepts_the_filter_policy(notify_successes: str, cfn: dict[str, Any]) -> None:
    """moto validates a subscription's filter policy as SNS does (keys, nesting, operators, complexity)."""
    policy = filter_policy(cfn, notify_successes)
    with mock_aws():
        sns = boto3.client("sns", region_name=REGION)
        topic = sns.create_topic(Name="topic")["TopicArn"]
        arn = sns.subscribe(
            TopicArn=topic,
            Protocol="email",
            Endpoint="ops@example.com",
            Attributes={"FilterPolicyScope": "MessageBody", "FilterPolicy": json.dumps(policy)},
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
        assert json.loads(attributes["FilterPolicy"]) == policy
        assert attributes["FilterPolicyScope"] == "MessageBody"
        with pytest.raises(sns.exceptions.InvalidParameterException):  # control: a value that is not an array
            sns.subscribe(
                TopicArn=topic,
                Protocol="email",
                Endpoint="ops@example.com",
                Attributes={"FilterPolicyScope": "MessageBody", "FilterPolicy": json.dumps({"status": "FAILED"})},
            )


def test_moto_cannot_evaluate_or_on_a_message_body_yet(cfn: dict[str, Any]) -> None:
    """moto 5.2.5 evaluates the objects of a body-scoped "$or" as message attributes, and fails on a string
    property; ``alternatives`` expands the "$or" as AWS defines it instead. When this fails, moto has been
    fixed: let ``delivered`` give moto the whole policy."""
    policy = filter_policy(cfn, "false")
    with pytest.raises(TypeError):
        FilterPolicyMatcher(policy, "MessageBody").matches({}, json.dumps({"status": "FAILED"}))


# ---------------------------------------------------------------- the dashboard


class Line(NamedTuple):
    """One metric of a dashboard graph."""

    namespace: str
    name: str
    dimensions: frozenset[tuple[str, str]]
    stat: str | None


def widgets(cfn: Mapping[str, Any]) -> list[dict[str, Any]]:
    body = props(cfn["Resources"], DASHBOARD)["DashboardBody"]
    assert set(body) == {"Fn::Sub"}
    assert isinstance(body["Fn::Sub"], str), "one text, its ${} filled in by CloudFormation"
    dashboard = json.loads(Resolver(cfn)(body))
    found = dashboard["widgets"]
    assert isinstance(found, list)
    return found


def lines(cfn: Mapping[str, Any]) -> list[Line]:
    """Every metric of every graph, written out in full (no "." or "..." shorthand)."""
    found = []
    for widget in widgets(cfn):
        if widget["type"] != "metric":
            continue
        properties = widget["properties"]
        for entry in properties["metrics"]:
            options = entry[-1] if isinstance(entry[-1], dict) else {}
            fields = entry[:-1] if options else entry
            assert all(isinstance(f, str) and f not in (".", "...") for f in fields), entry
            namespace, name, *dimensions = fields
            assert len(dimensions) % 2 == 0, entry
            pairs = frozenset(zip(dimensions[::2], dimensions[1::2], strict=True))
            found.append(Line(namespace, name, pairs, options.get("stat", properties.get("stat"))))
    return found


#: What the dashboard shows of the state machine (AWS/States, by StateMachineArn) and of every function.
EXECUTION_METRICS = ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut")
EXECUTION_TIME_STATS = ("p50", "p90", "p99")
FUNCTION_METRICS = ("Errors", "Throttles", "Duration")
METRIC_CALL = re.compile(r"""add_metric\(name="(\w+)\"""")


def metrics_in_code() -> set[str]:
    """Every custom metric name the pipeline's code emits (``add_metric(name=...)`` in layers/shared/pipeline)."""
    return {name for path in PIPELINE.rglob("*.py") for name in METRIC_CALL.findall(path.read_text(encoding="utf-8"))}


def metrics_reached(module: Path, entry: str) -> set[str]:
    """The metric names ``entry`` of ``module`` emits, itself or through the module's functions it calls."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    definitions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert entry in definitions, (module, entry)
    seen: set[str] = set()
    todo = [entry]
    names: set[str] = set()
    while todo:
        function = todo.pop()
        if function in seen or function not in definitions:
            continue
        seen.add(function)
        for node in ast.walk(definitions[function]):
            if not isinstance(node, ast.Call):
                continue
            if isinstance(node.func, ast.Attribute) and node.func.attr == "add_metric":
                names |= {
                    str(k.value.value) for k in node.keywords if k.arg == "name" and isinstance(k.value, ast.Constant)
                }
            elif isinstance(node.func, ast.Name):
                todo.append(node.func.id)
    return names


def metrics_by_function(function_dirs: Mapping[str, Path]) -> dict[str, set[str]]:
    """Function -> the metrics its handler emits: run_step's own, and those of the step it runs in it
    (``run_step(name, event, lambda: <module>.<step>(...))``)."""
    emitted: dict[str, set[str]] = {}
    for function, directory in function_dirs.items():
        names: set[str] = set()
        for node in ast.walk(ast.parse((directory / "app.py").read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "run_step":
                step = node.args[2]
                assert isinstance(step, ast.Lambda), function
                assert isinstance(step.body, ast.Call), function
                target = step.body.func
                assert isinstance(target, ast.Attribute), function
                assert isinstance(target.value, ast.Name), function
                names |= metrics_reached(PIPELINE / "observability.py", "run_step")
                names |= metrics_reached(PIPELINE / f"{target.value.id}.py", target.attr)
        emitted[function] = names
    return emitted


def emf_metric(env: Mapping[str, str], name: str) -> tuple[str, str, frozenset[tuple[str, str]]]:
    """(namespace, name, dimensions) of a metric as Powertools writes it (EMF) with a function's environment."""
    provider = AmazonCloudWatchEMFProvider(
        metric_set={},
        dimension_set={},
        metadata_set={},
        default_dimensions={},
        namespace=env["POWERTOOLS_METRICS_NAMESPACE"],
        service=env["POWERTOOLS_SERVICE_NAME"],
    )
    provider.add_metric(name=name, unit="Count", value=1)
    document: dict[str, Any] = dict(provider.serialize_metric_set())
    [directive] = document["_aws"]["CloudWatchMetrics"]
    [dimension_names] = directive["Dimensions"]
    return directive["Namespace"], name, frozenset((d, str(document[d])) for d in dimension_names)


@pytest.fixture(scope="module")
def emitted(cfn: dict[str, Any], function_dirs: dict[str, Path]) -> set[tuple[str, str, frozenset[tuple[str, str]]]]:
    """Every custom metric the functions emit, as CloudWatch files it (namespace, name, dimensions)."""
    by_function = metrics_by_function(function_dirs)
    assert set().union(*by_function.values()) == metrics_in_code(), "a metric no handler reaches, or a new module"
    return {emf_metric(function_env(cfn, function), name) for function, names in by_function.items() for name in names}


def dashboard_gaps(cfn: Mapping[str, Any], emitted: set[tuple[str, str, frozenset[tuple[str, str]]]]) -> list[str]:
    """What the dashboard misses: a function, an execution metric, the queue, a custom metric (or shows one
    nothing emits)."""
    resolve = Resolver(cfn)
    body = props(cfn["Resources"], DASHBOARD)["DashboardBody"]
    shown = {(line.namespace, line.name, line.dimensions) for line in lines(cfn)}
    gaps = []
    for function in sorted(of_type(cfn["Resources"], "AWS::Lambda::Function")):
        if function not in references(body):
            gaps.append(f"{function}: not named by a reference (its deployed name is known only to CloudFormation)")
        by_name = frozenset({("FunctionName", resolve({"Ref": function}))})
        gaps += [f"{function}: no {m}" for m in FUNCTION_METRICS if ("AWS/Lambda", m, by_name) not in shown]
    machine = frozenset({("StateMachineArn", resolve({"Ref": STATE_MACHINE}))})
    gaps += [f"{STATE_MACHINE}: no {m}" for m in EXECUTION_METRICS if ("AWS/States", m, machine) not in shown]
    stats = {
        line.stat
        for line in lines(cfn)
        if (line.namespace, line.name, line.dimensions) == ("AWS/States", "ExecutionTime", machine)
    }
    gaps += [f"{STATE_MACHINE}: no ExecutionTime {s}" for s in EXECUTION_TIME_STATS if s not in stats]
    queue = frozenset({("QueueName", resolve({"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}))})
    if ("AWS/SQS", "ApproximateNumberOfMessagesVisible", queue) not in shown:
        gaps.append("DeadLetterQueue: no ApproximateNumberOfMessagesVisible")
    custom = {namespace for namespace, _, _ in emitted}
    gaps += [f"{name} {dict(dims)}: not on the dashboard" for _, name, dims in sorted(emitted - shown)]
    gaps += [f"{name} {dict(dims)}: nothing emits it" for ns, name, dims in sorted(shown - emitted) if ns in custom]
    return gaps


def test_the_dashboard_shows_every_function_execution_metric_and_custom_metric(
    cfn: dict[str, Any], emitted: set[tuple[str, str, frozenset[tuple[str, str]]]]
) -> None:
    assert set(of_type(cfn["Resources"], "AWS::Lambda::Function")) == set(ALL_FUNCTIONS)
    assert {"UploadsCreateFunction", "UploadsReadFunction", "UploadsDeleteFunction"} <= set(ALL_FUNCTIONS)
    assert dashboard_gaps(cfn, emitted) == []


def test_custom_metrics_carry_the_namespace_and_the_service_dimension(
    cfn: dict[str, Any], emitted: set[tuple[str, str, frozenset[tuple[str, str]]]]
) -> None:
    """What Powertools writes (EMF) with the template's environment: the Globals' namespace, one dimension,
    "service", the function's POWERTOOLS_SERVICE_NAME. A graph line with any other dimension set shows nothing."""
    namespace = Resolver(cfn)(props(cfn["Resources"], "ValidateFunction")["Environment"]["Variables"])[
        "POWERTOOLS_METRICS_NAMESPACE"
    ]
    assert namespace == "ImagePipeline"
    assert {ns for ns, _, _ in emitted} == {namespace}
    assert {tuple(name for name, _ in dims) for _, _, dims in emitted} == {("service",)}
    assert {name for _, name, _ in emitted} == metrics_in_code()
    assert {
        "ImagesProcessed",
        "UploadsFailed",
        "UploadsRejected",
        "UploadsSuperseded",
        "UploadsDeleted",
        "BytesOut",
    } <= metrics_in_code()
    assert ("ImagePipeline", "UploadsSuperseded", frozenset({("service", "store")})) in emitted


BREAKAGES = {
    "an upload API function left out": ("${UploadsDeleteFunction}", "${UploadsReadFunction}", "UploadsDeleteFunction"),
    "a custom metric left out": ('"BytesOut"', '"BytesIn"', "BytesOut"),
    "a metric under another dimension": ('"service", "notify"', '"service", "notifier"', "ImagesProcessed"),
    "a function named, not referenced": ("${ValidateFunction}", "ValidateFunction", "ValidateFunction"),
    "an execution metric left out": ('"ExecutionsTimedOut"', '"ExecutionsAborted"', "ExecutionsTimedOut"),
    "a percentile left out": ('"stat": "p99"', '"stat": "p90"', "p99"),
}


@pytest.mark.parametrize(("old", "new", "reported"), BREAKAGES.values(), ids=BREAKAGES.keys())
def test_the_dashboard_check_reports_what_is_missing(
    old: str, new: str, reported: str, cfn: dict[str, Any], emitted: set[tuple[str, str, frozenset[tuple[str, str]]]]
) -> None:
    """Negative control: the check above on a copy of the dashboard with one thing taken out."""
    broken = copy.deepcopy(cfn)
    body = broken["Resources"][DASHBOARD]["Properties"]["DashboardBody"]
    assert old in body["Fn::Sub"]
    body["Fn::Sub"] = body["Fn::Sub"].replace(old, new)
    gaps = dashboard_gaps(broken, emitted)
    assert any(reported in gap for gap in gaps), gaps


def test_the_dashboard_lays_its_widgets_on_the_grid_in_the_stacks_region(cfn: dict[str, Any]) -> None:
    placed: set[tuple[int, int]] = set()
    for widget in widgets(cfn):
        assert widget["x"] >= 0, widget["properties"].get("title")
        assert widget["x"] + widget["width"] <= 24, widget["properties"].get("title")
        cells = {
            (x, y)
            for x in range(widget["x"], widget["x"] + widget["width"])
            for y in range(widget["y"], widget["y"] + widget["height"])
        }
        assert not cells & placed, f"{widget['properties'].get('title')} overlaps another widget"
        placed |= cells
        if widget["type"] == "metric":
            assert widget["properties"]["region"] == REGION
            assert widget["properties"]["title"]


def test_the_dashboard_lists_every_alarm(cfn: dict[str, Any]) -> None:
    resolve = Resolver(cfn)
    [widget] = [w for w in widgets(cfn) if w["type"] == "alarm"]
    alarms = of_type(cfn["Resources"], "AWS::CloudWatch::Alarm")
    assert set(alarms) <= references(props(cfn["Resources"], DASHBOARD)["DashboardBody"])
    arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:"  # an alarm's ARN: its name (Ref) after this
    assert sorted(widget["properties"]["alarms"]) == sorted(arn + resolve({"Ref": a}) for a in alarms)


def test_outputs_link_the_dashboard_and_the_execution_log(cfn: dict[str, Any]) -> None:
    resolve = Resolver(cfn)
    url = cfn["Outputs"]["DashboardUrl"]["Value"]
    assert references(url) == {DASHBOARD}
    assert resolve(url) == (
        f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#dashboards/dashboard/{DASHBOARD}"
    )
    assert cfn["Outputs"]["StateMachineLogGroupName"]["Value"] == {"Ref": LOG_GROUP}
    assert props(cfn["Resources"], DASHBOARD)["DashboardName"] == {"Fn::Sub": "${AWS::StackName}-${AWS::Region}"}
