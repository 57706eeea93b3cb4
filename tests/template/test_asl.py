"""statemachines/image_pipeline.asl.json: parsed by moto's ASL parser, then checked state by state and walked.

Validate receives the execution input as it came and answers what the execution does: PROCESS,
DELETED, SUPERSEDED, or REJECTED with a named validation error (returned, not raised). The Route
choice branches on that answer: Resize, Remove Outputs, Superseded, or Cleanup.

Retry and Catch rules: a Lambda task retries the four Lambda service errors and the pipeline's
TransientError (with backoff, a cap and full jitter), never a ValidationError (it cannot pass on
retry) nor States.ALL/States.TaskFailed (which would include them). Every failure, a rejection
included, goes to Cleanup, the only Lambda between a failure and the end; Cleanup's answer goes to
'Publish Failure', which tells SNS directly and ends in a Fail state carrying the original error,
unless the source was superseded meanwhile. A failing Cleanup still publishes (a fixed message)
and fails with the original error.

The static walk (``walk``) follows the definition with the JSONPath semantics of Step Functions
(Parameters, ResultSelector, ResultPath, OutputPath, Catch). The two steps whose answers decide
the route run their real code, through ``run_step`` as their handlers do: Validate and Cleanup,
against an in-memory versioned S3 (``helpers.MemoryS3``). The other steps answer with results of
the shape their code returns (checked against steps.py). Every step's payload is wrapped in the
event data class its handler uses, which checks the fields the step requires.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException
from moto.stepfunctions.parser.asl.static_analyser.express_static_analyser import ExpressStaticAnalyser
from moto.stepfunctions.parser.asl.static_analyser.static_analyser import StaticAnalyser

from localcloud.manual import EXAMPLE_OBJECTS, PLACEHOLDER_BUCKET
from pipeline import errors, messages, steps
from pipeline.events import (
    CleanupEvent,
    NotifyEvent,
    RemoveEvent,
    ResizeEvent,
    SourceEvent,
    StepEvent,
    StoreEvent,
    ValidateEvent,
    WatermarkEvent,
)
from pipeline.observability import metrics, run_step
from pipeline.settings import Limits, Source, Staging, StoreSettings
from tests.template.helpers import PLACEHOLDER, ROOT, STATE_FUNCTIONS, MemoryS3

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
SNS_PUBLISH = "arn:aws:states:::sns:publish"
LAMBDA_SERVICE_ERRORS = frozenset(
    {
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
    }
)
VALIDATE, ROUTE, VALIDATE_FAILED = "Validate", "Route", "Validate Failed"
REMOVE, SUPERSEDED = "Remove Outputs", "Superseded"
CLEANUP, FAILED_OR_SUPERSEDED = "Cleanup", "Failed or Superseded"
FAILURE, UNREPORTED, FAILED = "Publish Failure", "Publish Unreported Failure", "Failed"
CLEANUP_FAILED = "Cleanup Failed"
#: What the execution says when its failure branch could not run.
UNREPORTED_CAUSE = "the failure branch could not run; the execution history holds the error"
PIPELINE_ORDER = ["Validate", "Resize", "Watermark", "Store", "Notify"]
#: Every state a successful execution enters, in order: six.
SUCCESS_PATH = [VALIDATE, ROUTE, "Resize", "Watermark", "Store", "Notify"]
#: The Lambda tasks whose failure the execution reports, and the name each step reports under.
STEP_NAMES = {
    "Validate": "validate",
    "Resize": "resize",
    "Watermark": "watermark",
    "Store": "store",
    "Notify": "notify",
    REMOVE: "remove",
}
STEPS = list(STEP_NAMES)
LAMBDA_STATES = [*STEPS, CLEANUP]
#: The Lambda tasks that keep the state and put their result under a key of their own.
RESULT_STATES = ["Resize", "Watermark", "Store", "Notify", REMOVE]
#: How every reported failure ends.
FAILURE_TAIL = [CLEANUP, FAILED_OR_SUPERSEDED, FAILURE, FAILED]
ALL_STATES = {
    VALIDATE,
    ROUTE,
    VALIDATE_FAILED,
    "Resize",
    "Watermark",
    "Store",
    "Notify",
    REMOVE,
    SUPERSEDED,
    CLEANUP,
    FAILED_OR_SUPERSEDED,
    FAILURE,
    CLEANUP_FAILED,
    UNREPORTED,
    FAILED,
}

SOURCE_BUCKET = "source-bucket"
UPLOAD_PREFIX = "uploads/"
STAGING_BUCKET = "staging-bucket"
DESTINATION_BUCKET = "destination-bucket"
PHOTO = (ROOT / "samples" / "rocket.jpg").read_bytes()
PHOTO_KEY = "uploads/holiday photo.jpg"
MANUAL_INPUT = {"bucket": SOURCE_BUCKET, "key": PHOTO_KEY}
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:ImagePipeline:run"
CONTEXT = {"Execution": {"Id": EXECUTION, "StartTime": "2026-01-01T00:00:00Z"}}


def subclasses(cls: type[Any]) -> Iterator[type[Any]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


VALIDATION_ERRORS = frozenset(
    {errors.ValidationError.__name__} | {c.__name__ for c in subclasses(errors.ValidationError)}
)
#: Error names no retrier of a Lambda task may match: permanent errors, and the catch-alls that include them.
NOT_RETRIED = VALIDATION_ERRORS | {"States.ALL", "States.TaskFailed", errors.ConfigurationError.__name__}


def substituted(asl_text: str) -> str:
    """The definition with every ${...} replaced by a well-formed dummy ARN, as CloudFormation would."""

    def arn(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.endswith("FunctionArn"):
            return f"arn:aws:lambda:us-east-1:123456789012:function:{name.removesuffix('Arn')}"
        if name == "TopicArn":
            return "arn:aws:sns:us-east-1:123456789012:Topic"
        raise AssertionError(f"no dummy value for ${{{name}}}")

    return PLACEHOLDER.sub(arn, asl_text)


def states_of(asl: Mapping[str, Any], kind: str | None = None, resource: str | None = None) -> dict[str, Any]:
    return {
        name: state
        for name, state in asl["States"].items()
        if (kind is None or state["Type"] == kind) and (resource is None or state.get("Resource") == resource)
    }


def lambda_tasks(asl: Mapping[str, Any]) -> dict[str, Any]:
    return states_of(asl, "Task", LAMBDA_INVOKE)


def successors(state: Mapping[str, Any]) -> list[str]:
    found = [state["Next"]] if "Next" in state else []
    found += [choice["Next"] for choice in state.get("Choices", [])]
    found += [state["Default"]] if "Default" in state else []
    found += [catcher["Next"] for catcher in state.get("Catch", [])]
    return found


def function_of(state: Mapping[str, Any]) -> str:
    """The logical id of the function a Lambda task invokes (``${XFunctionArn}`` -> XFunction)."""
    match = re.fullmatch(r"\$\{(\w+Function)Arn\}", state["Parameters"]["FunctionName"])
    assert match, state["Parameters"]["FunctionName"]
    return match.group(1)


# ---------------------------------------------------------------- a small JSONPath interpreter for static walks


def get_path(document: Any, path: str) -> Any:
    """Value at a simple JSONPath ($, $.a.b); KeyError when absent."""
    assert path == "$" or path.startswith("$."), f"unsupported path {path!r}"
    value = document
    for part in path[2:].split(".") if path != "$" else []:
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(f"{path} (at {part!r})")
        value = value[part]
    return value


def put_path(document: Any, path: str | None, value: Any) -> Any:
    if path is None:
        return document
    if path == "$":
        return value
    result = json.loads(json.dumps(document))
    target = result
    *parents, last = path[2:].split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value
    return result


def render(template: Any, data: Any) -> Any:
    """Parameters/ResultSelector applied to ``data``: "key.$" fields are paths ($$. is the context object)."""
    if isinstance(template, Mapping):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = get_path(CONTEXT, value[1:]) if value.startswith("$$.") else get_path(data, value)
            else:
                out[key] = render(value, data)
        return out
    if isinstance(template, list):
        return [render(item, data) for item in template]
    return template


def rule_matches(rule: Mapping[str, Any], data: Any) -> bool:
    if "And" in rule:
        return all(rule_matches(r, data) for r in rule["And"])
    if "Or" in rule:
        return any(rule_matches(r, data) for r in rule["Or"])
    if "Not" in rule:
        return not rule_matches(rule["Not"], data)
    try:
        value = get_path(data, rule["Variable"])
        present = True
    except KeyError:
        value, present = None, False
    if "IsPresent" in rule:
        return present is rule["IsPresent"]
    if "StringEquals" in rule:
        return present and value == rule["StringEquals"]
    if "IsString" in rule:
        return present and isinstance(value, str) is rule["IsString"]
    raise NotImplementedError(f"the static walk does not know this Choice rule: {rule}")


# ---------------------------------------------------------------- what the Lambda functions answer in the walk


class TaskFailed(Exception):
    """A task that failed for good (after its retries), with the error a Catch receives."""

    def __init__(self, error: dict[str, str]) -> None:
        super().__init__(error["Error"])
        self.error = error


def lambda_error(name: str, message: str) -> dict[str, str]:
    """A Lambda function's error as a Catch receives it: the runtime's JSON in Cause, stack trace and all."""
    trace = ['  File "/var/task/app.py", line 22, in lambda_handler\n']
    cause = json.dumps({"errorMessage": message, "errorType": name, "requestId": "r-1", "stackTrace": trace})
    return {"Error": name, "Cause": cause}


STEP_ERROR = lambda_error("TransientError", "S3 answered SlowDown three times")

#: Results of the steps the walk does not run, shaped as steps.py returns them (checked below).
STUBS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "ResizeFunction": lambda payload: {
        "renditions": [
            {"bucket": STAGING_BUCKET, "key": "staging/run/resized/1024w.tiff", "width": 1024, "height": 768}
        ],
        "image": payload["image"],
    },
    "WatermarkFunction": lambda payload: {
        "outputs": [
            {
                "bucket": STAGING_BUCKET,
                "key": "staging/run/encoded/1024w.jpg",
                "width": 1024,
                "height": 768,
                "format": "jpeg",
                "content_type": "image/jpeg",
                "bytes": 90_000,
                "watermarked": True,
            }
        ]
    },
    "StoreFunction": lambda payload: {
        "outcome": "STORED",
        "manifest": {"bucket": DESTINATION_BUCKET, "key": "holiday photo.jpg/manifest.json"},
        "renditions": payload["outputs"],
    },
    "NotifyFunction": lambda payload: {"outcome": "SUCCEEDED", "message_id": "notify-1"},
    "RemoveFunction": lambda payload: {"outcome": steps.DELETED, "removed": [], "message_id": "remove-1"},
}

EVENT_CLASSES: dict[str, type[Any]] = {
    "Validate": ValidateEvent,
    "Resize": ResizeEvent,
    "Watermark": WatermarkEvent,
    "Store": StoreEvent,
    "Notify": NotifyEvent,
    REMOVE: RemoveEvent,
    CLEANUP: CleanupEvent,
}


@dataclass
class Call:
    state: str
    parameters: Any
    result: Any


@dataclass
class Pipeline:
    """The tasks' answers in a walk: real Validate and Cleanup over ``s3``, stubs for the other steps, SNS."""

    s3: MemoryS3 = field(default_factory=lambda: MemoryS3(SOURCE_BUCKET, {PHOTO_KEY: PHOTO}))
    calls: list[Call] = field(default_factory=list)
    failures: dict[str, tuple[dict[str, str], Callable[[], object] | None]] = field(default_factory=dict)

    def fail(self, state: str, error: dict[str, str] = STEP_ERROR, before: Callable[[], object] | None = None) -> None:
        """Make ``state`` fail with ``error`` (after running ``before``, e.g. a change to the source)."""
        self.failures[state] = (error, before)

    def __call__(self, state: str, definition: Mapping[str, Any], parameters: Any) -> Any:
        if state in self.failures:
            error, before = self.failures[state]
            if before is not None:
                before()
            raise TaskFailed(error)
        json.loads(json.dumps(parameters))  # what travels between states is JSON
        if definition["Resource"] == SNS_PUBLISH:
            result: Any = {"MessageId": f"sns-{len(self.calls)}"}
        elif definition["Resource"] == LAMBDA_INVOKE:
            answer = self.answer(state, function_of(definition), parameters["Payload"])
            result = {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": json.loads(json.dumps(answer))}
        else:
            raise NotImplementedError(f"{state}: the walk does not model {definition['Resource']}")
        self.calls.append(Call(state, parameters, result))
        return result

    def answer(self, state: str, function: str, payload: Any) -> dict[str, Any]:
        source = Source(bucket=self.s3.bucket, upload_prefix=UPLOAD_PREFIX)
        settings = StoreSettings(
            destination_bucket=DESTINATION_BUCKET,
            upload_prefix=UPLOAD_PREFIX,
            cache_control="no-cache",
            staging=Staging(bucket=STAGING_BUCKET, prefix="staging/"),
        )
        name = function.removesuffix("Function").lower()
        work: Callable[[], dict[str, Any]]
        try:
            if function == "ValidateFunction":
                validate_event = ValidateEvent(payload)
                event: Mapping[str, Any] = validate_event
                work = lambda: steps.validate(validate_event, source, Limits.from_env({}), self.s3)  # noqa: E731
            elif function == "CleanupFunction":
                cleanup_event = CleanupEvent(payload)
                event = cleanup_event
                work = lambda: steps.cleanup(cleanup_event, settings, self.s3)  # noqa: E731
            else:
                step_event = EVENT_CLASSES[state](payload)  # InvalidInput: a field the step requires is missing
                assert isinstance(step_event, StepEvent)
                if isinstance(step_event, SourceEvent | RemoveEvent):
                    assert step_event.source  # InvalidInput: the source lacks a field the step reads
                event = step_event
                work = lambda: STUBS[function](payload)  # noqa: E731
            return run_step(name, event, work)
        finally:
            metrics.clear_metrics()


@dataclass
class Run:
    visited: list[str]
    #: The input each visited state received (the last time it was entered).
    inputs: dict[str, Any]
    output: Any
    calls: list[Call]
    #: Error and Cause of the Fail state the execution ended in, or None when it succeeded.
    error: dict[str, Any] | None

    def ran(self) -> list[str]:
        """The Lambda tasks that ran, in order."""
        return [c.state for c in self.calls if c.state in STATE_FUNCTIONS]

    def call(self, state: str) -> Call:
        [found] = [c for c in self.calls if c.state == state]
        return found


def walk(asl: Mapping[str, Any], execution_input: Any, pipeline: Pipeline | None = None) -> Run:
    """Follow the definition for ``execution_input``, the tasks answering as ``pipeline`` says.

    Each Task's Parameters are rendered against the data it would get (a missing path fails the walk,
    as it would fail the execution); a TaskFailed raised by ``pipeline`` follows the matching Catch.
    """
    pipeline = Pipeline() if pipeline is None else pipeline
    name = asl["StartAt"]
    data = execution_input
    visited: list[str] = []
    inputs: dict[str, Any] = {}

    def finish(error: dict[str, Any] | None) -> Run:
        return Run(visited, inputs, data, pipeline.calls, error)

    while True:
        assert name in asl["States"], f"transition to missing state {name!r}"
        assert len(visited) < 50, f"no end in sight: {visited}"
        state = asl["States"][name]
        visited.append(name)
        inputs[name] = data
        for unsupported in ("InputPath", "Result", "Assign", "Output", "Arguments", "ResultWriter"):
            assert unsupported not in state, f"the static walk does not model {unsupported} ({name})"
        kind = state["Type"]
        if kind == "Succeed":
            return finish(None)
        if kind == "Fail":
            return finish(
                {
                    "Error": get_path(data, state["ErrorPath"]) if "ErrorPath" in state else state.get("Error"),
                    "Cause": get_path(data, state["CausePath"]) if "CausePath" in state else state.get("Cause"),
                }
            )
        if kind == "Choice":
            name = next((c["Next"] for c in state["Choices"] if rule_matches(c, data)), state.get("Default", ""))
            continue
        if kind == "Pass":
            result = render(state["Parameters"], data) if "Parameters" in state else data
            data = put_path(data, state.get("ResultPath", "$"), result)
        elif kind == "Task":
            parameters = render(state["Parameters"], data) if "Parameters" in state else data
            error: dict[str, str] | None
            try:
                result = pipeline(name, state, parameters)
            except TaskFailed as failure:
                error = failure.error
            else:
                error = None
            if error is not None:
                catcher = next(
                    (c for c in state.get("Catch", []) if {error["Error"], "States.ALL"} & set(c["ErrorEquals"])),
                    None,
                )
                assert catcher is not None, f"{name}: {error['Error']} is not caught"
                data = put_path(data, catcher.get("ResultPath", "$"), error)
                name = catcher["Next"]
                continue
            if "ResultSelector" in state:
                result = render(state["ResultSelector"], result)
            data = put_path(data, state.get("ResultPath", "$"), result)
        else:
            raise NotImplementedError(f"the static walk does not model {kind} states")
        if "OutputPath" in state:
            data = get_path(data, state["OutputPath"])
        if state.get("End"):
            return finish(None)
        name = state["Next"]


def s3_event(s3: MemoryS3, key: str, detail_type: str = "Object Created") -> dict[str, Any]:
    """The EventBridge event S3 sends for ``key`` (form-urlencoded, as S3 writes keys), about its current version."""
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "sequencer": "00617F08299329D189"}
    if detail_type == "Object Created":
        head = s3.current(s3.bucket, key)
        assert head is not None, f"{key} does not exist"
        obj |= {"size": head["ContentLength"], "etag": head["ETag"].strip('"'), "version-id": head["VersionId"]}
    else:
        obj |= {"version-id": "delete-marker-1", "deletion-type": "Delete Marker Created"}
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{s3.bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": s3.bucket},
            "object": obj,
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "reason": "PutObject" if detail_type == "Object Created" else "DeleteObject",
        },
    }


def deleted_source() -> tuple[Pipeline, dict[str, Any]]:
    """A pipeline whose source was deleted, and the Object Deleted event of that deletion."""
    pipeline = Pipeline()
    pipeline.s3.remove(PHOTO_KEY)
    return pipeline, s3_event(pipeline.s3, PHOTO_KEY, "Object Deleted")


# ---------------------------------------------------------------- parsing


def test_definition_is_json(asl_text: str) -> None:
    document = json.loads(asl_text)
    assert isinstance(document, dict)
    assert document["StartAt"] in document["States"]


def test_placeholders_are_all_substituted(asl_text: str) -> None:
    definition = substituted(asl_text)
    assert "${" not in definition
    assert PLACEHOLDER.findall(asl_text), "the definition should take its ARNs from DefinitionSubstitutions"


def test_states_are_the_documented_ones(asl: dict[str, Any]) -> None:
    """The redesign's states, and none of the old input-shape states (Read Upload, From S3 Event, ...) or Done."""
    assert set(asl["States"]) == ALL_STATES
    assert asl["StartAt"] == VALIDATE
    assert set(STATE_FUNCTIONS) == set(LAMBDA_STATES)


def test_moto_asl_parser_accepts_the_definition(asl_text: str, asl: dict[str, Any]) -> None:
    parsed_program, _ = AmazonStateLanguageParser.parse(substituted(asl_text))
    program: Any = parsed_program  # a Program (start_at, states), typed as its EvalComponent base
    assert program.start_at.start_at_name == asl["StartAt"]
    parsed = program.states.states
    assert set(parsed) == set(asl["States"])
    kinds = {name: type(state).__name__ for name, state in parsed.items()}
    assert {name: kinds[name] for name in lambda_tasks(asl)} == dict.fromkeys(LAMBDA_STATES, "StateTaskServiceLambda")
    assert {name: kinds[name] for name in states_of(asl, "Task", SNS_PUBLISH)} == dict.fromkeys(
        [FAILURE, UNREPORTED], "StateTaskServiceSns"
    )
    assert {name: kinds[name] for name in (ROUTE, FAILED_OR_SUPERSEDED, VALIDATE_FAILED, SUPERSEDED, FAILED)} == {
        ROUTE: "StateChoice",
        FAILED_OR_SUPERSEDED: "StateChoice",
        VALIDATE_FAILED: "StatePass",
        SUPERSEDED: "StateSucceed",
        FAILED: "StateFail",
    }
    assert {s.query_language.query_language_mode.name for s in parsed.values()} == {"JSONPath"}


def test_static_analysers_accept_the_definition_for_both_workflow_types(asl_text: str) -> None:
    """What moto's CreateStateMachine runs: STANDARD and, because WorkflowType allows it, EXPRESS."""
    definition = substituted(asl_text)
    accepted = []
    for analyser in (StaticAnalyser(), ExpressStaticAnalyser()):
        analyser.analyse(definition)  # raises on a definition it rejects
        accepted.append(type(analyser).__name__)
    assert accepted == ["StaticAnalyser", "ExpressStaticAnalyser"]
    # Negative control: Express rejects what only Standard runs (a callback task), so the check can fail.
    callback = minimal(
        {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "End": True,
            "Parameters": {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token"}},
        }
    )
    with pytest.raises(Exception, match=r"(?i)express|waitForTaskToken|not supported"):
        ExpressStaticAnalyser().analyse(callback)


def minimal(state: dict[str, Any]) -> str:
    return json.dumps({"StartAt": "Only", "States": {"Only": state}})


def test_moto_asl_parser_rejects_a_broken_definition() -> None:
    """Negative control: the parser is not a no-op."""
    AmazonStateLanguageParser.parse(minimal({"Type": "Succeed"}))
    with pytest.raises(ASLParserException):
        AmazonStateLanguageParser.parse(minimal({"Type": "Suceed"}))


def test_express_analyser_rejects_callback_integrations() -> None:
    """Negative control for the EXPRESS check: a .waitForTaskToken integration is valid, but not for EXPRESS."""
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:f", "Payload.$": "$"},
        "End": True,
    }
    StaticAnalyser().analyse(minimal(task))
    with pytest.raises(ValueError, match="Express"):
        ExpressStaticAnalyser().analyse(minimal(task))


def test_definition_is_jsonpath_only(asl: dict[str, Any]) -> None:
    def nodes(value: Any) -> Iterator[tuple[str, Any]]:
        if isinstance(value, Mapping):
            for key, item in value.items():
                yield key, item
                yield from nodes(item)
        elif isinstance(value, list):
            for item in value:
                yield from nodes(item)

    found = list(nodes(asl))
    assert [v for k, v in found if k == "QueryLanguage" and v != "JSONPath"] == []
    assert [k for k, _ in found if k in ("Arguments", "Output", "Assign")] == [], "JSONata/variables fields"
    assert [v for _, v in found if isinstance(v, str) and v.strip().startswith("{%")] == []


# ---------------------------------------------------------------- graph


def test_every_transition_names_an_existing_state(asl: dict[str, Any]) -> None:
    dangling = [
        (name, target) for name, s in asl["States"].items() for target in successors(s) if target not in asl["States"]
    ]
    assert dangling == []


def test_every_state_is_reachable(asl: dict[str, Any]) -> None:
    seen, todo = set(), [asl["StartAt"]]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += successors(asl["States"][name])
    assert set(asl["States"]) - seen == set()


@pytest.mark.parametrize("shape", ["eventbridge", "manual"])
def test_a_successful_execution_enters_six_states(shape: str, asl: dict[str, Any]) -> None:
    pipeline = Pipeline()
    execution_input = s3_event(pipeline.s3, PHOTO_KEY) if shape == "eventbridge" else MANUAL_INPUT
    run = walk(asl, execution_input, pipeline)
    assert run.visited == SUCCESS_PATH
    assert run.ran() == PIPELINE_ORDER
    assert run.error is None
    assert asl["States"]["Notify"].get("End") is True
    assert run.output["outcome"] == steps.PROCESS
    assert run.output["source"]["key"] == PHOTO_KEY
    assert set(run.output) == {
        "outcome",
        "source",
        "image",
        "elapsed_ms",
        "resized",
        "watermarked",
        "stored",
        "notified",
    }


@pytest.mark.parametrize("shape", ["eventbridge", "deleted", "manual", "unrecognised"])
def test_validate_gets_the_execution_input_unchanged_and_its_answer_replaces_it(
    shape: str, asl: dict[str, Any]
) -> None:
    """Payload input.$ "$": the raw input, whatever its shape, beside the execution's ARN; OutputPath
    $.Payload: nothing of it travels further."""
    state = asl["States"][VALIDATE]
    assert state["Parameters"] == {
        "FunctionName": "${ValidateFunctionArn}",
        "Payload": {"input.$": "$", "execution.$": "$$.Execution.Id"},
    }
    assert state["OutputPath"] == "$.Payload"
    assert not {"InputPath", "ResultSelector", "ResultPath"} & set(state)
    pipeline = Pipeline()
    execution_input: Any = {
        "eventbridge": s3_event(pipeline.s3, PHOTO_KEY),
        "deleted": s3_event(pipeline.s3, "uploads/gone.jpg", "Object Deleted"),
        "manual": MANUAL_INPUT,
        "unrecognised": {"hello": "world", "detail": "not an S3 event"},
    }[shape]
    run = walk(asl, execution_input, pipeline)
    payload = run.call(VALIDATE).parameters["Payload"]
    assert payload["input"] == execution_input
    assert payload["execution"].startswith("arn:")
    assert ":execution:" in payload["execution"]
    answer = run.call(VALIDATE).result["Payload"]
    assert run.inputs[ROUTE] == answer
    assert answer["outcome"] in {steps.PROCESS, steps.DELETED, steps.REJECTED}
    assert not {"detail", "detail-type", "bucket", "key", "hello"} & set(answer)


def test_event_keys_are_read_both_ways_and_manual_keys_verbatim(asl: dict[str, Any]) -> None:
    """A key from an S3 event may be form-urlencoded (the object decides); a manual key is taken as written."""
    pipeline = Pipeline()
    event = s3_event(pipeline.s3, PHOTO_KEY)
    assert event["detail"]["object"]["key"] == "uploads/holiday+photo.jpg"
    from_event = walk(asl, event, pipeline)
    assert from_event.visited == SUCCESS_PATH
    assert from_event.inputs["Resize"]["source"]["key"] == PHOTO_KEY
    encoded_manual = {"bucket": SOURCE_BUCKET, "key": "uploads/holiday+photo.jpg"}
    from_manual = walk(asl, encoded_manual, Pipeline())
    assert from_manual.visited == [VALIDATE, ROUTE, *FAILURE_TAIL]
    assert from_manual.error is not None
    assert from_manual.error["Error"] == "SourceMissing"


def documented_routes() -> dict[str, tuple[str, str]]:
    """events/README.md's table: file -> ("processes" or "removes", the key) or ("error", the error it documents)."""
    readme = (ROOT / "events" / "README.md").read_text(encoding="utf-8")
    routes = {}
    for name, outcome in re.findall(r"^\| `([^`]+\.json)` \|[^|]*\| (.+?) \|$", readme, re.MULTILINE):
        quoted = re.findall(r"`([^`]+)`", outcome)
        named = [q for q in quoted if q in VALIDATION_ERRORS]
        if named:
            routes[name] = ("error", named[0])
        elif quoted and re.match(r"(?i)process", outcome):
            routes[name] = ("processes", quoted[0])
        elif quoted and re.match(r"(?i)remov|delet", outcome):
            routes[name] = ("removes", quoted[0])
        else:
            raise AssertionError(f"events/README.md: {name} documents no route this test knows: {outcome!r}")
    return routes


SAMPLE_INPUTS = sorted((ROOT / "events").glob("*.json"))


def test_every_sample_input_documents_its_route() -> None:
    routes = documented_routes()
    assert set(routes) == {p.name for p in SAMPLE_INPUTS}
    assert {"s3-object-created.json", "manual-execution.json"} <= set(routes), "both input shapes"
    assert [kind for kind, _ in routes.values()].count("processes") >= 2


@pytest.mark.parametrize("path", SAMPLE_INPUTS, ids=[p.name for p in SAMPLE_INPUTS])
def test_sample_inputs_take_the_route_they_document(path: Path, asl: dict[str, Any], template: dict[str, Any]) -> None:
    """events/*.json, with the objects `imgpipe start-execution` puts in the source bucket first.

    An upload runs every step; a deletion removes the outputs; every failure sample is a rejection by
    Validate (an input of neither shape included: the state machine no longer tells shapes apart),
    reported through Cleanup.
    """
    assert template["Parameters"]["UploadPrefix"]["Default"] == UPLOAD_PREFIX
    objects = {key: PHOTO if body is None else body for key, body in EXAMPLE_OBJECTS.items()}
    pipeline = Pipeline(MemoryS3(PLACEHOLDER_BUCKET, objects))
    run = walk(asl, json.loads(path.read_text(encoding="utf-8")), pipeline)
    kind, documented = documented_routes()[path.name]
    if kind == "processes":
        assert run.visited == SUCCESS_PATH, f"answered {run.inputs[ROUTE]}"
        assert run.inputs["Resize"]["source"]["key"] == documented
        assert run.inputs["Resize"]["source"]["bucket"] == PLACEHOLDER_BUCKET
    elif kind == "removes":
        assert run.visited == [VALIDATE, ROUTE, REMOVE], f"answered {run.inputs[ROUTE]}"
        assert run.call(REMOVE).parameters["Payload"]["source"]["key"] == documented
        assert run.call(REMOVE).parameters["Payload"]["source"]["bucket"] == PLACEHOLDER_BUCKET
    else:
        assert run.visited == [VALIDATE, ROUTE, *FAILURE_TAIL]
        assert run.ran() == [VALIDATE, CLEANUP]
        assert run.inputs[ROUTE]["outcome"] == steps.REJECTED
        assert run.error is not None
        assert run.error["Error"] == documented
        assert run.call(FAILURE).parameters["Message"]["error"] == documented


@pytest.mark.parametrize(
    "execution_input",
    [
        {"hello": "world"},
        {"version": "0", "detail-type": "Object Restore Completed", "source": "aws.s3", "detail": {}},
        {"bucket": "another-bucket", "key": PHOTO_KEY},
        {"bucket": SOURCE_BUCKET, "key": "private/holiday photo.jpg"},
        {"bucket": SOURCE_BUCKET},
    ],
    ids=["neither-shape", "other-event", "other-bucket", "outside-prefix", "no-key"],
)
def test_unrecognised_input_is_rejected_by_validate_and_published(execution_input: Any, asl: dict[str, Any]) -> None:
    run = walk(asl, execution_input)
    assert run.visited == [VALIDATE, ROUTE, *FAILURE_TAIL]
    assert run.ran() == [VALIDATE, CLEANUP], "no step but Validate, then Cleanup"
    assert run.inputs[ROUTE]["outcome"] == steps.REJECTED
    assert run.error is not None
    assert run.error["Error"] == "InvalidInput"
    assert run.error["Error"] in VALIDATION_ERRORS
    message = run.call(FAILURE).parameters["Message"]
    assert (message["status"], message["error"], message["step"]) == ("FAILED", "InvalidInput", "validate")
    assert message["reason"] == run.error["Cause"] != ""
    assert "\n" not in message["reason"]
    assert message["execution"] == EXECUTION


# ---------------------------------------------------------------- the route


def test_route_branches_on_what_validate_answers(asl: dict[str, Any]) -> None:
    route = asl["States"][ROUTE]
    assert route["Type"] == "Choice"
    assert asl["States"][VALIDATE]["Next"] == ROUTE
    assert all(
        set(c) == {"Variable", "StringEquals", "Next"} and c["Variable"] == "$.outcome" for c in route["Choices"]
    )
    branches = {c["StringEquals"]: c["Next"] for c in route["Choices"]}
    assert len(branches) == len(route["Choices"])
    assert branches == {steps.PROCESS: "Resize", steps.DELETED: REMOVE, steps.SUPERSEDED: SUPERSEDED}
    assert route["Default"] == CLEANUP, "a rejection (or any other answer) is reported"
    assert steps.REJECTED not in branches
    assert asl["States"][SUPERSEDED]["Type"] == "Succeed"


def replaced_after_its_event(pipeline: Pipeline) -> dict[str, Any]:
    event = s3_event(pipeline.s3, PHOTO_KEY)
    pipeline.s3.put(PHOTO_KEY, PHOTO + b"\0")
    return event


def deleted_after_its_event(pipeline: Pipeline) -> dict[str, Any]:
    event = s3_event(pipeline.s3, PHOTO_KEY)
    pipeline.s3.remove(PHOTO_KEY)
    return event


def deleted(pipeline: Pipeline) -> dict[str, Any]:
    pipeline.s3.remove(PHOTO_KEY)
    return s3_event(pipeline.s3, PHOTO_KEY, "Object Deleted")


def empty(pipeline: Pipeline) -> dict[str, Any]:
    pipeline.s3.put("uploads/empty.jpg", b"")
    return {"bucket": SOURCE_BUCKET, "key": "uploads/empty.jpg"}


ROUTES = {
    "process": (lambda _: MANUAL_INPUT, steps.PROCESS, SUCCESS_PATH),
    "deleted": (deleted, steps.DELETED, [VALIDATE, ROUTE, REMOVE]),
    "replaced-since-the-event": (replaced_after_its_event, steps.SUPERSEDED, [VALIDATE, ROUTE, SUPERSEDED]),
    "deleted-since-the-event": (deleted_after_its_event, steps.SUPERSEDED, [VALIDATE, ROUTE, SUPERSEDED]),
    "rejected": (empty, steps.REJECTED, [VALIDATE, ROUTE, *FAILURE_TAIL]),
}


@pytest.mark.parametrize(("prepare", "outcome", "path"), ROUTES.values(), ids=ROUTES.keys())
def test_each_answer_of_validate_takes_its_branch(
    prepare: Callable[[Pipeline], Any], outcome: str, path: list[str], asl: dict[str, Any]
) -> None:
    pipeline = Pipeline()
    run = walk(asl, prepare(pipeline), pipeline)
    assert run.inputs[ROUTE]["outcome"] == outcome
    assert run.visited == path
    assert (run.error is None) is (outcome != steps.REJECTED)


def test_every_answer_of_validate_is_routed() -> None:
    """The four outcomes ROUTES exercises are all steps.validate can answer."""
    source = (ROOT / "layers" / "shared" / "pipeline" / "steps.py").read_text(encoding="utf-8")
    body = ast.get_source_segment(source, STEP_DEFS["validate"]) or ""
    named = {name for name in ("PROCESS", "DELETED", "SUPERSEDED", "REJECTED") if re.search(rf"\b{name}\b", body)}
    assert {getattr(steps, name) for name in named} == {outcome for _, outcome, _ in ROUTES.values()}


def test_a_deleted_source_goes_to_remove_outputs_with_its_reference(asl: dict[str, Any]) -> None:
    pipeline, event = deleted_source()
    run = walk(asl, event, pipeline)
    assert run.visited == [VALIDATE, ROUTE, REMOVE]
    assert run.ran() == [VALIDATE, REMOVE]
    answer = run.inputs[ROUTE]
    assert answer["outcome"] == steps.DELETED
    payload = run.call(REMOVE).parameters["Payload"]
    assert payload == {"source": answer["source"], "execution": EXECUTION}
    source = RemoveEvent(payload).source
    assert {k: v for k, v in source.items() if k not in ("keys", "sequencer")} == {
        "bucket": SOURCE_BUCKET,
        "key": PHOTO_KEY,
        "revision": "delete-marker-1",
    }, "the deletion's own revision (its delete marker), so a duplicate event removes and publishes once"
    assert source["sequencer"] == event["detail"]["object"]["sequencer"], "orders the deletion's status write"
    assert PHOTO_KEY in RemoveEvent(payload).readings, "every reading of the event's key loses its outputs"
    state = asl["States"][REMOVE]
    assert state.get("End") is True
    assert run.output["removed"] == {"outcome": steps.DELETED, "removed": [], "message_id": "remove-1"}
    assert run.error is None


# ---------------------------------------------------------------- failures


def failing_input(failing: str) -> tuple[Pipeline, Any]:
    """A pipeline and an input whose execution reaches ``failing``."""
    if failing == REMOVE:
        return deleted_source()
    return Pipeline(), MANUAL_INPUT


@pytest.mark.parametrize("failing", STEPS)
def test_a_failing_step_is_cleaned_up_published_then_fails_the_execution(failing: str, asl: dict[str, Any]) -> None:
    pipeline, execution_input = failing_input(failing)
    pipeline.fail(failing)
    run = walk(asl, execution_input, pipeline)
    after = run.visited[run.visited.index(failing) + 1 :]
    assert after == ([VALIDATE_FAILED] if failing == VALIDATE else []) + FAILURE_TAIL
    assert failing not in run.ran(), "it failed"
    # The Fail state carries the step's error, its Cause reduced to the message (no runtime JSON, no stack trace).
    assert run.error == {"Error": "TransientError", "Cause": "S3 answered SlowDown three times"}
    published = run.call(FAILURE).parameters
    message = published["Message"]
    assert set(message) == {"status", "error", "reason", "step", "source", "execution"}
    assert (message["status"], message["error"], message["step"]) == ("FAILED", "TransientError", STEP_NAMES[failing])
    assert message["reason"] == "S3 answered SlowDown three times"
    assert message["execution"] == EXECUTION
    assert (message["source"] or {}).get("key") == (None if failing == VALIDATE else PHOTO_KEY)
    assert published["MessageAttributes"] == {
        "status": {"DataType": "String", "StringValue": "FAILED"},
        "error": {"DataType": "String", "StringValue": "TransientError"},
    }


@pytest.mark.parametrize("failing", ["Resize", "Watermark", "Store", "Notify"])
def test_a_failure_of_a_replaced_source_is_superseded_without_a_message(failing: str, asl: dict[str, Any]) -> None:
    pipeline = Pipeline()
    pipeline.fail(failing, before=lambda: pipeline.s3.put(PHOTO_KEY, PHOTO + b"\0"))
    run = walk(asl, MANUAL_INPUT, pipeline)
    assert run.visited[run.visited.index(failing) + 1 :] == [CLEANUP, FAILED_OR_SUPERSEDED, SUPERSEDED]
    assert run.output["outcome"] == steps.SUPERSEDED
    assert FAILURE not in run.visited
    assert run.error is None
    assert not [key for bucket, key in pipeline.s3.deleted if bucket == DESTINATION_BUCKET and "manifest" in key]


def into_cleanup() -> dict[str, tuple[Callable[[Pipeline], Any], str]]:
    """Every way into Cleanup: (prepare the pipeline and return the input, the error the execution must fail with)."""

    def failing(state: str) -> Callable[[Pipeline], Any]:
        def prepare(pipeline: Pipeline) -> Any:
            pipeline.fail(state)
            if state == REMOVE:
                return deleted(pipeline)
            return MANUAL_INPUT

        return prepare

    ways: dict[str, tuple[Callable[[Pipeline], Any], str]] = {
        "rejected": (empty, "EmptyObject"),
        "unrecognised": (lambda _: {"hello": "world"}, "InvalidInput"),
    }
    ways |= {f"{state} failed": (failing(state), STEP_ERROR["Error"]) for state in STEPS}
    return ways


INTO_CLEANUP = into_cleanup()


@pytest.mark.parametrize(("prepare", "error"), INTO_CLEANUP.values(), ids=INTO_CLEANUP.keys())
def test_every_way_into_cleanup_carries_the_error_the_execution_fails_with(
    prepare: Callable[[Pipeline], Any], error: str, asl: dict[str, Any]
) -> None:
    pipeline = Pipeline()
    run = walk(asl, prepare(pipeline), pipeline)
    assert run.visited[-len(FAILURE_TAIL) :] == FAILURE_TAIL
    state = run.inputs[CLEANUP]
    assert state["error"]["Error"] == error
    assert run.call(CLEANUP).parameters["Payload"] == {"state": state, "execution": EXECUTION}
    # A rejection's reason is already Validate's one line; a Lambda error's Cause is reduced to its message.
    rejected = state.get("outcome") == steps.REJECTED
    cause = state["error"]["Cause"] if rejected else json.loads(STEP_ERROR["Cause"])["errorMessage"]
    assert run.error == {"Error": error, "Cause": cause}
    assert run.call(FAILURE).parameters["Message"]["reason"] == cause


@pytest.mark.parametrize(("prepare", "error"), INTO_CLEANUP.values(), ids=INTO_CLEANUP.keys())
def test_a_failing_cleanup_still_publishes_and_fails_with_the_original_error(
    prepare: Callable[[Pipeline], Any], error: str, asl: dict[str, Any]
) -> None:
    pipeline = Pipeline()
    execution_input = prepare(pipeline)
    cleanup_error = lambda_error("InternalError", "KeyError: 'watermarked'")
    pipeline.fail(CLEANUP, cleanup_error)
    run = walk(asl, execution_input, pipeline)
    assert run.visited[-4:] == [CLEANUP, CLEANUP_FAILED, UNREPORTED, FAILED]
    original = run.inputs[CLEANUP]["error"]
    assert original["Error"] == error
    assert run.error == {"Error": original["Error"], "Cause": UNREPORTED_CAUSE}, "Cleanup's error never replaces it"
    assert run.output["cleanup_error"] == cleanup_error
    published = run.call(UNREPORTED).parameters
    assert published["Message"]["error"] == error
    assert published["Message"]["step"] == "cleanup"
    assert published["Message"]["execution"] == EXECUTION
    assert published["MessageAttributes"]["error"]["StringValue"] == error
    assert published["MessageAttributes"]["status"]["StringValue"] == "FAILED"


def failure_scenarios() -> dict[str, tuple[Callable[[Pipeline], Any], str]]:
    """Every kind of failure: (prepare the pipeline and return the input, the state where it happens)."""
    scenarios: dict[str, tuple[Callable[[Pipeline], Any], str]] = {"rejected": (empty, VALIDATE)}
    for state in STEPS:
        scenarios[f"{state} failed"] = (INTO_CLEANUP[f"{state} failed"][0], state)

    def cleanup_fails_too(pipeline: Pipeline) -> Any:
        pipeline.fail(CLEANUP)
        return INTO_CLEANUP["Store failed"][0](pipeline)

    scenarios["Store and Cleanup failed"] = (cleanup_fails_too, "Store")
    return scenarios


FAILURE_SCENARIOS = failure_scenarios()


@pytest.mark.parametrize(("prepare", "at"), FAILURE_SCENARIOS.values(), ids=FAILURE_SCENARIOS.keys())
def test_no_lambda_between_a_failure_and_the_end_but_cleanup(
    prepare: Callable[[Pipeline], Any], at: str, asl: dict[str, Any]
) -> None:
    pipeline = Pipeline()
    run = walk(asl, prepare(pipeline), pipeline)
    after = run.visited[run.visited.index(at) + 1 :]
    assert [n for n in after if asl["States"][n].get("Resource") == LAMBDA_INVOKE] == [CLEANUP]
    assert asl["States"][run.visited[-1]]["Type"] == "Fail"
    assert {FAILURE, UNREPORTED} & set(after), "the failure is published"


# ---------------------------------------------------------------- retry and catch


def test_every_task_has_retry_and_catch(asl: dict[str, Any]) -> None:
    tasks = states_of(asl, "Task")
    assert set(lambda_tasks(asl)) == set(LAMBDA_STATES)
    assert set(tasks) == {*LAMBDA_STATES, FAILURE, UNREPORTED}
    assert [name for name, state in tasks.items() if not state.get("Retry") or not state.get("Catch")] == []


@pytest.mark.parametrize("name", LAMBDA_STATES)
def test_lambda_task_retries_service_and_transient_errors(name: str, asl: dict[str, Any]) -> None:
    retriers = asl["States"][name]["Retry"]
    service = [r for r in retriers if set(r["ErrorEquals"]) & LAMBDA_SERVICE_ERRORS]
    assert len(service) == 1
    assert set(service[0]["ErrorEquals"]) == LAMBDA_SERVICE_ERRORS
    assert len([r for r in retriers if "TransientError" in r["ErrorEquals"]]) == 1
    for retrier in retriers:
        assert retrier["BackoffRate"] > 1
        assert retrier["MaxAttempts"] >= 1
        assert retrier["MaxDelaySeconds"] >= retrier.get("IntervalSeconds", 1)
        assert retrier["JitterStrategy"] == "FULL"


@pytest.mark.parametrize("name", LAMBDA_STATES)
def test_lambda_task_never_retries_permanent_errors(name: str, asl: dict[str, Any]) -> None:
    assert {"InvalidInput", "TooManyPixels", "SourceChanged", "ValidationError"} <= VALIDATION_ERRORS
    retried = {error for r in asl["States"][name]["Retry"] for error in r["ErrorEquals"]}
    assert retried & NOT_RETRIED == set()


@pytest.mark.parametrize("name", [FAILURE, UNREPORTED])
def test_publish_tasks_retry_with_backoff(name: str, asl: dict[str, Any]) -> None:
    [retrier] = asl["States"][name]["Retry"]
    assert retrier["ErrorEquals"] == ["States.ALL"], "nothing of a publish is permanent but its failure to publish"
    assert retrier["BackoffRate"] > 1
    assert retrier["JitterStrategy"] == "FULL"


def test_error_names_exist(asl: dict[str, Any]) -> None:
    """A misspelt error name in Retry or Catch matches nothing, silently."""
    pipeline_errors = {c.__name__ for c in subclasses(errors.PipelineError)}
    names = {
        error
        for state in asl["States"].values()
        for handler in state.get("Retry", []) + state.get("Catch", [])
        for error in handler["ErrorEquals"]
    }
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    # Runtime.ExitError: the Lambda runtime's name for a function process that died (it is retried);
    # IdempotencyAlreadyInProgressError: Powertools', raised while a duplicate is still notifying.
    known = {"Runtime.ExitError", IdempotencyAlreadyInProgressError.__name__}
    unknown = {
        n for n in names if not n.startswith(("States.", "Lambda.", "Sandbox.")) and n not in known | pipeline_errors
    }
    assert unknown == set()
    assert "TransientError" in pipeline_errors


def test_every_catch_goes_to_cleanup_with_the_error(asl: dict[str, Any]) -> None:
    catchers = {name: s["Catch"] for name, s in asl["States"].items() if "Catch" in s}
    assert set(catchers) == {*LAMBDA_STATES, FAILURE, UNREPORTED}
    to_cleanup = {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": CLEANUP}
    assert {name: catchers[name] for name in RESULT_STATES} == {name: [to_cleanup] for name in RESULT_STATES}
    # Validate's input may be near the payload limit: its error replaces it, then becomes the state Cleanup reads.
    assert catchers[VALIDATE] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$", "Next": VALIDATE_FAILED}]
    validate_failed = asl["States"][VALIDATE_FAILED]
    assert {k: v for k, v in validate_failed.items() if k != "Comment"} == {
        "Type": "Pass",
        "Parameters": {"error.$": "$", "step": STEP_NAMES[VALIDATE]},
        "Next": CLEANUP,
    }
    cleanup = asl["States"][CLEANUP]
    assert cleanup["Parameters"] == {
        "FunctionName": "${CleanupFunctionArn}",
        "Payload": {"state.$": "$", "execution.$": "$$.Execution.Id"},
    }
    assert cleanup["OutputPath"] == "$.Payload"
    assert cleanup["Next"] == FAILED_OR_SUPERSEDED
    # A failing clean-up never replaces the step's error: it is kept apart and the failure is still published.
    assert catchers[CLEANUP] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.cleanup_error", "Next": CLEANUP_FAILED}
    ]
    # The execution fails with the step's error name and a cause for people (a caught Cause may be absent).
    cleanup_failed = asl["States"][CLEANUP_FAILED]
    assert {k: v for k, v in cleanup_failed.items() if k != "Comment"} == {
        "Type": "Pass",
        "Parameters": {"Error.$": "$.error.Error", "Cause": UNREPORTED_CAUSE},
        "ResultPath": "$.error",
        "Next": UNREPORTED,
    }


def test_failed_or_superseded_chooses_on_cleanups_answer(asl: dict[str, Any]) -> None:
    choice = asl["States"][FAILED_OR_SUPERSEDED]
    assert choice["Type"] == "Choice"
    assert choice["Choices"] == [{"Variable": "$.outcome", "StringEquals": steps.SUPERSEDED, "Next": SUPERSEDED}]
    assert choice["Default"] == FAILURE
    assert {"outcome", "message", "error"} <= returned_keys("cleanup")


def test_publish_failure_publishes_cleanups_message_to_sns_then_fails(asl: dict[str, Any]) -> None:
    state = asl["States"][FAILURE]
    assert state["Type"] == "Task"
    assert state["Resource"] == SNS_PUBLISH
    parameters = state["Parameters"]
    assert parameters["TopicArn"] == "${TopicArn}"
    assert parameters["Message.$"] == "$.message"
    assert parameters["MessageAttributes"] == {
        "status": {"DataType": "String", "StringValue": "FAILED"},
        "error": {"DataType": "String", "StringValue.$": "$.error.Error"},
    }
    assert state.get("ResultPath", "$") is None, "the SNS result must not replace the error"
    assert state["Next"] == FAILED
    failed = asl["States"][FAILED]
    assert failed["Type"] == "Fail"
    assert failed["ErrorPath"] == "$.error.Error"
    assert failed["CausePath"] == "$.error.Cause"
    # If SNS itself fails, still fail with the original error (kept at $.error).
    assert [c["Next"] for c in state["Catch"]] == [FAILED]
    assert all(c.get("ResultPath") not in ("$", "$.error") for c in state["Catch"])


def test_publish_unreported_failure_sends_a_fixed_message(asl: dict[str, Any]) -> None:
    """Cleanup failed, so it wrote no message: a fixed one, whose only field from the state is the error name."""
    state = asl["States"][UNREPORTED]
    assert state["Resource"] == SNS_PUBLISH
    parameters = state["Parameters"]
    assert parameters["TopicArn"] == "${TopicArn}"
    assert parameters["MessageAttributes"] == asl["States"][FAILURE]["Parameters"]["MessageAttributes"]
    assert "Message.$" not in parameters
    message = parameters["Message"]
    fields = {key.removesuffix(".$"): value for key, value in message.items()}
    assert fields["status"] == "FAILED"
    assert fields["error"] == "$.error.Error"
    assert fields["step"] == "cleanup"
    assert fields["execution"] == "$$.Execution.Id"
    assert isinstance(fields["reason"], str)
    assert fields["reason"]
    assert {v for k, v in message.items() if k.endswith(".$")} == {"$.error.Error", "$$.Execution.Id"}
    # The same fields as the messages Cleanup writes (the source aside: it may be what Cleanup failed on).
    failure = messages.failure_message(execution="e", error="E", reason="r", step="s", source=None)
    assert set(fields) == set(failure) - {"source"}
    assert state.get("ResultPath", "$") is None
    assert state["Next"] == FAILED
    assert [c["Next"] for c in state["Catch"]] == [FAILED]
    assert all(c.get("ResultPath") not in ("$", "$.error") for c in state["Catch"])


# ---------------------------------------------------------------- payloads and results

_BYTES_LIKE = re.compile(r"body|bytes|data|base64|blob|content|pixels|buffer", re.IGNORECASE)


def payload_fields(payload: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(payload, Mapping):
        for key, value in payload.items():
            yield f"{prefix}{key}", value
            yield from payload_fields(value, f"{prefix}{key}.")


@pytest.mark.parametrize("name", [n for n in LAMBDA_STATES if n != VALIDATE])
def test_payload_carries_references_not_image_bytes(name: str, asl: dict[str, Any]) -> None:
    """Validate gets the execution input as it is (test above); every other step only references."""
    parameters = asl["States"][name]["Parameters"]
    assert set(parameters) == {"FunctionName", "Payload"}
    fields = list(payload_fields(parameters["Payload"]))
    assert fields
    suspicious = [(k, v) for k, v in fields if _BYTES_LIKE.search(k) or (isinstance(v, str) and _BYTES_LIKE.search(v))]
    assert suspicious == []
    literals = [(k, v) for k, v in fields if not isinstance(v, Mapping) and not k.endswith(".$")]
    assert literals == [], "only paths into the state and the context object travel"
    assert all(v.startswith(("$.", "$$.")) or v == "$" for k, v in fields if k.endswith(".$"))


@pytest.mark.parametrize("name", RESULT_STATES)
def test_result_goes_under_a_named_key(name: str, asl: dict[str, Any]) -> None:
    state = asl["States"][name]
    assert "OutputPath" not in state
    assert re.fullmatch(r"\$\.[a-z_]+", state["ResultPath"]), state.get("ResultPath")
    # Not over what Validate put in the state, nor where errors go.
    assert state["ResultPath"].removeprefix("$.") not in returned_keys("validate") | {"elapsed_ms", "cleanup_error"}
    selector = state["ResultSelector"]
    assert selector
    assert all(k.endswith(".$") and v.startswith("$.Payload.") for k, v in selector.items())


@pytest.mark.parametrize("name", [VALIDATE, CLEANUP])
def test_validate_and_cleanup_answers_replace_the_state(name: str, asl: dict[str, Any]) -> None:
    """Their answers are what the Choice after them reads: the function's Payload, nothing else."""
    state = asl["States"][name]
    assert state["OutputPath"] == "$.Payload"
    assert "ResultSelector" not in state
    assert state.get("ResultPath", "$") == "$"
    assert asl["States"][state["Next"]]["Type"] == "Choice"


def test_result_paths_are_distinct(asl: dict[str, Any]) -> None:
    paths = [state["ResultPath"] for state in lambda_tasks(asl).values() if "ResultPath" in state]
    assert len(paths) == len(RESULT_STATES)
    assert len(set(paths)) == len(paths)
    caught = {c["ResultPath"] for s in asl["States"].values() for c in s.get("Catch", []) if c["ResultPath"] != "$"}
    assert caught == {"$.error", "$.cleanup_error", "$.publish_error"}
    assert set(paths) & caught == set()


def top_keys_read(asl: Mapping[str, Any]) -> dict[str, set[str]]:
    """State -> the top-level keys of its input that its paths read (Parameters, Choice rules, ErrorPath...)."""
    found: dict[str, set[str]] = {}
    for name, state in asl["States"].items():
        paths = [v for k, v in payload_fields(state.get("Parameters", {})) if k.endswith(".$")]
        paths += [c["Variable"] for c in state.get("Choices", [])]
        paths += [state[f] for f in ("ErrorPath", "CausePath") if f in state]
        found[name] = {p[2:].split(".")[0] for p in paths if p.startswith("$.")}
    return found


def test_every_path_the_definition_reads_is_written_by_a_state_or_a_step(asl: dict[str, Any]) -> None:
    written = returned_keys("validate") | returned_keys("cleanup") | {"elapsed_ms"}
    written |= {s["ResultPath"][2:] for s in asl["States"].values() if str(s.get("ResultPath", "")).startswith("$.")}
    written |= {c["ResultPath"][2:] for s in asl["States"].values() for c in s.get("Catch", []) if c["ResultPath"][2:]}
    written |= {k.removesuffix(".$") for k in asl["States"][VALIDATE_FAILED]["Parameters"]}
    read = set().union(*top_keys_read(asl).values())
    assert read - written == set()
    assert {"outcome", "source", "image", "elapsed_ms", "message", "error"} <= read


# ---------------------------------------------------------------- contract with the step code


def step_function(function_dir: Path) -> str:
    """The name of the pipeline.steps function a handler runs (``steps.<name>(...)``)."""
    tree = ast.parse((function_dir / "app.py").read_text(encoding="utf-8"))
    calls = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "steps"
    }
    assert len(calls) == 1, calls
    return calls.pop()


STEPS_TREE = ast.parse((ROOT / "layers" / "shared" / "pipeline" / "steps.py").read_text(encoding="utf-8"))
STEP_DEFS = {node.name: node for node in STEPS_TREE.body if isinstance(node, ast.FunctionDef)}


def returned_keys(function: str) -> set[str]:
    keys: set[str] = set()
    for node in ast.walk(STEP_DEFS[function]):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Dict):
            keys |= {k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return keys


def test_run_step_adds_elapsed_ms() -> None:
    """Every ResultSelector also picks elapsed_ms, which run_step (not the step) adds to the result."""
    tree = ast.parse((ROOT / "layers" / "shared" / "pipeline" / "observability.py").read_text(encoding="utf-8"))
    [run_step_def] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run_step"]
    added = {
        key.value
        for node in ast.walk(run_step_def)
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Dict)
        for key in node.value.keys
        if isinstance(key, ast.Constant)
    }
    assert "elapsed_ms" in added


@pytest.mark.parametrize("name", RESULT_STATES)
def test_result_selector_picks_fields_the_step_returns(
    name: str, asl: dict[str, Any], function_dirs: dict[str, Path]
) -> None:
    returned = returned_keys(step_function(function_dirs[STATE_FUNCTIONS[name]])) | {"elapsed_ms"}  # run_step adds it
    selected = {v.removeprefix("$.Payload.").split(".")[0] for v in asl["States"][name]["ResultSelector"].values()}
    assert selected - returned == set()


def test_validate_answers_what_the_states_after_it_read(asl: dict[str, Any], function_dirs: dict[str, Path]) -> None:
    assert step_function(function_dirs["ValidateFunction"]) == "validate"
    answered = returned_keys("validate") | {"elapsed_ms"}
    reads = top_keys_read(asl)
    assert reads[ROUTE] | reads["Resize"] | reads[REMOVE] | {"elapsed_ms"} <= answered
    assert {"outcome", "source", "image", "step", "error"} <= answered


@pytest.mark.parametrize("function", sorted(STUBS))
def test_walk_stubs_are_shaped_as_the_steps_answer(function: str, function_dirs: dict[str, Path]) -> None:
    """The walk's stand-ins for the steps it does not run return exactly the keys their code returns."""
    stub = STUBS[function]({"image": {}, "outputs": []})
    assert set(stub) == returned_keys(step_function(function_dirs[function]))


def test_validate_handler_takes_the_raw_input(asl: dict[str, Any], function_dirs: dict[str, Path]) -> None:
    handler = (function_dirs["ValidateFunction"] / "app.py").read_text(encoding="utf-8")
    assert "@event_source(data_class=ValidateEvent)" in handler
    assert asl["States"][VALIDATE]["Parameters"]["Payload"]["input.$"] == "$"
    # Any input, however malformed, is wrapped; reading it is what names the rejection.
    malformed: list[Any] = [{"hello": "world"}, [], "text", None, {"input": 1, "execution": "not an ARN"}]
    for execution_input in malformed:
        assert ValidateEvent(execution_input).input == execution_input
        wrapped = ValidateEvent({"input": execution_input, "execution": EXECUTION})
        assert (wrapped.input, wrapped.execution) == (execution_input, EXECUTION)


@pytest.mark.parametrize("name", [n for n in LAMBDA_STATES if n != VALIDATE])
def test_payload_gives_the_step_what_it_reads(name: str, asl: dict[str, Any], function_dirs: dict[str, Path]) -> None:
    handler = (function_dirs[STATE_FUNCTIONS[name]] / "app.py").read_text(encoding="utf-8")
    event_class = EVENT_CLASSES[name]
    assert f"@event_source(data_class={event_class.__name__})" in handler
    required = set(event_class.required)
    assert required, "the step's event class should name the fields it needs"
    sent = {key.removesuffix(".$") for key in asl["States"][name]["Parameters"]["Payload"]}
    assert required - sent == set(), f"{name} needs {sorted(required - sent)}"
    properties = {n for n in dir(event_class) if isinstance(getattr(event_class, n, None), property)}
    optional = {"durations", "started"} & properties  # read with defaults by NotifyEvent
    # "execution" is read by every handler: logger.inject_lambda_context(correlation_id_path="execution").
    assert sent - required - optional - {"execution"} == set(), f"{name} is sent fields it never reads"


# ---------------------------------------------------------------- negative controls of the walk


def test_walk_fails_on_a_path_nobody_wrote(asl: dict[str, Any]) -> None:
    broken = copy.deepcopy(asl)
    broken["States"]["Store"]["Parameters"]["Payload"]["image.$"] = "$.validated.image"
    with pytest.raises(KeyError, match=r"\$\.validated\.image"):
        walk(broken, MANUAL_INPUT)


def test_walk_fails_on_a_payload_the_step_cannot_read(asl: dict[str, Any]) -> None:
    broken = copy.deepcopy(asl)
    del broken["States"]["Watermark"]["Parameters"]["Payload"]["renditions.$"]
    with pytest.raises(errors.InvalidInput, match="renditions"):
        walk(broken, MANUAL_INPUT)


def test_walk_notices_an_uncaught_error(asl: dict[str, Any]) -> None:
    broken = copy.deepcopy(asl)
    del broken["States"]["Store"]["Catch"]
    pipeline = Pipeline()
    pipeline.fail("Store")
    with pytest.raises(AssertionError, match="Store: TransientError is not caught"):
        walk(broken, MANUAL_INPUT, pipeline)


def test_walk_notices_a_missing_branch(asl: dict[str, Any]) -> None:
    """Without its DELETED branch, Route would report a deletion as a failure: the route test would see it."""
    broken = copy.deepcopy(asl)
    broken["States"][ROUTE]["Choices"] = [c for c in broken["States"][ROUTE]["Choices"] if c["Next"] != REMOVE]
    pipeline, event = deleted_source()
    assert walk(broken, event, pipeline).visited == [VALIDATE, ROUTE, *FAILURE_TAIL]
