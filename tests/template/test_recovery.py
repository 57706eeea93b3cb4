"""The recovery resources of template.yaml (the reconciler, its schedule, the backfill state machine)
and statemachines/backfill.asl.json, transformed offline by the real aws-sam-translator.

test_template.py checks every IAM statement of the template for scope; this file checks that the
recovery roles hold exactly what their code and definition use, that the reconciler's environment
is what its settings read, and that the backfill's definition parses and starts the pipeline with
an input the pipeline accepts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.static_analyser.static_analyser import StaticAnalyser

from pipeline.errors import ConfigurationError
from pipeline.events import ScheduledRun, ValidateEvent
from pipeline.settings import ReconcileSettings
from tests.template.helpers import (
    PLACEHOLDER,
    ROOT,
    Resolver,
    constraint_violations,
    json_object,
    listify,
    props,
)
from tests.template.test_asl import (
    MANUAL_INPUT,
    SOURCE_BUCKET,
    SUCCESS_PATH,
    UPLOAD_PREFIX,
    Pipeline,
    render,
    walk,
)
from tests.template.test_template import (
    STATE_MACHINE,
    SYNC_RULE_ARN,
    getatt,
    role_of,
    role_statements,
    s3_access,
)

RECONCILER = "ReconcileFunction"
BACKFILL = "BackfillStateMachine"
BACKFILL_PATH = ROOT / "statemachines" / "backfill.asl.json"
SFN = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:"
PIPELINE_EXECUTIONS = {"Fn::Sub": SFN + "execution:${ImagePipeline.Name}:*"}
BACKFILL_NAME = "${AWS::StackName}-backfill"
SYNC_2 = "arn:aws:states:::states:startExecution.sync:2"


@pytest.fixture(scope="module")
def backfill_text() -> str:
    return BACKFILL_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def backfill(backfill_text: str) -> dict[str, Any]:
    return json_object(backfill_text)


def substituted(text: str) -> str:
    values = {
        "SourceBucket": "source-bucket",
        "UploadPrefix": "uploads/",
        "BackfillConcurrency": "10",
        "ImagePipelineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:ImagePipeline",
    }
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def grants(resources: Mapping[str, Any], role: str) -> dict[str, list[Any]]:
    """Action -> the resources (as written) every Allow statement of ``role`` grants it on."""
    found: dict[str, list[Any]] = {}
    for name, _, statement in role_statements(resources):
        if name == role and statement["Effect"] == "Allow":
            for action in listify(statement["Action"]):
                found.setdefault(action, []).extend(listify(statement["Resource"]))
    return found


def conditions(resources: Mapping[str, Any], role: str, action: str, bucket: str) -> Any:
    return [
        s.get("Condition")
        for name, _, s in role_statements(resources)
        if name == role and s["Action"] == action and getatt(s["Resource"]) == (bucket, "Arn")
    ]


# ---------------------------------------------------------------- the reconciler


def test_reconciler_runs_on_the_shared_runtime_and_layer(resources: dict[str, Any]) -> None:
    properties = props(resources, RECONCILER)
    assert properties["Runtime"] == "python3.12"
    assert properties["Architectures"] == ["arm64"]
    assert properties["Layers"] == props(resources, "ValidateFunction")["Layers"]
    assert properties["Handler"] == "app.lambda_handler"
    assert (ROOT / "functions" / "reconcile" / "app.py").is_file()


def test_reconciler_logs_to_its_own_group_with_the_retention_parameter(resources: dict[str, Any]) -> None:
    assert props(resources, RECONCILER)["LoggingConfig"]["LogGroup"] == {"Ref": "ReconcileLogGroup"}
    assert props(resources, "ReconcileLogGroup")["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_reconciler_variables_name_the_right_resources(resources: dict[str, Any]) -> None:
    variables = props(resources, RECONCILER)["Environment"]["Variables"]
    assert variables["SOURCE_BUCKET"] == {"Ref": "SourceBucket"}
    assert variables["DESTINATION_BUCKET"] == {"Ref": "DestinationBucket"}
    assert variables["STATE_MACHINE_ARN"] == {"Ref": STATE_MACHINE}
    assert variables["UPLOAD_PREFIX"] == {"Ref": "UploadPrefix"}
    assert variables["RECONCILE_MIN_AGE_SECONDS"] == {"Ref": "ReconcileMinAgeSeconds"}


@pytest.mark.parametrize("value", ["0", "300", "86400"])
def test_reconciler_accepts_every_min_age_the_parameter_allows(value: str, template: dict[str, Any]) -> None:
    assert constraint_violations(template["Parameters"]["ReconcileMinAgeSeconds"], value) == []
    env = {"SOURCE_BUCKET": "s", "DESTINATION_BUCKET": "d", "STATE_MACHINE_ARN": "arn"}
    assert ReconcileSettings.from_env({**env, "RECONCILE_MIN_AGE_SECONDS": value}).min_age_seconds == int(value)


@pytest.mark.parametrize("value", ["-1", "86401"])
def test_min_age_parameter_rejects_what_the_code_rejects(value: str, template: dict[str, Any]) -> None:
    assert constraint_violations(template["Parameters"]["ReconcileMinAgeSeconds"], value)
    env = {"SOURCE_BUCKET": "s", "DESTINATION_BUCKET": "d", "STATE_MACHINE_ARN": "arn"}
    with pytest.raises(ConfigurationError, match="RECONCILE_MIN_AGE_SECONDS"):
        ReconcileSettings.from_env({**env, "RECONCILE_MIN_AGE_SECONDS": value})


def test_reconciler_reads_manifests_and_lists_uploads_only(resources: dict[str, Any]) -> None:
    role = role_of(resources, RECONCILER)
    assert s3_access(resources, role) == {
        ("s3:ListBucket", "SourceBucket", ""),
        ("s3:GetObject", "DestinationBucket", "*/manifest.json"),
        ("s3:ListBucket", "DestinationBucket", ""),  # a missing manifest answers 404, not 403
    }
    assert conditions(resources, role, "s3:ListBucket", "SourceBucket") == [
        {"StringLike": {"s3:prefix": {"Fn::Sub": "${UploadPrefix}*"}}}
    ]


def test_reconciler_lists_reads_and_starts_pipeline_executions_only(resources: dict[str, Any]) -> None:
    granted = grants(resources, role_of(resources, RECONCILER))
    states = {action: targets for action, targets in granted.items() if action.startswith("states:")}
    assert states == {
        "states:ListExecutions": [{"Ref": STATE_MACHINE}],
        "states:DescribeExecution": [PIPELINE_EXECUTIONS],
        "states:StartExecution": [{"Ref": STATE_MACHINE}],
    }
    # and its own log group (test_template.py: test_functions_write_logs_only_to_their_own_log_group)
    assert set(granted) - set(states) == {"s3:ListBucket", "s3:GetObject", "logs:CreateLogStream", "logs:PutLogEvents"}


def test_schedule_invokes_the_reconciler_with_its_context(resources: dict[str, Any]) -> None:
    [(name, schedule)] = [(n, r) for n, r in resources.items() if r["Type"] == "AWS::Scheduler::Schedule"]
    properties = schedule["Properties"]
    assert properties["ScheduleExpression"] == {"Ref": "ReconcileSchedule"}
    assert properties.get("State", "ENABLED") == "ENABLED"
    target = properties["Target"]
    assert getatt(target["Arn"]) == (RECONCILER, "Arn")
    document = json.loads(target["Input"])
    run = ScheduledRun(document)
    assert run.execution_id == "<aws.scheduler.execution-id>"
    assert run.scheduled_time == "<aws.scheduler.scheduled-time>"
    # Retries end before the next run is due: two runs never queue up behind a failing one.
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 900
    role = getatt(target["RoleArn"])
    assert role is not None
    assert grants(resources, role[0]) == {"lambda:InvokeFunction": [{"Fn::GetAtt": [RECONCILER, "Arn"]}]}
    assert name.startswith(RECONCILER)


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("rate(15 minutes)", True),
        ("rate(1 hour)", True),
        ("cron(0/15 * * * ? *)", True),
        ("rate(0 minutes)", False),
        ("every 15 minutes", False),
    ],
)
def test_schedule_parameter_takes_rate_and_cron_expressions(
    value: str, accepted: bool, template: dict[str, Any]
) -> None:
    definition = template["Parameters"]["ReconcileSchedule"]
    assert definition["Default"] == "rate(15 minutes)"
    assert (constraint_violations(definition, value) == []) is accepted


# ---------------------------------------------------------------- the backfill state machine


def test_backfill_definition_is_inlined_and_standard(
    template: dict[str, Any], packaged: dict[str, Any], cfn: dict[str, Any], backfill: dict[str, Any]
) -> None:
    assert template["Resources"][BACKFILL]["Properties"]["DefinitionUri"] == "statemachines/backfill.asl.json"
    assert packaged["Resources"][BACKFILL]["Properties"]["Definition"] == backfill
    properties = props(cfn["Resources"], BACKFILL)
    assert properties["StateMachineType"] == "STANDARD"  # .sync and Distributed Map child workflows
    assert properties["StateMachineName"] == {"Fn::Sub": BACKFILL_NAME}


def test_backfill_substitutions_cover_every_placeholder_and_nothing_else(
    cfn: dict[str, Any], backfill_text: str
) -> None:
    substitutions = props(cfn["Resources"], BACKFILL)["DefinitionSubstitutions"]
    assert set(PLACEHOLDER.findall(backfill_text)) == set(substitutions)
    assert substitutions == {
        "SourceBucket": {"Ref": "SourceBucket"},
        "UploadPrefix": {"Ref": "UploadPrefix"},
        "BackfillConcurrency": {"Ref": "BackfillConcurrency"},
        "ImagePipelineArn": {"Ref": STATE_MACHINE},
    }


def test_backfill_role_grants_exactly_what_the_definition_uses(resources: dict[str, Any]) -> None:
    role = getatt(props(resources, BACKFILL)["RoleArn"])
    assert role is not None
    granted = grants(resources, role[0])
    assert granted == {
        "s3:ListBucket": [{"Fn::GetAtt": ["SourceBucket", "Arn"]}],
        "states:StartExecution": [{"Ref": STATE_MACHINE}, {"Fn::Sub": SFN + "stateMachine:" + BACKFILL_NAME}],
        "states:DescribeExecution": [PIPELINE_EXECUTIONS, {"Fn::Sub": SFN + "execution:" + BACKFILL_NAME + "/*"}],
        "states:StopExecution": [PIPELINE_EXECUTIONS, {"Fn::Sub": SFN + "execution:" + BACKFILL_NAME + "/*"}],
        "events:PutTargets": [{"Fn::Sub": SYNC_RULE_ARN}],
        "events:PutRule": [{"Fn::Sub": SYNC_RULE_ARN}],
        "events:DescribeRule": [{"Fn::Sub": SYNC_RULE_ARN}],
    }
    assert conditions(resources, role[0], "s3:ListBucket", "SourceBucket") == [
        {"StringLike": {"s3:prefix": {"Fn::Sub": "${UploadPrefix}*"}}}
    ]
    assert props(resources, role[0]).get("ManagedPolicyArns", []) == []


def test_backfill_definition_parses_on_the_local_engine(backfill_text: str, backfill: dict[str, Any]) -> None:
    definition = substituted(backfill_text)
    assert "${" not in definition
    StaticAnalyser().analyse(definition)
    parsed_program, _ = AmazonStateLanguageParser.parse(definition)
    program: Any = parsed_program
    assert set(program.states.states) == set(backfill["States"])
    kinds = {name: type(state).__name__ for name, state in program.states.states.items()}
    assert kinds == {"Plan": "StatePass", "Process Uploads": "StateMap"}


def test_backfill_is_jsonpath_only(backfill_text: str) -> None:
    assert "QueryLanguage" not in backfill_text
    assert not re.search(r'"(Arguments|Output|Assign)"\s*:', backfill_text)
    assert "{%" not in backfill_text


def test_backfill_lists_the_upload_prefix_with_the_concurrency_parameter(backfill: dict[str, Any]) -> None:
    plan = backfill["States"]["Plan"]["Parameters"]
    assert plan == {
        "bucket": "${SourceBucket}",
        "prefix": "${UploadPrefix}",
        "concurrency.$": "States.StringToJson('${BackfillConcurrency}')",
    }
    assert backfill["States"]["Plan"]["Next"] == "Process Uploads"
    mapped = backfill["States"]["Process Uploads"]
    assert mapped["ItemReader"] == {
        "Resource": "arn:aws:states:::s3:listObjectsV2",
        "Parameters": {"Bucket.$": "$.bucket", "Prefix.$": "$.prefix"},
    }
    assert mapped["MaxConcurrencyPath"] == "$.concurrency"
    assert mapped["ItemSelector"] == {"bucket.$": "$.bucket", "key.$": "$$.Map.Item.Value.Key"}
    assert mapped["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert mapped["ResultPath"] is None, "the per-upload outcomes are the pipeline's executions, not this output"


def test_backfill_runs_the_pipeline_with_its_manual_input(backfill: dict[str, Any], asl: dict[str, Any]) -> None:
    processor = backfill["States"]["Process Uploads"]["ItemProcessor"]
    [task] = [s for s in processor["States"].values() if s["Type"] == "Task"]
    assert task["Resource"] == SYNC_2
    assert task["Parameters"]["StateMachineArn"] == "${ImagePipelineArn}"
    assert task["Parameters"]["Input"] == {"bucket.$": "$.bucket", "key.$": "$.key"}
    # What the Map's ItemSelector hands each item, for a listed key: that key verbatim, as S3 lists it.
    execution_input = render(task["Parameters"]["Input"], MANUAL_INPUT)
    assert execution_input == MANUAL_INPUT
    assert ValidateEvent(execution_input).upload(SOURCE_BUCKET, UPLOAD_PREFIX).kind == "manual"
    # The pipeline's Validate gets that input as it is and takes the key verbatim; the upload runs every step.
    run = walk(asl, execution_input)
    assert run.call("Validate").parameters["Payload"]["input"] == execution_input
    assert run.visited == SUCCESS_PATH
    assert run.inputs["Resize"]["source"]["key"] == MANUAL_INPUT["key"]
    assert run.error is None


def test_backfill_of_a_key_deleted_meanwhile_is_reported_as_missing(asl: dict[str, Any]) -> None:
    """A key listed, then deleted before its execution: a manual input, so SourceMissing (not a deletion)."""
    pipeline = Pipeline()
    pipeline.s3.remove(MANUAL_INPUT["key"])
    run = walk(asl, dict(MANUAL_INPUT), pipeline)
    assert run.error is not None
    assert run.error["Error"] == "SourceMissing"
    assert "Remove Outputs" not in run.visited


def test_backfill_goes_on_past_a_failed_upload_but_not_past_its_own_errors(backfill: dict[str, Any]) -> None:
    processor = backfill["States"]["Process Uploads"]["ItemProcessor"]["States"]
    task = processor["Run Pipeline"]
    # A failed pipeline execution (already published by the pipeline) is caught...
    assert [c["ErrorEquals"] for c in task["Catch"]] == [["States.TaskFailed"]]
    assert processor[task["Catch"][0]["Next"]]["Type"] == "Pass"
    # ...while throttling is retried with backoff, and nothing else (access denied, a bad ARN) is hidden.
    retried = {e for r in task["Retry"] for e in r["ErrorEquals"]}
    assert "StepFunctions.ThrottlingException" in retried
    assert not retried & {"States.ALL", "States.TaskFailed"}
    assert all(r["BackoffRate"] > 1 and r["JitterStrategy"] == "FULL" for r in task["Retry"])


def test_backfill_skips_folder_markers(backfill: dict[str, Any]) -> None:
    processor = backfill["States"]["Process Uploads"]["ItemProcessor"]
    choice = processor["States"][processor["StartAt"]]
    [rule] = choice["Choices"]
    assert rule == {"Variable": "$.key", "StringMatches": "*/", "Next": "Folder Marker"}
    assert processor["States"]["Folder Marker"]["Type"] == "Succeed"
    assert choice["Default"] == "Run Pipeline"


@pytest.mark.parametrize(("value", "accepted"), [("1", True), ("10", True), ("10000", True), ("0", False)])
def test_backfill_concurrency_parameter(
    value: str, accepted: bool, template: dict[str, Any], cfn: dict[str, Any]
) -> None:
    definition = template["Parameters"]["BackfillConcurrency"]
    assert (constraint_violations(definition, value) == []) is accepted
    substitutions = props(cfn["Resources"], BACKFILL)["DefinitionSubstitutions"]
    resolved = Resolver(cfn, {"BackfillConcurrency": value})(substitutions["BackfillConcurrency"])
    assert json.loads(resolved) == int(value)  # what States.StringToJson makes of it


def test_outputs_name_the_recovery_resources(cfn: dict[str, Any]) -> None:
    assert cfn["Outputs"]["BackfillStateMachineArn"]["Value"] == {"Ref": BACKFILL}
    assert cfn["Outputs"]["ReconcileFunctionName"]["Value"] == {"Ref": RECONCILER}
