"""template.yaml, packaged and transformed offline by the real aws-sam-translator, checked resource by resource.

Parameters of the template (each must exist, be used by a resource, and be accepted by the code):

- RenditionWidths, OutputFormats, JpegQuality, WebpQuality, AvifQuality
- WatermarkText, WatermarkLogo, WatermarkPosition, WatermarkOpacity, WatermarkMinWidth
- MaxUploadBytes, MaxPixels, UploadPrefix
- WorkflowType, LogRetentionDays
- ReconcileSchedule, ReconcileMinAgeSeconds, BackfillConcurrency (recovery: tests/template/test_recovery.py)
- ApiAuth, JwtIssuer, JwtAudience, CorsOrigins, UploadUrlExpirySeconds, ApiThrottleRate, ApiThrottleBurst
  (the upload API: tests/template/test_upload_api.py)
- StateMachineLogLevel, StateMachineLogExecutionData, Tracing, NotificationEmail, NotifySuccesses
  (observability: tests/template/test_observability.py)

aws-sam-translator leaves ``!Ref Parameter`` in place; where a test needs the value CloudFormation
would deploy, ``helpers.Resolver`` resolves it from the parameter default or an override.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from localcloud import sam
from pipeline import settings
from pipeline.errors import ConfigurationError
from tests.template.conftest import ARTIFACTS_BUCKET
from tests.template.helpers import (
    PLACEHOLDER,
    ROOT,
    STATE_FUNCTIONS,
    MemoryS3,
    Resolver,
    constraint_violations,
    env_names_in_source,
    listify,
    of_type,
    props,
    read_by,
    references,
    settings_classes,
)
from tests.template.test_asl import PHOTO, Pipeline, walk

FUNCTIONS = (
    "ValidateFunction",
    "ResizeFunction",
    "WatermarkFunction",
    "StoreFunction",
    "NotifyFunction",
    "CleanupFunction",
    "RemoveFunction",
)
BUCKETS = ("SourceBucket", "DestinationBucket", "StagingBucket", "AccessLogBucket")
#: The buckets whose server access logs go to AccessLogBucket.
LOGGED_BUCKETS = ("SourceBucket", "DestinationBucket", "StagingBucket")
STATE_MACHINE = "ImagePipeline"
#: The pipeline's EventBridge rules (logical ids aws-sam-translator gives them) -> the S3 event each matches.
RULES = {"ImagePipelineObjectCreated": "Object Created", "ImagePipelineObjectDeleted": "Object Deleted"}
#: Recovery (the reconciler and the backfill), checked in tests/template/test_recovery.py: here they only
#: count towards the totals and the IAM rules, apart from the pipeline's own steps and state machine.
RECOVERY_FUNCTIONS = ("ReconcileFunction",)
#: The upload API's functions, checked in tests/template/test_upload_api.py.
API_FUNCTIONS = ("UploadsCreateFunction", "UploadsReadFunction", "UploadsDeleteFunction")
#: Every function: the environment contract (what its settings read, what the template sets) covers them all.
ALL_FUNCTIONS = (*FUNCTIONS, *RECOVERY_FUNCTIONS, *API_FUNCTIONS)
RECOVERY_STATE_MACHINES = ("BackfillStateMachine",)
PARAMETERS = (
    "RenditionWidths",
    "OutputFormats",
    "JpegQuality",
    "WebpQuality",
    "AvifQuality",
    "WatermarkText",
    "WatermarkLogo",
    "WatermarkPosition",
    "WatermarkOpacity",
    "WatermarkMinWidth",
    "MaxUploadBytes",
    "MaxPixels",
    "UploadPrefix",
    "WorkflowType",
    "LogRetentionDays",
    "ReconcileSchedule",
    "ReconcileMinAgeSeconds",
    "BackfillConcurrency",
    "ApiAuth",
    "JwtIssuer",
    "JwtAudience",
    "CorsOrigins",
    "UploadUrlExpirySeconds",
    "ApiThrottleRate",
    "ApiThrottleBurst",
    "StateMachineLogLevel",
    "StateMachineLogExecutionData",
    "Tracing",
    "NotificationEmail",
    "NotifySuccesses",
)

#: Variables the settings code reads that the template deliberately leaves to the code's default.
CODE_DEFAULT_ONLY = {
    "CACHE_CONTROL": "Cache-Control of stored renditions: the code's default (public, one year, immutable) "
    "is right for content-addressed keys and is not a deployment knob.",
    "IDEMPOTENCY_SECONDS": "How long a notification is remembered (default seven days): longer than any "
    "redelivery window of EventBridge, so not a deployment knob.",
}

#: S3 actions on a bucket (resource: the bucket ARN); every other s3: action acts on objects (bucket ARN + /key).
S3_BUCKET_ACTIONS = frozenset({"s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketLocation"})
_OBJECT_ARN = re.compile(
    r"^(?:\$\{(?P<attr>\w+)\.Arn\}|arn:(?:aws|\$\{AWS::Partition\}):s3:::\$\{(?P<ref>\w+)\})/(?P<key>.+)$"
)


# ---------------------------------------------------------------- helpers


def getatt(value: Any) -> tuple[str, str] | None:
    """(logical id, attribute) of a Fn::GetAtt in either form, else None."""
    if isinstance(value, Mapping) and set(value) == {"Fn::GetAtt"}:
        att = value["Fn::GetAtt"]
        name, attribute = att.split(".", 1) if isinstance(att, str) else att
        return str(name), str(attribute)
    return None


def single(resources: Mapping[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    found = of_type(resources, kind)
    assert len(found) == 1, f"expected one {kind}, found {sorted(found)}"
    name, resource = next(iter(found.items()))
    return name, dict(resource.get("Properties", {}))


def role_statements(resources: Mapping[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(role, policy name, statement) for every inline policy statement of every AWS::IAM::Role."""
    for role_name, role in of_type(resources, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in listify(policy["PolicyDocument"]["Statement"]):
                yield role_name, policy["PolicyName"], statement


#: Resource types that carry identity policies: (policy list property, or None for a single PolicyDocument).
IDENTITY_POLICY_TYPES = {
    "AWS::IAM::Role": "Policies",
    "AWS::IAM::User": "Policies",
    "AWS::IAM::Group": "Policies",
    "AWS::IAM::Policy": None,
    "AWS::IAM::ManagedPolicy": None,
    "AWS::IAM::RolePolicy": None,
    "AWS::IAM::UserPolicy": None,
    "AWS::IAM::GroupPolicy": None,
}


def granted_statements(resources: Mapping[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(resource, policy name, statement) for every statement of every identity policy the template grants:

    inline policies of roles (those written in template.yaml and those aws-sam-translator generates),
    users and groups, and standalone AWS::IAM::Policy / ManagedPolicy / RolePolicy / UserPolicy / GroupPolicy.
    """
    for name, resource in resources.items():
        kind = resource.get("Type")
        if kind not in IDENTITY_POLICY_TYPES:
            continue
        properties = resource.get("Properties", {})
        listed = IDENTITY_POLICY_TYPES[kind]
        policies = properties.get(listed, []) if listed else [properties]
        for policy in policies:
            label = str(policy.get("PolicyName", policy.get("ManagedPolicyName", kind)))
            for statement in listify(policy["PolicyDocument"]["Statement"]):
                yield name, label, statement


def managed_policy_violations(resources: Mapping[str, Any]) -> list[str]:
    """Managed policies attached to roles, users or groups that are not this template's own.

    An AWS managed policy (arn:aws:iam::aws:policy/...) cannot be checked statement by statement here,
    and the usual ones grant on "*" (AWSLambdaBasicExecutionRole: logs:CreateLogGroup, CreateLogStream
    and PutLogEvents on every log group of the account). An AWS::IAM::ManagedPolicy of the template is
    fine: granted_statements checks its statements.
    """
    own = set(of_type(resources, "AWS::IAM::ManagedPolicy"))
    problems = []
    for name, resource in resources.items():
        if resource.get("Type") not in ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group"):
            continue
        for arn in resource.get("Properties", {}).get("ManagedPolicyArns", []):
            if not (isinstance(arn, Mapping) and set(arn) == {"Ref"} and arn["Ref"] in own):
                problems.append(f"{name} attaches the managed policy {json.dumps(arn)}")
    return problems


def role_of(resources: Mapping[str, Any], function: str) -> str:
    target = getatt(props(resources, function)["Role"])
    assert target is not None
    assert target[1] == "Arn"
    return target[0]


def s3_object_target(resource: Any) -> tuple[str, str] | None:
    """(bucket logical id, key pattern) of an S3 object ARN written as a Fn::Sub on a bucket."""
    if not (isinstance(resource, Mapping) and set(resource) == {"Fn::Sub"} and isinstance(resource["Fn::Sub"], str)):
        return None
    match = _OBJECT_ARN.match(resource["Fn::Sub"])
    if not match:
        return None
    return match.group("attr") or match.group("ref"), match.group("key")


_SFN_ARN = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:"
#: The EventBridge rule Step Functions manages for .sync integrations (AWS names it; every account has one).
SYNC_RULE_ARN = (
    "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:"
    "rule/StepFunctionsGetEventsForStepFunctionsExecutionRule"
)
SYNC_RULE_ACTIONS = frozenset({"events:PutTargets", "events:PutRule", "events:DescribeRule"})


def states_or_events_target(resource: Any, actions: list[Any], resources: Mapping[str, Any]) -> bool:
    """True for the few ARNs a Fn::Sub must spell out, when they name exactly this template's things:

    * the executions of one of its state machines (``execution:${Machine.Name}:*``), whose ARNs
      exist only at run time;
    * a state machine with a fixed ``${AWS::StackName}-...`` name, and its Distributed Map child
      executions (``execution:<name>/*``): a machine's own role cannot Ref the machine (a cycle);
    * the managed rule a .sync integration needs, for the three actions AWS documents.
    """
    if not (isinstance(resource, Mapping) and set(resource) == {"Fn::Sub"} and isinstance(resource["Fn::Sub"], str)):
        return False
    text: str = resource["Fn::Sub"]
    machines = of_type(resources, "AWS::StepFunctions::StateMachine")
    fixed = {
        name["Fn::Sub"]
        for machine in machines.values()
        if isinstance(name := machine["Properties"].get("StateMachineName"), Mapping) and set(name) == {"Fn::Sub"}
    }
    allowed = {f"{_SFN_ARN}execution:${{{machine}.Name}}:*" for machine in machines}
    allowed |= {f"{_SFN_ARN}stateMachine:{name}" for name in fixed if name.startswith("${AWS::StackName}-")}
    allowed |= {f"{_SFN_ARN}execution:{name}/*" for name in fixed if name.startswith("${AWS::StackName}-")}
    if text in allowed:
        return all(isinstance(a, str) and a.startswith("states:") for a in actions)
    return text == SYNC_RULE_ARN and set(actions) <= SYNC_RULE_ACTIONS


#: What Step Functions needs to deliver a state machine's execution log to CloudWatch Logs (vended logs: a log
#: delivery, and the log group's resource policy). These actions take no resource ARN: AWS documents them on "*",
#: https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html (IAM policies for logging to CloudWatch Logs).
LOG_DELIVERY_ACTIONS = frozenset(
    {
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
    }
)
#: Sending trace segments to X-Ray, which has no resource type ("*" only): what Lambda's active tracing needs
#: (https://docs.aws.amazon.com/lambda/latest/dg/services-xray.html) ...
XRAY_WRITE_ACTIONS = frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords"})
#: ... and a traced state machine also reads the sampling rules
#: (https://docs.aws.amazon.com/step-functions/latest/dg/xray-iam.html).
XRAY_STATE_MACHINE_ACTIONS = XRAY_WRITE_ACTIONS | {"xray:GetSamplingRules", "xray:GetSamplingTargets"}
#: The customer managed policy every function's role attaches for active tracing (test_observability.py).
TRACING_POLICY = "FunctionTracingPolicy"


def state_machine_role(resources: Mapping[str, Any]) -> str | None:
    """The logical id of the pipeline state machine's role (aws-sam-translator generates it)."""
    role = getatt(resources.get(STATE_MACHINE, {}).get("Properties", {}).get("RoleArn"))
    return role[0] if role else None


def star_grants(holder: str | None, resources: Mapping[str, Any]) -> list[frozenset[str]]:
    """The groups of actions a statement of ``holder`` may grant on "*": the exceptions AWS documents, each
    only where it is needed. A statement on "*" must name actions of one group only."""
    groups: list[frozenset[str]] = []
    if holder is None:
        return groups
    if holder == TRACING_POLICY and resources.get(holder, {}).get("Type") == "AWS::IAM::ManagedPolicy":
        groups.append(XRAY_WRITE_ACTIONS)
    if holder == state_machine_role(resources):
        groups += [LOG_DELIVERY_ACTIONS, XRAY_STATE_MACHINE_ACTIONS]
    return groups


def statement_violations(
    statement: Mapping[str, Any], resources: Mapping[str, Any], holder: str | None = None
) -> list[str]:
    """Why an IAM statement is broader than "these actions on these resources of this template".

    ``holder`` is the role or policy that grants it: on "*" only the groups ``star_grants`` allows it.
    """
    if statement.get("Effect") == "Deny":
        return []
    problems = [f"uses {key}" for key in ("NotAction", "NotResource", "NotPrincipal") if key in statement]
    actions = listify(statement.get("Action", []))
    resource_list = listify(statement.get("Resource", []))
    documented = star_grants(holder, resources)
    if (
        resource_list == ["*"]
        and all(isinstance(a, str) for a in actions)
        and any(set(actions) <= g for g in documented)
    ):
        return problems if actions else [*problems, "names no Action"]
    if not actions:
        problems.append("names no Action")
    if not resource_list:
        problems.append("names no Resource")
    for action in actions:
        if not isinstance(action, str) or ":" not in action or "*" in action:
            problems.append(f"action {action!r} is not one specific action")
    buckets = set(of_type(resources, "AWS::S3::Bucket"))
    s3_object_actions_only = bool(actions) and all(
        isinstance(a, str) and a.startswith("s3:") and a not in S3_BUCKET_ACTIONS for a in actions
    )
    for resource in resource_list:
        text = resource if isinstance(resource, str) else json.dumps(resource)
        if states_or_events_target(resource, actions, resources):
            continue
        if resource == "*" or ":*" in text:
            problems.append(f"resource {text} is a wildcard")
            continue
        # A wildcard is allowed only in the key of an object ARN of one of the template's buckets
        # (<bucket arn>/<prefix>*); executions and the .sync rule were let through above.
        object_target = s3_object_target(resource)
        if ("*" in text or "?" in text) and not (
            s3_object_actions_only and object_target and object_target[0] in buckets
        ):
            problems.append(f"resource {text} has a wildcard outside an object key of a bucket of this template")
            continue
        if not references(resource) & set(resources):
            problems.append(f"resource {text} names no resource of this template")
        for action in (a for a in actions if isinstance(a, str) and a.startswith("s3:")):
            if action in S3_BUCKET_ACTIONS:
                target = getatt(resource)
                if not (target and target[0] in buckets and target[1] == "Arn"):
                    problems.append(f"{action} on {text}: not the ARN of a bucket of this template")
            else:
                object_target = s3_object_target(resource)
                if not (object_target and object_target[0] in buckets):
                    problems.append(f"{action} on {text}: not objects under a bucket of this template")
    return problems


def function_env(cfn: Mapping[str, Any], function: str, parameters: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a function gets once deployed (Globals merged), resolved to strings."""
    resolve = Resolver(cfn, parameters)
    variables = props(cfn["Resources"], function)["Environment"]["Variables"]
    return {name: str(resolve(value)) for name, value in variables.items()}


def code_errors(cfn: Mapping[str, Any], function_dirs: Mapping[str, Any], parameters: Mapping[str, str]) -> list[str]:
    """ConfigurationErrors of every function's settings with the given parameter values."""
    errors: list[str] = []
    for function in FUNCTIONS:
        try:
            read_by(settings_classes(function_dirs[function] / "app.py"), function_env(cfn, function, parameters))
        except ConfigurationError as exc:
            errors.append(f"{function}: {exc}")
    return errors


# ---------------------------------------------------------------- transform and resources


def test_transform_leaves_plain_cloudformation(cfn: dict[str, Any]) -> None:
    assert "Transform" not in cfn
    serverless = sorted(n for n, r in cfn["Resources"].items() if r["Type"].startswith("AWS::Serverless::"))
    assert serverless == []


EXPECTED_COUNTS = {
    "AWS::S3::Bucket": 4,  # source, destination, staging, their access logs
    "AWS::S3::BucketPolicy": 4,
    "AWS::SNS::Topic": 1,
    "AWS::SNS::TopicPolicy": 1,
    "AWS::SNS::Subscription": 1,  # the NotificationEmail's, only when it is set (Condition)
    "AWS::KMS::Key": 1,
    "AWS::SQS::Queue": 1,
    "AWS::SQS::QueuePolicy": 1,
    "AWS::DynamoDB::Table": 2,  # idempotency records of Notify and Remove; the uploads' status records
    "AWS::Lambda::Function": 11,  # seven steps, the reconciler, the upload API's three
    "AWS::Lambda::LayerVersion": 1,
    "AWS::Logs::LogGroup": 13,  # one per function, the API's access log, the state machine's execution log
    "AWS::ApiGatewayV2::Api": 1,
    "AWS::ApiGatewayV2::Stage": 1,
    "AWS::Lambda::Permission": 4,  # API Gateway may invoke each route's function
    "AWS::StepFunctions::StateMachine": 2,  # the pipeline, the backfill
    "AWS::Scheduler::Schedule": 1,  # the reconciler's
    "AWS::Events::Rule": 2,  # Object Created, Object Deleted
    "AWS::CloudWatch::Alarm": 3,
    "AWS::CloudWatch::Dashboard": 1,
    "AWS::IAM::ManagedPolicy": 1,  # FunctionTracingPolicy: X-Ray writes, attached to every function's role
    # seven functions, the state machine, the two rules; the reconciler, its schedule, the backfill; the API's three
    "AWS::IAM::Role": 16,
}


def test_expected_resources_exist_by_type(resources: dict[str, Any]) -> None:
    counts = Counter(r["Type"] for r in resources.values())
    assert {kind: counts.get(kind, 0) for kind in EXPECTED_COUNTS} == EXPECTED_COUNTS
    assert set(of_type(resources, "AWS::S3::Bucket")) == set(BUCKETS)
    assert set(of_type(resources, "AWS::Lambda::Function")) == set(ALL_FUNCTIONS)
    assert set(of_type(resources, "AWS::StepFunctions::StateMachine")) == {STATE_MACHINE, *RECOVERY_STATE_MACHINES}
    assert set(of_type(resources, "AWS::SNS::Topic")) == {"Topic"}
    assert set(of_type(resources, "AWS::KMS::Key")) == {"TopicKey"}
    assert set(of_type(resources, "AWS::SQS::Queue")) == {"DeadLetterQueue"}
    assert set(of_type(resources, "AWS::Events::Rule")) == set(RULES)


def test_packaging_points_every_code_uri_at_an_uploaded_zip(
    template: dict[str, Any], packaged: dict[str, Any], artifacts: list[sam.Artifact]
) -> None:
    by_id = {a.logical_id: a for a in artifacts}
    assert set(by_id) == {*ALL_FUNCTIONS, "SharedLayer"}
    for name in FUNCTIONS:
        assert packaged["Resources"][name]["Properties"]["CodeUri"] == f"s3://{ARTIFACTS_BUCKET}/{by_id[name].key}"
    assert packaged["Resources"]["SharedLayer"]["Properties"]["ContentUri"] == (
        f"s3://{ARTIFACTS_BUCKET}/{by_id['SharedLayer'].key}"
    )
    # The loaded template itself is untouched (package works on a copy).
    assert template["Resources"]["ValidateFunction"]["Properties"]["CodeUri"] == "functions/validate/"


def test_definition_is_inlined_by_packaging(
    template: dict[str, Any], packaged: dict[str, Any], cfn: dict[str, Any], asl: dict[str, Any]
) -> None:
    original = template["Resources"][STATE_MACHINE]["Properties"]
    assert original["DefinitionUri"] == "statemachines/image_pipeline.asl.json"
    inlined = packaged["Resources"][STATE_MACHINE]["Properties"]
    assert "DefinitionUri" not in inlined
    assert inlined["Definition"] == asl
    definition = props(cfn["Resources"], STATE_MACHINE)["DefinitionString"]
    if isinstance(definition, Mapping):  # aws-sam-translator emits {"Fn::Join": ["\n", [lines...]]}
        separator, lines = definition["Fn::Join"]
        assert all(isinstance(line, str) for line in lines), "the definition should need no intrinsic function"
        definition = separator.join(lines)
    assert json.loads(definition) == asl


# ---------------------------------------------------------------- event rule -> state machine


def test_source_bucket_sends_events_to_eventbridge(resources: dict[str, Any]) -> None:
    notification = props(resources, "SourceBucket")["NotificationConfiguration"]
    assert notification["EventBridgeConfiguration"]["EventBridgeEnabled"] is True


@pytest.mark.parametrize(("rule_name", "detail_type"), RULES.items())
def test_rule_matches_its_s3_event_under_the_upload_prefix(
    rule_name: str, detail_type: str, resources: dict[str, Any]
) -> None:
    rule = props(resources, rule_name)
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.s3"]
    assert pattern["detail-type"] == [detail_type]
    assert pattern["detail"]["bucket"]["name"] == [{"Ref": "SourceBucket"}]
    assert pattern["detail"]["object"]["key"] == [{"prefix": {"Ref": "UploadPrefix"}}]
    assert set(pattern) == {"source", "detail-type", "detail"}
    assert rule.get("State", "ENABLED") == "ENABLED"


def test_rules_watch_the_same_keys_and_deliver_alike(resources: dict[str, Any]) -> None:
    """Uploads and deletions start the same workflow: same bucket, prefix, target, retries and dead letters."""
    properties = {name: props(resources, name) for name in RULES}
    created, deleted = (copy.deepcopy(properties[name]) for name in RULES)
    for rule in (created, deleted):
        [target] = rule["Targets"]
        for generated in ("Id", "RoleArn"):  # named after each rule by aws-sam-translator
            del target[generated]
    assert created["Targets"] == deleted["Targets"]
    assert created["EventPattern"]["source"] == deleted["EventPattern"]["source"]
    for field in ("bucket", "object"):
        assert created["EventPattern"]["detail"][field] == deleted["EventPattern"]["detail"][field], field


@pytest.mark.parametrize("rule_name", RULES)
def test_rule_targets_the_state_machine_with_retries_and_a_dead_letter_queue(
    rule_name: str, resources: dict[str, Any]
) -> None:
    rule = props(resources, rule_name)
    [target] = rule["Targets"]
    assert target["Arn"] == {"Ref": STATE_MACHINE}
    assert not {"Input", "InputPath", "InputTransformer"} & set(target), "the execution input is the S3 event as sent"
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] > 0
    assert getatt(target["DeadLetterConfig"]["Arn"]) == ("DeadLetterQueue", "Arn")
    role = getatt(target["RoleArn"])
    assert role is not None
    granted = [
        (statement["Action"], statement["Resource"])
        for name, _, statement in role_statements(resources)
        if name == role[0]
    ]
    assert granted == [("states:StartExecution", {"Ref": STATE_MACHINE})]


def test_dead_letter_queue_accepts_messages_from_both_rules(resources: dict[str, Any]) -> None:
    _, policy = single(resources, "AWS::SQS::QueuePolicy")
    assert policy["Queues"] == [{"Ref": "DeadLetterQueue"}]
    [statement] = listify(policy["PolicyDocument"]["Statement"])
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert getatt(statement["Resource"]) == ("DeadLetterQueue", "Arn")
    # The rules' logical ids are generated by aws-sam-translator: the condition must name the real ones, all of them.
    sources = listify(statement["Condition"]["ArnEquals"]["aws:SourceArn"])
    assert len(sources) == len(RULES)
    assert {getatt(s) for s in sources} == {(rule, "Arn") for rule in of_type(resources, "AWS::Events::Rule")}
    dead_lettered = {
        name
        for name, rule in of_type(resources, "AWS::Events::Rule").items()
        for target in rule["Properties"]["Targets"]
        if getatt(target.get("DeadLetterConfig", {}).get("Arn")) == ("DeadLetterQueue", "Arn")
    }
    assert dead_lettered == set(RULES)


def pattern_matches(pattern: Any, event: Any) -> bool:
    """EventBridge's matching, for the pattern forms the template uses: nested objects, values, prefixes."""
    if isinstance(pattern, Mapping):
        return isinstance(event, Mapping) and all(
            key in event and pattern_matches(value, event[key]) for key, value in pattern.items()
        )
    assert isinstance(pattern, list), pattern
    return any(
        (isinstance(option, Mapping) and isinstance(event, str) and event.startswith(option["prefix"]))
        if isinstance(option, Mapping)
        else event == option
        for option in pattern
    )


def s3_notification(bucket: str, key: str, detail_type: str, **detail: str) -> dict[str, Any]:
    """An event S3 sends to EventBridge (only the fields a pattern may look at)."""
    return {
        "version": "0",
        "source": "aws.s3",
        "detail-type": detail_type,
        "detail": {"version": "0", "bucket": {"name": bucket}, "object": {"key": key, "version-id": "v2"}, **detail},
    }


def rules_matching(cfn: Mapping[str, Any], event: Mapping[str, Any]) -> set[str]:
    resolve = Resolver(cfn)
    return {
        name
        for name, rule in of_type(cfn["Resources"], "AWS::Events::Rule").items()
        if pattern_matches(resolve(rule["Properties"]["EventPattern"]), event)
    }


def test_rules_start_the_pipeline_for_uploads_and_deletions_under_the_prefix(cfn: dict[str, Any]) -> None:
    resolve = Resolver(cfn)
    bucket, prefix = resolve({"Ref": "SourceBucket"}), resolve({"Ref": "UploadPrefix"})
    created, deleted = "ImagePipelineObjectCreated", "ImagePipelineObjectDeleted"
    cases = [
        (s3_notification(bucket, f"{prefix}a.jpg", "Object Created", reason="PutObject"), {created}),
        (s3_notification(bucket, f"{prefix}a/b.jpg", "Object Created", reason="CompleteMultipartUpload"), {created}),
        (
            s3_notification(
                bucket,
                f"{prefix}a.jpg",
                "Object Deleted",
                reason="DeleteObject",
                **{"deletion-type": "Delete Marker Created"},
            ),
            {deleted},
        ),
        (
            s3_notification(
                bucket,
                f"{prefix}a.jpg",
                "Object Deleted",
                reason="DeleteObject",
                **{"deletion-type": "Permanently Deleted"},
            ),
            {deleted},
        ),
        (s3_notification(bucket, "private/a.jpg", "Object Created", reason="PutObject"), set()),
        (s3_notification(bucket, "private/a.jpg", "Object Deleted", reason="DeleteObject"), set()),
        (s3_notification("another-bucket", f"{prefix}a.jpg", "Object Created", reason="PutObject"), set()),
        (s3_notification(bucket, f"{prefix}a.jpg", "Object Restore Completed"), set()),
        ({**s3_notification(bucket, f"{prefix}a.jpg", "Object Created"), "source": "custom.s3"}, set()),
    ]
    assert [rules_matching(cfn, event) for event, _ in cases] == [expected for _, expected in cases]


def test_a_lifecycle_expiration_of_an_old_version_neither_renders_nor_announces_again(
    cfn: dict[str, Any], asl: dict[str, Any]
) -> None:
    """The source bucket's lifecycle rule deletes noncurrent versions after 30 days: S3 sends Object Deleted
    ("Lifecycle Expiration", "Permanently Deleted") for a key whose current version is stored and announced.

    Either no rule starts an execution for it, or the execution ends without running Resize again
    (nor Notify, whose once-per-revision record has expired by then: seven days, IDEMPOTENCY_SECONDS).
    """
    rules = props(cfn["Resources"], "SourceBucket")["LifecycleConfiguration"]["Rules"]
    assert any(r["Status"] == "Enabled" and "NoncurrentVersionExpiration" in r for r in rules), "the premise"
    resolve = Resolver(cfn)
    bucket, key = resolve({"Ref": "SourceBucket"}), resolve({"Ref": "UploadPrefix"}) + "photo.jpg"
    s3 = MemoryS3(bucket, {key: PHOTO})
    expired = s3.put(key, PHOTO + b"\0")  # the version the lifecycle rule expires, once it is noncurrent
    s3.put(key, PHOTO + b"\0\0")  # the current version, processed and announced long ago
    event = s3_notification(
        bucket, key, "Object Deleted", reason="Lifecycle Expiration", **{"deletion-type": "Permanently Deleted"}
    )
    event["detail"]["object"]["version-id"] = expired
    if not rules_matching(cfn, event):
        return
    run = walk(asl, event, Pipeline(s3))
    assert "Resize" not in run.visited, f"an expired noncurrent version runs the pipeline again: {run.visited}"
    assert "Notify" not in run.visited


# ---------------------------------------------------------------- definition substitutions


def test_definition_substitutions_cover_every_placeholder_and_nothing_else(
    template: dict[str, Any], cfn: dict[str, Any], asl_text: str
) -> None:
    placeholders = set(PLACEHOLDER.findall(asl_text))
    assert placeholders, "the ASL should take its ARNs from DefinitionSubstitutions"
    for where, substitutions in (
        ("template.yaml", template["Resources"][STATE_MACHINE]["Properties"]["DefinitionSubstitutions"]),
        ("transformed", props(cfn["Resources"], STATE_MACHINE)["DefinitionSubstitutions"]),
    ):
        missing = placeholders - set(substitutions)
        extra = set(substitutions) - placeholders
        assert not missing, f"{where}: no substitution for {sorted(missing)}"
        assert not extra, f"{where}: substitutions the definition never uses: {sorted(extra)}"


def test_substitutions_point_each_state_at_its_own_function(cfn: dict[str, Any], asl: dict[str, Any]) -> None:
    substitutions = props(cfn["Resources"], STATE_MACHINE)["DefinitionSubstitutions"]
    invoked = {}
    for name, state in asl["States"].items():
        if state.get("Resource") != "arn:aws:states:::lambda:invoke":
            continue
        match = re.fullmatch(r"\$\{(\w+)\}", state["Parameters"]["FunctionName"])
        assert match, f"{name}: FunctionName should be a substitution"
        function = match.group(1).removesuffix("Arn")
        assert getatt(substitutions[match.group(1)]) == (function, "Arn"), name
        invoked[name] = function
    assert invoked == STATE_FUNCTIONS
    assert set(invoked.values()) == set(FUNCTIONS), "each function is one state's, and every one is invoked"
    topics = {s["Parameters"]["TopicArn"] for s in asl["States"].values() if "TopicArn" in s.get("Parameters", {})}
    assert topics == {"${TopicArn}"}
    assert substitutions["TopicArn"] == {"Ref": "Topic"}


def test_state_machine_role_grants_what_the_definition_uses(resources: dict[str, Any]) -> None:
    role = getatt(props(resources, STATE_MACHINE)["RoleArn"])
    assert role is not None
    granted: dict[str, set[str]] = {}
    for name, _, statement in role_statements(resources):
        if name == role[0]:
            for action in listify(statement["Action"]):
                granted.setdefault(action, set()).update(references(statement["Resource"]))
    # Logging and tracing (test_observability.py): on "*", which names no resource of the template.
    on_star = {action: granted.pop(action) for action in sorted(LOG_DELIVERY_ACTIONS | XRAY_STATE_MACHINE_ACTIONS)}
    assert on_star == {action: set() for action in on_star}
    assert granted == {
        "lambda:InvokeFunction": set(FUNCTIONS),
        "sns:Publish": {"Topic"},
        "kms:GenerateDataKey": {"TopicKey"},
        "kms:Decrypt": {"TopicKey"},
    }


# ---------------------------------------------------------------- IAM


def test_iam_statements_name_specific_actions_and_resources(resources: dict[str, Any]) -> None:
    """Every statement of every identity policy the transformed template grants (see granted_statements)."""
    statements = list(granted_statements(resources))
    granting = {name for name, _, _ in statements}
    assert set(of_type(resources, "AWS::IAM::Role")) <= granting, "a role with no inline policy"
    assert len(set(of_type(resources, "AWS::IAM::Role"))) == EXPECTED_COUNTS["AWS::IAM::Role"]
    violations = [
        f"{role}/{policy}: {problem}\n    {json.dumps(statement)}"
        for role, policy, statement in statements
        for problem in statement_violations(statement, resources, holder=role)
    ]
    assert not violations, "IAM statements broader than needed:\n" + "\n".join(violations)


BROAD_STATEMENTS = {
    "any action": {"Effect": "Allow", "Action": "*", "Resource": {"Fn::GetAtt": ["TopicKey", "Arn"]}},
    "service wildcard": {"Effect": "Allow", "Action": "s3:*", "Resource": {"Fn::Sub": "${SourceBucket.Arn}/*"}},
    "action prefix wildcard": {
        "Effect": "Allow",
        "Action": "s3:Get*",
        "Resource": {"Fn::Sub": "${SourceBucket.Arn}/*"},
    },
    "any resource": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
    "any bucket": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::*/*"},
    "literal bucket": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::somebody-else/*"},
    "bucket name prefix": {
        "Effect": "Allow",
        "Action": "s3:PutObject",
        "Resource": {"Fn::Sub": "${StagingBucket.Arn}*"},
    },
    "objects of a non-bucket": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": {"Fn::Sub": "${Topic}/*"}},
    "list on objects": {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": {"Fn::Sub": "${SourceBucket.Arn}/*"}},
    "any topic": {
        "Effect": "Allow",
        "Action": "sns:Publish",
        "Resource": {"Fn::Sub": "arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:*"},
    },
    "not action": {"Effect": "Allow", "NotAction": "s3:DeleteObject", "Resource": {"Fn::GetAtt": ["Topic", "Arn"]}},
    "any execution": {
        "Effect": "Allow",
        "Action": "states:DescribeExecution",
        "Resource": {"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:*"},
    },
    "executions of a machine not in the template": {
        "Effect": "Allow",
        "Action": "states:StopExecution",
        "Resource": {"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:other:*"},
    },
    "any events rule": {
        "Effect": "Allow",
        "Action": "events:PutRule",
        "Resource": {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/*"},
    },
    "other actions on the sync rule": {
        "Effect": "Allow",
        "Action": "events:DeleteRule",
        "Resource": {"Fn::Sub": SYNC_RULE_ARN},
    },
    "function name prefix": {
        "Effect": "Allow",
        "Action": "lambda:InvokeFunction",
        "Resource": {
            "Fn::Sub": [
                "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${name}*",
                {"name": {"Ref": "ValidateFunction"}},
            ]
        },
    },
    "any log group": {
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"},
    },
    "kms on an object key pattern": {
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": {"Fn::Sub": "${SourceBucket.Arn}/*"},
    },
    "s3 on executions": {
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": {
            "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${ImagePipeline.Name}:*"
        },
    },
}


@pytest.mark.parametrize("statement", BROAD_STATEMENTS.values(), ids=BROAD_STATEMENTS.keys())
def test_iam_check_flags_broad_statements(statement: dict[str, Any], resources: dict[str, Any]) -> None:
    """Negative control: the check above does fail on the statements it is meant to catch."""
    assert statement_violations(statement, resources)


def _holder(kind: str | None, resources: Mapping[str, Any]) -> str | None:
    """The logical id of the role or policy a probe statement is put in."""
    if kind == "state machine role":
        return state_machine_role(resources)
    if kind == "backfill role":
        role = getatt(props(resources, "BackfillStateMachine")["RoleArn"])
        return role[0] if role else None
    if kind == "function role":
        return role_of(resources, "ValidateFunction")
    return TRACING_POLICY if kind == "tracing policy" else None


def _on_star(*actions: str) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": list(actions), "Resource": "*"}


LOG_DELIVERY = sorted(LOG_DELIVERY_ACTIONS)
#: The grants on "*" AWS documents, each where the template needs it (docs/security.md).
DOCUMENTED_STAR_GRANTS = {
    "log delivery, state machine role": ("state machine role", _on_star(*LOG_DELIVERY)),
    "x-ray, state machine role": ("state machine role", _on_star(*sorted(XRAY_STATE_MACHINE_ACTIONS))),
    "x-ray writes, tracing policy": ("tracing policy", _on_star(*sorted(XRAY_WRITE_ACTIONS))),
}
BROADER_STAR_GRANTS = {
    "log delivery and PutLogEvents": ("state machine role", _on_star(*LOG_DELIVERY, "logs:PutLogEvents")),
    "every logs action": ("state machine role", _on_star("logs:*")),
    "every x-ray action": ("state machine role", _on_star("xray:*")),
    "reading traces": ("state machine role", _on_star("xray:GetTraceSummaries")),
    "log delivery and x-ray in one statement": (
        "state machine role",
        _on_star("logs:CreateLogDelivery", "xray:PutTraceSegments"),
    ),
    "log delivery on * and a log group": (
        "state machine role",
        {**_on_star(*LOG_DELIVERY), "Resource": ["*", {"Fn::GetAtt": ["ImagePipelineLogGroup", "Arn"]}]},
    ),
    "s3 on *, state machine role": ("state machine role", _on_star("s3:GetObject")),
    "log delivery, a function's role": ("function role", _on_star(*LOG_DELIVERY)),
    "x-ray writes, a function's own role": ("function role", _on_star(*sorted(XRAY_WRITE_ACTIONS))),
    "log delivery, the backfill's role": ("backfill role", _on_star(*LOG_DELIVERY)),
    "sampling rules, tracing policy": ("tracing policy", _on_star(*sorted(XRAY_STATE_MACHINE_ACTIONS))),
    "log delivery, tracing policy": ("tracing policy", _on_star(*LOG_DELIVERY)),
    "x-ray writes, no holder": (None, _on_star(*sorted(XRAY_WRITE_ACTIONS))),
}


@pytest.mark.parametrize(("holder", "statement"), DOCUMENTED_STAR_GRANTS.values(), ids=DOCUMENTED_STAR_GRANTS.keys())
def test_iam_check_lets_the_documented_grants_on_star_through(
    holder: str, statement: dict[str, Any], resources: dict[str, Any]
) -> None:
    granted_by = _holder(holder, resources)
    assert granted_by in resources
    assert statement_violations(statement, resources, holder=granted_by) == []


@pytest.mark.parametrize(("holder", "statement"), BROADER_STAR_GRANTS.values(), ids=BROADER_STAR_GRANTS.keys())
def test_iam_check_flags_grants_on_star_beyond_the_documented_ones(
    holder: str | None, statement: dict[str, Any], resources: dict[str, Any]
) -> None:
    """Negative control: the exceptions are those actions only, on "*" only, in their own role or policy only."""
    granted_by = _holder(holder, resources)
    assert holder is None or granted_by in resources
    assert statement_violations(statement, resources, holder=granted_by)


def test_no_managed_policy_is_attached(resources: dict[str, Any]) -> None:
    """No role carries an AWS managed policy, whose statements this test cannot scope.

    aws-sam-translator attaches AWSLambdaBasicExecutionRole (logs:CreateLogGroup, CreateLogStream and
    PutLogEvents on "*") to every role it generates for a function, whatever else is set, unless the
    function names its own Role. So each function has an explicit role in template.yaml: its own
    statements plus logs:CreateLogStream/PutLogEvents on its own log group (see the next test).
    """
    function_roles = {role_of(resources, f) for f in of_type(resources, "AWS::Lambda::Function")}
    assert len(function_roles) == len(of_type(resources, "AWS::Lambda::Function")), (
        "each function should have a role of its own"
    )
    assert managed_policy_violations(resources) == [], (
        "give each AWS::Serverless::Function an explicit Role (docs/security.md), or SAM attaches "
        "AWSLambdaBasicExecutionRole"
    )


def test_managed_policy_check_flags_aws_managed_policies(resources: dict[str, Any]) -> None:
    """Negative control: the role SAM would generate (AWSLambdaBasicExecutionRole attached) is reported."""
    broken = copy.deepcopy(dict(resources))
    role = role_of(broken, "ValidateFunction")
    broken[role]["Properties"]["ManagedPolicyArns"] = [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}
    ]
    assert managed_policy_violations(broken) == [
        f"{role} attaches the managed policy "
        '{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}'
    ]


def test_functions_write_logs_only_to_their_own_log_group(resources: dict[str, Any]) -> None:
    """The logs grant AWSLambdaBasicExecutionRole would give, narrowed to the group LoggingConfig names.

    Log groups are created by the template (with their retention), so no function may create one;
    Fn::GetAtt <LogGroup>.Arn is the group's ARN ending in ":*", which covers its log streams only.
    """
    for function in of_type(resources, "AWS::Lambda::Function"):
        properties = props(resources, function)
        assert "LoggingConfig" in properties, f"{function}: no LoggingConfig naming a log group of the template"
        group = properties["LoggingConfig"]["LogGroup"]
        assert set(group) == {"Ref"}, function
        role = role_of(resources, function)
        logs = {
            (action, json.dumps(resource))
            for name, _, statement in granted_statements(resources)
            if name == role and statement.get("Effect") == "Allow"
            for action in listify(statement["Action"])
            if action.startswith("logs:")
            for resource in listify(statement["Resource"])
        }
        target = json.dumps({"Fn::GetAtt": [group["Ref"], "Arn"]})
        assert logs == {("logs:CreateLogStream", target), ("logs:PutLogEvents", target)}, function


#: Reading a pinned source version (GetObject with its VersionId) needs s3:GetObjectVersion besides s3:GetObject;
#: a HEAD of the current version needs s3:GetObject, and s3:ListBucket for S3 to answer 404, not 403, once
#: the key is deleted. A missing manifest likewise needs s3:ListBucket on the destination (nothing lists it).
EXPECTED_S3_ACCESS = {
    "ValidateFunction": {
        ("s3:GetObject", "SourceBucket", "${UploadPrefix}*"),
        ("s3:GetObjectVersion", "SourceBucket", "${UploadPrefix}*"),
        ("s3:ListBucket", "SourceBucket", ""),
    },
    "ResizeFunction": {
        ("s3:GetObject", "SourceBucket", "${UploadPrefix}*"),
        ("s3:GetObjectVersion", "SourceBucket", "${UploadPrefix}*"),
        ("s3:PutObject", "StagingBucket", "staging/*"),
    },
    "WatermarkFunction": {
        ("s3:GetObject", "StagingBucket", "staging/*"),
        ("s3:PutObject", "StagingBucket", "staging/*"),
    },
    "StoreFunction": {
        ("s3:GetObject", "StagingBucket", "staging/*"),
        ("s3:DeleteObject", "StagingBucket", "staging/*"),
        ("s3:ListBucket", "StagingBucket", ""),
        ("s3:GetObject", "DestinationBucket", "*"),
        ("s3:PutObject", "DestinationBucket", "*"),
        ("s3:DeleteObject", "DestinationBucket", "*"),  # a replaced revision's renditions, a withdrawn commit
        ("s3:ListBucket", "DestinationBucket", ""),
        ("s3:GetObject", "SourceBucket", "${UploadPrefix}*"),  # HEAD: is the pinned version still current?
        ("s3:ListBucket", "SourceBucket", ""),
    },
    "NotifyFunction": set(),
    "CleanupFunction": {
        ("s3:DeleteObject", "StagingBucket", "staging/*"),
        ("s3:ListBucket", "StagingBucket", ""),
        ("s3:GetObject", "DestinationBucket", "*"),
        ("s3:DeleteObject", "DestinationBucket", "*"),
        ("s3:ListBucket", "DestinationBucket", ""),
        ("s3:GetObject", "SourceBucket", "${UploadPrefix}*"),
        ("s3:ListBucket", "SourceBucket", ""),
    },
    "RemoveFunction": {
        ("s3:GetObject", "DestinationBucket", "*"),
        ("s3:DeleteObject", "DestinationBucket", "*"),
        ("s3:ListBucket", "DestinationBucket", ""),
        ("s3:GetObject", "SourceBucket", "${UploadPrefix}*"),  # HEAD: uploaded again since the deletion?
        ("s3:ListBucket", "SourceBucket", ""),
    },
}


def s3_access(resources: Mapping[str, Any], role: str) -> set[tuple[str, str, str]]:
    access: set[tuple[str, str, str]] = set()
    for name, _, statement in role_statements(resources):
        if name != role or statement.get("Effect") != "Allow":
            continue
        for action in (a for a in listify(statement["Action"]) if a.startswith("s3:")):
            for resource in listify(statement["Resource"]):
                object_target = s3_object_target(resource)
                bucket_target = getatt(resource)
                if object_target:
                    access.add((action, *object_target))
                elif bucket_target:
                    access.add((action, bucket_target[0], ""))
                else:
                    access.add((action, json.dumps(resource), "?"))
    return access


@pytest.mark.parametrize("function", FUNCTIONS)
def test_s3_access_is_exactly_what_the_step_needs(function: str, resources: dict[str, Any]) -> None:
    assert s3_access(resources, role_of(resources, function)) == EXPECTED_S3_ACCESS[function]


IDEMPOTENCY_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
#: What a step's role grants besides S3 and its own logs: publishing to the encrypted topic, and the
#: idempotency records Powertools keeps (get, conditional put, update, delete of one item).
PUBLISHES_ONCE = {
    "sns:Publish": {("Topic", "")},
    "kms:GenerateDataKey": {("TopicKey", "Arn")},
    "kms:Decrypt": {("TopicKey", "Arn")},
    **{action: {("IdempotencyTable", "Arn")} for action in IDEMPOTENCY_ACTIONS},
}
#: The upload's status record, written conditionally by the steps that learn its status (pipeline.status).
RECORDS_STATUS = {"dynamodb:UpdateItem": {("StatusTable", "Arn")}}
REMOVES_AND_RECORDS = {
    **PUBLISHES_ONCE,
    "dynamodb:UpdateItem": PUBLISHES_ONCE["dynamodb:UpdateItem"] | RECORDS_STATUS["dynamodb:UpdateItem"],
}
EXPECTED_OTHER_GRANTS: dict[str, dict[str, set[tuple[str, str]]]] = {
    "ValidateFunction": RECORDS_STATUS,  # PROCESSING
    "ResizeFunction": {},
    "WatermarkFunction": {},
    "StoreFunction": RECORDS_STATUS,  # SUCCEEDED or SUPERSEDED
    "NotifyFunction": PUBLISHES_ONCE,
    "CleanupFunction": RECORDS_STATUS,  # FAILED; the failure message is published by the state machine
    "RemoveFunction": REMOVES_AND_RECORDS,  # DELETED
}


def other_grants(resources: Mapping[str, Any], role: str) -> dict[str, set[tuple[str, str]]]:
    """Action -> (logical id, attribute or "" for a Ref) it is granted on, for every action but s3: and logs:."""
    granted: dict[str, set[tuple[str, str]]] = {}
    for name, _, statement in role_statements(resources):
        if name != role or statement.get("Effect") != "Allow":
            continue
        assert "Condition" not in statement or any(a.startswith("s3:") for a in listify(statement["Action"]))
        for action in listify(statement["Action"]):
            if action.startswith(("s3:", "logs:")):
                continue
            for resource in listify(statement["Resource"]):
                target = getatt(resource) or (
                    (resource["Ref"], "") if isinstance(resource, Mapping) and set(resource) == {"Ref"} else None
                )
                granted.setdefault(action, set()).add(target or (json.dumps(resource), "?"))
    return granted


@pytest.mark.parametrize("function", FUNCTIONS)
def test_other_grants_are_exactly_what_the_step_calls(function: str, resources: dict[str, Any]) -> None:
    assert other_grants(resources, role_of(resources, function)) == EXPECTED_OTHER_GRANTS[function]


def test_remove_role_is_exactly_what_remove_needs(resources: dict[str, Any], function_dirs: dict[str, Any]) -> None:
    """RemoveFunction: the manifest and the renditions it lists, removed by exact key; a HEAD of the source
    (uploaded again since?); one DELETED message per deletion (the topic, its key, idempotency records)."""
    handler = (function_dirs["RemoveFunction"] / "app.py").read_text(encoding="utf-8")
    for used in ("once_per_revision(", "@ONCE", "Topic.create(", "S3Store.create()"):
        assert used in handler, used
    role = role_of(resources, "RemoveFunction")
    assert role == "RemoveFunctionRole"
    assert s3_access(resources, role) == {
        ("s3:GetObject", "DestinationBucket", "*"),
        ("s3:DeleteObject", "DestinationBucket", "*"),
        ("s3:ListBucket", "DestinationBucket", ""),
        ("s3:GetObject", "SourceBucket", "${UploadPrefix}*"),
        ("s3:ListBucket", "SourceBucket", ""),
    }
    assert not [access for access in s3_access(resources, role) if access[1] == "StagingBucket"], "no staging"
    assert other_grants(resources, role) == REMOVES_AND_RECORDS
    # Only the X-Ray writes every function's role attaches (test_observability.py).
    assert props(resources, role).get("ManagedPolicyArns", []) == [{"Ref": TRACING_POLICY}]
    # Its statements carry no condition: a prefix condition on ListBucket would turn a 404 into a 403.
    assert [s for name, _, s in role_statements(resources) if name == role and "Condition" in s] == []


def test_nothing_writes_to_the_source_bucket(resources: dict[str, Any]) -> None:
    """A write to the source bucket by the pipeline would be an upload of its own: a loop, or a lost original.
    Only the upload API's functions write there, for a user: a presigned POST (its upload), a delete."""
    writes = {
        (role, action, key)
        for role in of_type(resources, "AWS::IAM::Role")
        for action, bucket, key in s3_access(resources, role)
        if bucket == "SourceBucket" and action not in ("s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket")
    }
    assert writes == {
        ("UploadsCreateFunctionRole", "s3:PutObject", "${UploadPrefix}*"),
        ("UploadsDeleteFunctionRole", "s3:DeleteObject", "${UploadPrefix}*"),
    }
    state_machine_role = getatt(props(resources, STATE_MACHINE)["RoleArn"])
    assert state_machine_role is not None
    assert s3_access(resources, state_machine_role[0]) == set(), "the workflow itself never touches S3"


def test_list_permissions_are_scoped_to_the_prefixes(resources: dict[str, Any], template: dict[str, Any]) -> None:
    staging_prefix = template["Globals"]["Function"]["Environment"]["Variables"]["STAGING_PREFIX"]
    conditions: dict[tuple[str, str], Any] = {}
    for role, _, statement in role_statements(resources):
        if "s3:ListBucket" in listify(statement.get("Action")):
            assert listify(statement["Action"]) == ["s3:ListBucket"], "a condition on s3:prefix is for listing only"
            key = (role, statement["Resource"]["Fn::GetAtt"][0])
            assert key not in conditions, f"{key}: two ListBucket statements"
            conditions[key] = statement.get("Condition")
    # HeadObject and GetObject carry no s3:prefix, so a prefix condition here would turn "missing" (404)
    # back into "forbidden" (403): the ListBucket grants that only tell a missing key are unconditioned.
    tell_missing = {
        (function, bucket)
        for function in FUNCTIONS
        for action, bucket, key in EXPECTED_S3_ACCESS[function]
        if action == "s3:ListBucket" and bucket in ("SourceBucket", "DestinationBucket")
    }
    assert tell_missing == {
        ("ValidateFunction", "SourceBucket"),
        ("StoreFunction", "SourceBucket"),
        ("StoreFunction", "DestinationBucket"),
        ("CleanupFunction", "SourceBucket"),
        ("CleanupFunction", "DestinationBucket"),
        ("RemoveFunction", "SourceBucket"),
        ("RemoveFunction", "DestinationBucket"),
    }
    for function, bucket in tell_missing:
        assert conditions[(role_of(resources, function), bucket)] is None, (function, bucket)
    # Staging is listed (a run's own folder, to clear it): only under the staging prefix.
    for function in ("StoreFunction", "CleanupFunction"):
        assert conditions[(role_of(resources, function), "StagingBucket")] == {
            "StringLike": {"s3:prefix": f"{staging_prefix}*"}
        }, function


def test_no_step_lists_the_destination_or_the_source(resources: dict[str, Any]) -> None:
    """The unconditioned ListBucket grants above are used for 404s only: the steps list nothing but staging.

    Destination folders are never listed (another upload's key may extend this one's: outputs are
    removed by the exact keys a manifest lists), so the only listing call lists staging.
    """
    pipeline = ROOT / "layers" / "shared" / "pipeline"
    listings = []
    for module in ("steps.py", "destination.py", "storage.py"):
        tree = ast.parse((pipeline / module).read_text(encoding="utf-8"))
        listings += [
            (module, ast.unparse(node))
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and (node.func.attr == "list_keys" or node.func.attr.startswith("list_object"))
        ]
    assert len(listings) == 1, listings
    [(module, call)] = listings
    assert module == "steps.py"
    assert call.startswith("s3.list_keys(staging.bucket, "), call
    paginated = (pipeline / "storage.py").read_text(encoding="utf-8").count('get_paginator("list_objects_v2")')
    assert paginated == 1, "S3Store.list_keys is the only listing of the steps' S3Store"


def test_staging_prefix_is_the_same_in_env_iam_and_lifecycle(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    staging_prefix = template["Globals"]["Function"]["Environment"]["Variables"]["STAGING_PREFIX"]
    assert staging_prefix.endswith("/")
    keys = {
        key
        for role in of_type(resources, "AWS::IAM::Role")
        for _, bucket, key in s3_access(resources, role)
        if bucket == "StagingBucket" and key
    }
    assert keys == {f"{staging_prefix}*"}
    rules = props(resources, "StagingBucket")["LifecycleConfiguration"]["Rules"]
    expiring = [r for r in rules if r.get("Status") == "Enabled" and r.get("ExpirationInDays")]
    assert expiring, "the staging bucket should expire intermediates"
    assert {r.get("Prefix", r.get("Filter", {}).get("Prefix", "")) for r in expiring} <= {staging_prefix, ""}


# ---------------------------------------------------------------- functions


def test_function_list_matches_the_template(template: dict[str, Any]) -> None:
    assert set(of_type(template["Resources"], "AWS::Serverless::Function")) == set(ALL_FUNCTIONS)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_runtime_architecture_and_layer(function: str, resources: dict[str, Any]) -> None:
    properties = props(resources, function)
    assert properties["Runtime"] == "python3.12"
    assert properties["Architectures"] == ["arm64"]
    layer, layer_props = single(resources, "AWS::Lambda::LayerVersion")
    assert layer.startswith("SharedLayer")
    assert properties["Layers"] == [{"Ref": layer}]
    assert "python3.12" in layer_props["CompatibleRuntimes"]
    assert "arm64" in layer_props["CompatibleArchitectures"]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_logs_to_its_own_group_with_the_retention_parameter(function: str, resources: dict[str, Any]) -> None:
    log_group = props(resources, function)["LoggingConfig"]["LogGroup"]
    assert log_group == {"Ref": function.removesuffix("Function") + "LogGroup"}
    group = resources[log_group["Ref"]]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_log_groups_are_not_shared(resources: dict[str, Any]) -> None:
    groups = [json.dumps(props(resources, f)["LoggingConfig"]["LogGroup"]) for f in FUNCTIONS]
    assert len(set(groups)) == len(FUNCTIONS)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_handler_exists(function: str, resources: dict[str, Any], function_dirs: dict[str, Any]) -> None:
    module, handler = props(resources, function)["Handler"].rsplit(".", 1)
    tree = ast.parse((function_dirs[function] / f"{module}.py").read_text(encoding="utf-8"))
    assert handler in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_function_timeouts_fit_inside_their_task_timeouts(resources: dict[str, Any], asl: dict[str, Any]) -> None:
    """A function's own timeout must fire first, so it reports Sandbox.Timedout rather than the task timing out."""
    checked = set()
    for name, state in asl["States"].items():
        if state.get("Resource") == "arn:aws:states:::lambda:invoke":
            timeout = props(resources, STATE_FUNCTIONS[name])["Timeout"]
            assert timeout < state["TimeoutSeconds"], f"{name}: function {timeout}s, task {state['TimeoutSeconds']}s"
            checked.add(STATE_FUNCTIONS[name])
    assert checked == set(FUNCTIONS)


# ---------------------------------------------------------------- env contract: template <-> settings.py

EXPECTED_VARIABLES = {
    "ReconcileFunction": {
        "SOURCE_BUCKET",
        "UPLOAD_PREFIX",
        "DESTINATION_BUCKET",
        "STATE_MACHINE_ARN",
        "RECONCILE_MIN_AGE_SECONDS",
    },
    "ValidateFunction": {
        "SOURCE_BUCKET",
        "UPLOAD_PREFIX",
        "MAX_UPLOAD_BYTES",
        "MAX_PIXELS",
        "RENDITION_WIDTHS",
        "OUTPUT_FORMATS",
    },
    "ResizeFunction": {"RENDITION_WIDTHS", "MAX_PIXELS", "STAGING_BUCKET", "STAGING_PREFIX"},
    "WatermarkFunction": {
        "OUTPUT_FORMATS",
        "JPEG_QUALITY",
        "WEBP_QUALITY",
        "AVIF_QUALITY",
        "WATERMARK_TEXT",
        "WATERMARK_LOGO",
        "WATERMARK_POSITION",
        "WATERMARK_OPACITY",
        "WATERMARK_MIN_WIDTH",
        "STAGING_BUCKET",
        "STAGING_PREFIX",
    },
    "StoreFunction": {"DESTINATION_BUCKET", "STAGING_BUCKET", "STAGING_PREFIX", "UPLOAD_PREFIX"},
    "NotifyFunction": {"TOPIC_ARN", "IDEMPOTENCY_TABLE"},
    "CleanupFunction": {"DESTINATION_BUCKET", "STAGING_BUCKET", "STAGING_PREFIX", "UPLOAD_PREFIX"},
    "RemoveFunction": {
        "DESTINATION_BUCKET",
        "UPLOAD_PREFIX",
        "STAGING_BUCKET",
        "STAGING_PREFIX",
        "TOPIC_ARN",
        "IDEMPOTENCY_TABLE",
        "STATUS_TABLE",
    },
    **{
        function: {
            "SOURCE_BUCKET",
            "DESTINATION_BUCKET",
            "STATUS_TABLE",
            "UPLOAD_PREFIX",
            "MAX_UPLOAD_BYTES",
            "UPLOAD_URL_EXPIRY_SECONDS",
        }
        for function in API_FUNCTIONS
    },
}

#: The settings classes each handler builds at import time (what its environment must cover).
EXPECTED_SETTINGS = {
    "ValidateFunction": [settings.Source, settings.Limits, settings.StatusSettings],
    "ResizeFunction": [settings.RenditionSettings],
    "WatermarkFunction": [settings.WatermarkSettings, settings.EncodeSettings, settings.Staging],
    "StoreFunction": [settings.StoreSettings, settings.StatusSettings],
    "NotifyFunction": [settings.NotifySettings],
    "CleanupFunction": [settings.StoreSettings, settings.StatusSettings],
    "RemoveFunction": [settings.RemoveSettings, settings.StatusSettings],
    "ReconcileFunction": [settings.ReconcileSettings],
    **{function: [settings.ApiSettings] for function in API_FUNCTIONS},
}


@pytest.mark.parametrize("function", ALL_FUNCTIONS)
def test_function_builds_the_settings_its_step_reads(function: str, function_dirs: dict[str, Any]) -> None:
    assert settings_classes(function_dirs[function] / "app.py") == EXPECTED_SETTINGS[function]


@pytest.mark.parametrize("function", ALL_FUNCTIONS)
def test_function_env_covers_every_variable_its_settings_read(
    function: str, cfn: dict[str, Any], function_dirs: dict[str, Any]
) -> None:
    classes = settings_classes(function_dirs[function] / "app.py")
    assert classes, f"{function} builds no settings at import time"
    env = function_env(cfn, function)
    read = read_by(classes, env)  # ConfigurationError here: a parameter default the code rejects
    missing = read - env.keys() - CODE_DEFAULT_ONLY.keys()
    assert not missing, f"{function} reads {sorted(missing)} but template.yaml does not set them"
    # The recording saw exactly what settings.py reads (so a variable cannot slip past it).
    in_source = set().union(*(env_names_in_source(cls.__name__)[0] for cls in classes))
    assert read == in_source


@pytest.mark.parametrize("function", ALL_FUNCTIONS)
def test_function_env_has_the_known_variables(function: str, cfn: dict[str, Any]) -> None:
    """The contract spelled out by hand, independently of the recording above."""
    assert EXPECTED_VARIABLES[function] <= set(function_env(cfn, function))


def test_variables_name_the_right_resources(resources: dict[str, Any]) -> None:
    def raw(function: str) -> dict[str, Any]:
        return dict(props(resources, function)["Environment"]["Variables"])

    for function in FUNCTIONS:
        assert raw(function)["STAGING_BUCKET"] == {"Ref": "StagingBucket"}
        assert raw(function)["UPLOAD_PREFIX"] == {"Ref": "UploadPrefix"}
    assert raw("ValidateFunction")["SOURCE_BUCKET"] == {"Ref": "SourceBucket"}
    for function in ("StoreFunction", "CleanupFunction", "RemoveFunction"):
        assert raw(function)["DESTINATION_BUCKET"] == {"Ref": "DestinationBucket"}, function
    for function in ("NotifyFunction", "RemoveFunction"):
        assert raw(function)["TOPIC_ARN"] == {"Ref": "Topic"}, function
        assert raw(function)["IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}, function
    assert raw("ValidateFunction")["MAX_PIXELS"] == raw("ResizeFunction")["MAX_PIXELS"] == {"Ref": "MaxPixels"}
    # Validate checks what Resize and Watermark will make of an upload: the same widths and formats.
    assert raw("ValidateFunction")["RENDITION_WIDTHS"] == raw("ResizeFunction")["RENDITION_WIDTHS"]
    assert raw("ValidateFunction")["RENDITION_WIDTHS"] == {"Ref": "RenditionWidths"}
    assert raw("ValidateFunction")["OUTPUT_FORMATS"] == raw("WatermarkFunction")["OUTPUT_FORMATS"]
    assert raw("ValidateFunction")["OUTPUT_FORMATS"] == {"Ref": "OutputFormats"}


def test_every_variable_the_template_sets_is_read_by_the_code(
    cfn: dict[str, Any], function_dirs: dict[str, Any]
) -> None:
    """A misspelt variable (MAX_PIXEL) would leave the code on its default without any error."""
    read: set[str] = set()
    for function in ALL_FUNCTIONS:
        for cls in settings_classes(function_dirs[function] / "app.py"):
            read |= env_names_in_source(cls.__name__)[0]
    set_by_template = {
        name for f in ALL_FUNCTIONS for name in function_env(cfn, f) if not name.startswith("POWERTOOLS_")
    }
    assert set_by_template - read == set()
    assert set(CODE_DEFAULT_ONLY) <= read, "CODE_DEFAULT_ONLY names a variable nothing reads any more"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_contract_check_fails_when_a_variable_is_missing(
    function: str, cfn: dict[str, Any], function_dirs: dict[str, Any]
) -> None:
    """Negative control: drop each variable the template provides, and the check above reports it."""
    classes = settings_classes(function_dirs[function] / "app.py")
    env = function_env(cfn, function)
    provided = read_by(classes, env) & env.keys()
    assert provided
    for variable in sorted(provided):
        reduced = {k: v for k, v in env.items() if k != variable}
        try:
            read = read_by(classes, reduced)
        except ConfigurationError:
            continue  # a required variable: from_env itself refuses to start
        assert variable in read - reduced.keys() - CODE_DEFAULT_ONLY.keys(), variable


@pytest.mark.parametrize(
    ("parameter", "bad_default"),
    [("OutputFormats", "gif"), ("RenditionWidths", "8"), ("WatermarkPosition", "middle"), ("WatermarkOpacity", "2")],
)
def test_contract_check_fails_on_a_bad_default(
    parameter: str, bad_default: str, cfn: dict[str, Any], function_dirs: dict[str, Any]
) -> None:
    """Negative control: a default the code rejects makes from_env raise, which fails the contract test."""
    broken = copy.deepcopy(cfn)
    broken["Parameters"][parameter]["Default"] = bad_default
    assert code_errors(broken, function_dirs, {}), f"{parameter}={bad_default!r} went unnoticed"
    assert code_errors(cfn, function_dirs, {}) == []


# ---------------------------------------------------------------- parameters


def test_parameters_are_the_documented_ones(template: dict[str, Any]) -> None:
    assert set(template["Parameters"]) == set(PARAMETERS)
    assert __doc__ is not None
    documented = set(re.findall(r"\b[A-Z][a-zA-Z]+\b", __doc__.split("Parameters of the template", 1)[1]))
    assert set(PARAMETERS) <= documented


@pytest.mark.parametrize("parameter", PARAMETERS)
def test_parameter_is_used_by_a_resource(parameter: str, cfn: dict[str, Any]) -> None:
    """Directly (a Ref) or through a condition the resource decides on (Fn::If, Condition)."""
    conditions = {name for name, rule in cfn.get("Conditions", {}).items() if parameter in references(rule)}

    def decided(value: Any) -> set[str]:
        if isinstance(value, dict):
            found = {value["Fn::If"][0]} if "Fn::If" in value else set()
            return found.union(*(decided(v) for v in value.values()))
        if isinstance(value, list):
            return set().union(*(decided(v) for v in value))
        return set()

    users = [
        name
        for name, resource in cfn["Resources"].items()
        if parameter in references(resource) or (decided(resource) | {resource.get("Condition")}) & conditions
    ]
    assert users, f"{parameter} is declared but no resource uses it"


@pytest.mark.parametrize("parameter", PARAMETERS)
def test_parameter_default_satisfies_its_own_constraints(parameter: str, template: dict[str, Any]) -> None:
    definition = template["Parameters"][parameter]
    assert "Default" in definition
    assert constraint_violations(definition, str(definition["Default"])) == []


def test_workflow_type_allows_standard_and_express(template: dict[str, Any]) -> None:
    definition = template["Parameters"]["WorkflowType"]
    assert set(definition["AllowedValues"]) == {"STANDARD", "EXPRESS"}
    assert definition["Default"] == "STANDARD"


ACCEPTED_VALUES = [
    ("JpegQuality", "1"),
    ("JpegQuality", "95"),
    ("WebpQuality", "1"),
    ("WebpQuality", "100"),
    ("AvifQuality", "1"),
    ("AvifQuality", "100"),
    ("WatermarkMinWidth", "0"),
    ("MaxUploadBytes", "1"),
    ("MaxPixels", "1"),
    ("RenditionWidths", "16"),
    ("RenditionWidths", "16384"),
    ("RenditionWidths", "320,2048,1024"),
    ("OutputFormats", "jpeg"),
    ("OutputFormats", "webp"),
    ("OutputFormats", "avif"),
    ("OutputFormats", "avif,webp,jpeg"),
    ("WatermarkPosition", "bottom-right"),
    ("WatermarkPosition", "bottom-left"),
    ("WatermarkPosition", "top-right"),
    ("WatermarkPosition", "top-left"),
    ("WatermarkPosition", "center"),
    ("WatermarkOpacity", "0"),
    ("WatermarkOpacity", "0.25"),
    ("WatermarkOpacity", "1"),
    ("WatermarkOpacity", "1.0"),
    ("WatermarkText", ""),
    ("WatermarkText", "© imgpipe"),
    ("WatermarkLogo", ""),
    ("WatermarkLogo", "logo.png"),
    ("UploadPrefix", ""),
    ("UploadPrefix", "uploads/"),
    ("UploadPrefix", "a/b.c/"),
]


@pytest.mark.parametrize(("parameter", "value"), ACCEPTED_VALUES, ids=[f"{p}={v!r}" for p, v in ACCEPTED_VALUES])
def test_code_accepts_values_the_parameter_allows(
    parameter: str, value: str, template: dict[str, Any], cfn: dict[str, Any], function_dirs: dict[str, Any]
) -> None:
    assert constraint_violations(template["Parameters"][parameter], value) == [], "probe outside the constraints"
    assert code_errors(cfn, function_dirs, {parameter: value}) == []


REJECTED_VALUES = [
    pytest.param("JpegQuality", "96", id="JpegQuality='96'"),
    pytest.param("WebpQuality", "0", id="WebpQuality='0'"),
    pytest.param("AvifQuality", "101", id="AvifQuality='101'"),
    pytest.param("MaxUploadBytes", "0", id="MaxUploadBytes='0'"),
    pytest.param("OutputFormats", "gif", id="OutputFormats='gif'"),
    pytest.param("WatermarkPosition", "middle", id="WatermarkPosition='middle'"),
    pytest.param("WatermarkOpacity", "1.5", id="WatermarkOpacity='1.5'"),
    pytest.param("UploadPrefix", "/absolute/", id="UploadPrefix='/absolute/'"),
    pytest.param("MaxUploadBytes", "5368709121", id="MaxUploadBytes='5368709121'"),
    pytest.param("MaxPixels", "1000000001", id="MaxPixels='1000000001'"),
    pytest.param("WatermarkMinWidth", "16385", id="WatermarkMinWidth='16385'"),
    pytest.param("RenditionWidths", "8", id="RenditionWidths='8'"),
    pytest.param("RenditionWidths", "20000", id="RenditionWidths='20000'"),
    pytest.param("UploadPrefix", "../", id="UploadPrefix='../'"),
    pytest.param("WatermarkLogo", ".png", id="WatermarkLogo='.png'"),
]


@pytest.mark.parametrize(("parameter", "value"), REJECTED_VALUES)
def test_parameter_constraints_reject_what_the_code_rejects(
    parameter: str, value: str, template: dict[str, Any], cfn: dict[str, Any], function_dirs: dict[str, Any]
) -> None:
    """A value the code refuses should fail the deployment, not every cold start after it."""
    rejected_by_cloudformation = constraint_violations(template["Parameters"][parameter], value)
    if not rejected_by_cloudformation:
        assert code_errors(cfn, function_dirs, {parameter: value}), "probe that the code accepts"
    assert rejected_by_cloudformation, f"{parameter}={value!r} deploys, then every function fails to start"


# ---------------------------------------------------------------- buckets, topic, queue


@pytest.mark.parametrize("bucket", BUCKETS)
def test_bucket_blocks_public_access_and_is_encrypted(bucket: str, resources: dict[str, Any]) -> None:
    properties = props(resources, bucket)
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    rules = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rules
    assert all(
        r["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms", "aws:kms:dsse") for r in rules
    )
    assert properties["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]


@pytest.mark.parametrize("bucket", BUCKETS)
def test_bucket_policy_denies_insecure_transport(bucket: str, resources: dict[str, Any]) -> None:
    policies = [
        p["Properties"]["PolicyDocument"]
        for p in of_type(resources, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket}
    ]
    assert len(policies) == 1, f"{bucket} should have exactly one bucket policy"
    denials = [
        s
        for s in listify(policies[0]["Statement"])
        if s["Effect"] == "Deny"
        and s["Principal"] in ("*", {"AWS": "*"})
        and "s3:*" in listify(s["Action"])
        and str(s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")).lower() == "false"
    ]
    assert len(denials) == 1
    covered = listify(denials[0]["Resource"])
    assert any(getatt(r) == (bucket, "Arn") for r in covered), "the bucket itself"
    assert any(s3_object_target(r) == (bucket, "*") for r in covered), "every object in it"


def test_buckets_log_access_to_the_access_log_bucket(resources: dict[str, Any]) -> None:
    """S3 server access logs of every other bucket, each under a prefix of its own, delivered by the logging service."""
    assert set(BUCKETS) - set(LOGGED_BUCKETS) == {"AccessLogBucket"}
    prefixes = []
    for bucket in LOGGED_BUCKETS:
        logging = props(resources, bucket)["LoggingConfiguration"]
        assert logging["DestinationBucketName"] == {"Ref": "AccessLogBucket"}, bucket
        prefixes.append(logging["LogFilePrefix"])
    assert len(set(prefixes)) == len(prefixes)
    assert all(p.endswith("/") for p in prefixes)
    assert "LoggingConfiguration" not in props(resources, "AccessLogBucket"), "it would log its own deliveries"
    [policy] = [
        p["Properties"]["PolicyDocument"]
        for p in of_type(resources, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": "AccessLogBucket"}
    ]
    [grant] = [s for s in listify(policy["Statement"]) if s["Effect"] == "Allow"]
    assert grant["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert grant["Action"] == "s3:PutObject"
    assert s3_object_target(grant["Resource"]) == ("AccessLogBucket", "*")
    sources = grant["Condition"]["ArnLike"]["aws:SourceArn"]
    assert len(sources) == len(LOGGED_BUCKETS)
    assert {getatt(s) for s in sources} == {(b, "Arn") for b in LOGGED_BUCKETS}
    assert grant["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    rules = props(resources, "AccessLogBucket")["LifecycleConfiguration"]["Rules"]
    assert any(r["Status"] == "Enabled" and int(r.get("ExpirationInDays", 0)) > 0 for r in rules), "logs expire"


def test_staging_bucket_expires_intermediates(resources: dict[str, Any]) -> None:
    rules = props(resources, "StagingBucket")["LifecycleConfiguration"]["Rules"]
    assert any(r["Status"] == "Enabled" and 0 < int(r.get("ExpirationInDays", 0)) <= 7 for r in rules)


def test_topic_is_encrypted_with_a_key_cloudwatch_can_use(resources: dict[str, Any]) -> None:
    key_ref = props(resources, "Topic")["KmsMasterKeyId"]
    assert key_ref == {"Ref": "TopicKey"}
    key = props(resources, "TopicKey")
    assert key["EnableKeyRotation"] is True
    # An alarm publishes as cloudwatch.amazonaws.com: without these grants its messages are dropped.
    grants = [
        s
        for s in key["KeyPolicy"]["Statement"]
        if s["Effect"] == "Allow" and s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert grants
    actions = {a for s in grants for a in listify(s["Action"])}
    assert "kms:Decrypt" in actions
    assert actions & {"kms:GenerateDataKey", "kms:GenerateDataKey*"}


def test_topic_policy_lets_cloudwatch_publish(resources: dict[str, Any]) -> None:
    _, policy = single(resources, "AWS::SNS::TopicPolicy")
    assert policy["Topics"] == [{"Ref": "Topic"}]
    assert any(
        s["Effect"] == "Allow"
        and s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
        and "sns:Publish" in listify(s["Action"])
        and s["Resource"] == {"Ref": "Topic"}
        for s in listify(policy["PolicyDocument"]["Statement"])
    )


def test_dead_letter_queue_is_encrypted(resources: dict[str, Any]) -> None:
    queue = props(resources, "DeadLetterQueue")
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] == 1209600, "keep undeliverable uploads as long as SQS allows (14 days)"


# ---------------------------------------------------------------- alarms and outputs


def alarms(resources: Mapping[str, Any], namespace: str, metric: str) -> list[dict[str, Any]]:
    return [
        a["Properties"]
        for a in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Namespace") == namespace and a["Properties"].get("MetricName") == metric
    ]


def test_alarm_on_failed_executions(resources: dict[str, Any]) -> None:
    [alarm] = alarms(resources, "AWS/States", "ExecutionsFailed")
    assert alarm["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": STATE_MACHINE}}]
    assert alarm["AlarmActions"] == [{"Ref": "Topic"}]
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_alarm_on_dead_letters(resources: dict[str, Any]) -> None:
    [alarm] = alarms(resources, "AWS/SQS", "ApproximateNumberOfMessagesVisible")
    [dimension] = alarm["Dimensions"]
    assert dimension["Name"] == "QueueName"
    assert getatt(dimension["Value"]) == ("DeadLetterQueue", "QueueName")
    assert alarm["AlarmActions"] == [{"Ref": "Topic"}]
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_outputs(cfn: dict[str, Any]) -> None:
    expected = {
        "SourceBucketName": {"Ref": "SourceBucket"},
        "DestinationBucketName": {"Ref": "DestinationBucket"},
        "StagingBucketName": {"Ref": "StagingBucket"},
        "TopicArn": {"Ref": "Topic"},
        "StateMachineArn": {"Ref": STATE_MACHINE},
    }
    assert {name: cfn["Outputs"][name]["Value"] for name in expected} == expected


# ---------------------------------------------------------------- parameter overrides


@pytest.mark.parametrize("workflow_type", ["STANDARD", "EXPRESS"])
def test_workflow_type_override(workflow_type: str, template: dict[str, Any], packaged: dict[str, Any]) -> None:
    assert constraint_violations(template["Parameters"]["WorkflowType"], workflow_type) == []
    overrides = {"WorkflowType": workflow_type}
    transformed = sam.to_cloudformation(packaged, overrides)
    state_machine = props(transformed["Resources"], STATE_MACHINE)
    assert Resolver(transformed, overrides)(state_machine["StateMachineType"]) == workflow_type


def test_workflow_type_defaults_to_standard(cfn: dict[str, Any]) -> None:
    state_machine = props(cfn["Resources"], STATE_MACHINE)
    assert Resolver(cfn)(state_machine["StateMachineType"]) == "STANDARD"


def test_upload_prefix_override_reaches_rules_iam_and_code(packaged: dict[str, Any]) -> None:
    overrides = {"UploadPrefix": "incoming/photos/"}
    transformed = sam.to_cloudformation(packaged, overrides)
    resolve = Resolver(transformed, overrides)
    rules = of_type(transformed["Resources"], "AWS::Events::Rule")
    assert set(rules) == set(RULES)
    for rule in rules.values():
        assert resolve(rule["Properties"]["EventPattern"]["detail"]["object"]["key"]) == [
            {"prefix": "incoming/photos/"}
        ]
    uploads = f"arn:aws:s3:::{resolve({'Ref': 'SourceBucket'})}/incoming/photos/*"
    readers = {f for f in FUNCTIONS if any(b == "SourceBucket" and k for _, b, k in EXPECTED_S3_ACCESS[f])}
    assert readers == {"ValidateFunction", "ResizeFunction", "StoreFunction", "CleanupFunction", "RemoveFunction"}
    for function in sorted(readers):
        assert function_env(transformed, function, overrides)["UPLOAD_PREFIX"] == "incoming/photos/"
        role = role_of(transformed["Resources"], function)
        reads = [
            resolve(s["Resource"])
            for name, _, s in role_statements(transformed["Resources"])
            if name == role and "s3:GetObject" in listify(s["Action"]) and "SourceBucket" in references(s["Resource"])
        ]
        assert reads == [uploads], function


def test_the_codes_defaults_are_the_templates_parameter_defaults() -> None:
    """One source for every default: a setting read without its variable takes what template.yaml deploys.

    Outside a deployment (the measurements, a library user) the code's defaults apply; each must be the
    template's parameter default, or the bench would measure something the stack never runs.
    """
    from localcloud import sam as packager

    staging = {"STAGING_BUCKET": "staging"}
    for function, classes in (
        ("ValidateFunction", (settings.Limits,)),
        ("ResizeFunction", (settings.RenditionSettings,)),
        ("WatermarkFunction", (settings.WatermarkSettings, settings.EncodeSettings)),
    ):
        env = packager.function_environment(function)
        assert env, function
        for cls in classes:
            deployed = cls.from_env({**env, **staging})
            default = cls.from_env({**staging, "UPLOAD_PREFIX": env.get("UPLOAD_PREFIX", "uploads/")})
            assert deployed == default, f"{cls.__name__}: the code's defaults differ from template.yaml's"
