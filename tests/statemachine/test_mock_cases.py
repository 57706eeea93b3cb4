"""Every test case of MockConfigFile.json, with the same assertions on every engine.

Asserted from get_execution_history: the final status, the error and cause, the exact sequence
of states entered, and the number of attempts of each task state. Every case also checks, with
the pipeline's own code, what crosses the state machine: each Lambda's Payload is accepted by its
step's event class, Validate receives the execution input unchanged, the mocked Cleanup answers
what the real one answers for the state it receives, and the failure messages published are the
ones Cleanup wrote. The mocked responses themselves are checked against the functions' result
shapes, and the inputs (events/*.json) against what the Validate mocks claim to have read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from pipeline import errors, messages
from pipeline.events import (
    CleanupEvent,
    NotifyEvent,
    RemoveEvent,
    ResizeEvent,
    StoreEvent,
    ValidateEvent,
    WatermarkEvent,
)
from pipeline.models import ImageInfo, ObjectRef, Output, StagedImage
from tests.statemachine.conftest import MANUAL_INPUT, MOCK_CONFIG, NAME, SOURCE_BUCKET, UPLOAD_PREFIX, Engine, sample

CONFIG: dict[str, Any] = json.loads(MOCK_CONFIG.read_text(encoding="utf-8"))
TEST_CASES: dict[str, dict[str, str]] = CONFIG["StateMachines"][NAME]["TestCases"]
RESPONSES: dict[str, dict[str, Any]] = CONFIG["MockedResponses"]

TASKS = ["Validate", "Resize", "Watermark", "Store", "Notify"]
#: A successful execution: the tasks, and the Route between Validate and Resize.
PROCESS = ["Validate", "Route", "Resize", "Watermark", "Store", "Notify"]
REPORTED = ["Cleanup", "Failed or Superseded", "Publish Failure", "Failed"]
UNREPORTED = ["Cleanup", "Cleanup Failed", "Publish Unreported Failure", "Failed"]
#: The cause of an execution whose failure branch could not run (the Cleanup Failed state's).
UNREPORTED_CAUSE = "the failure branch could not run; the execution history holds the error"
CREATED = sample("s3-object-created.json")
DELETED = sample("s3-object-deleted.json")
#: Each Lambda task of the pipeline, and its step's name (in failure messages: CleanupEvent.failed_step).
STEPS = {
    "Validate": "validate",
    "Resize": "resize",
    "Watermark": "watermark",
    "Store": "store",
    "Notify": "notify",
    "Remove Outputs": "remove",
}
LAMBDA_STATES = {*STEPS, "Cleanup"}
SNS_STATES = {"Publish Failure", "Publish Unreported Failure"}
REQUEST_ID = "c0ffee00-1111-4222-8333-444455556666"
MESSAGE_ID = "5f1e0c4e-0000-4000-8000-000000000001"
DELETED_MESSAGE_ID = "5f1e0c4e-0000-4000-8000-000000000002"


@dataclass(frozen=True)
class Expected:
    status: str
    path: list[str]
    attempts: dict[str, int]
    error: str | None = None
    cause: str | None = None
    document: Any = field(default_factory=lambda: dict(MANUAL_INPUT))
    #: For a succeeded execution: values in its output, by dotted path.
    output: dict[str, Any] = field(default_factory=dict)


def thrown_cause(response: str, attempt: str) -> str:
    """The Cause a mocked response throws, as the Lambda runtime wrote it (read from the mock config)."""
    return str(RESPONSES[response][attempt]["Throw"]["Cause"])


def exhausted(step: str) -> str:
    return f"{step}: S3 kept answering: SlowDown (503), retry later"


def reported(
    path: list[str],
    attempts: dict[str, int],
    error: str,
    cause: str,
    document: Any = None,
    cleanup: int = 1,
    publish: int = 1,
) -> Expected:
    """A failure Cleanup handled and Publish Failure published: the execution fails with Cleanup's error."""
    return Expected(
        "FAILED",
        [*path, *REPORTED],
        {**attempts, "Cleanup": cleanup, "Publish Failure": publish},
        error,
        cause,
        dict(MANUAL_INPUT) if document is None else document,
    )


#: Validate's rejections: (error, one-line cause, input).
REJECTIONS: dict[str, tuple[str, str, Any]] = {
    "CorruptImage": ("CorruptImage", "the JPEG data is truncated (its end marker is missing)", MANUAL_INPUT),
    "EmptyObject": ("EmptyObject", "the object is empty (0 bytes)", sample("failure-empty-object.json")),
    "InvalidInput": (
        "InvalidInput",
        'the input is neither an S3 Object Created or Deleted event nor {"bucket": ..., "key": ...}',
        sample("failure-invalid-input.json"),
    ),
    "OutsidePrefix": (
        "InvalidInput",
        "'private/secret.jpg' is outside the upload prefix 'uploads/'",
        sample("failure-outside-prefix.json"),
    ),
    "UnsupportedFormat": (
        "UnsupportedFormat",
        "the content is text, not a supported image",
        sample("failure-unsupported-format.json"),
    ),
    "SourceMissing": (
        "SourceMissing",
        "s3://source-bucket/'uploads/does-not-exist.jpg' does not exist",
        sample("failure-missing-object.json"),
    ),
    "ObjectTooLarge": ("ObjectTooLarge", "the object has 60000000 bytes; the limit is 52428800", MANUAL_INPUT),
    "TooManyPixels": ("TooManyPixels", "100000x100000 is 10000000000 pixels; the limit is 50000000", MANUAL_INPUT),
    "UnsupportedDimensions": (
        "UnsupportedDimensions",
        "the 400x70000 image makes a 400x70000 rendition, larger than JPEG allows (65500 px a side)",
        MANUAL_INPUT,
    ),
}


def _cases() -> dict[str, Expected]:
    ok = dict.fromkeys(TASKS, 1)
    cases = {
        "HappyPath": Expected(
            "SUCCEEDED",
            PROCESS,
            ok,
            output={"stored.outcome": "STORED", "notified": {"outcome": "SUCCEEDED", "message_id": MESSAGE_ID}},
        ),
        "HappyPathFromS3Event": Expected(
            "SUCCEEDED", PROCESS, ok, document=CREATED, output={"stored.outcome": "STORED"}
        ),
        # Store found the source replaced: nothing stored, nothing announced, and no failure either.
        "StoreSuperseded": Expected(
            "SUCCEEDED",
            PROCESS,
            ok,
            output={
                "stored.outcome": "SUPERSEDED",
                "stored.manifest": None,
                "notified": {"outcome": "SUPERSEDED", "message_id": None},
            },
        ),
        "ValidateSuperseded": Expected(
            "SUCCEEDED",
            ["Validate", "Route", "Superseded"],
            {"Validate": 1},
            document=CREATED,
            output={"outcome": "SUPERSEDED"},
        ),
        "ObjectDeleted": Expected(
            "SUCCEEDED",
            ["Validate", "Route", "Remove Outputs"],
            {"Validate": 1, "Remove Outputs": 1},
            document=DELETED,
            output={"outcome": "DELETED", "removed.outcome": "DELETED", "removed.message_id": DELETED_MESSAGE_ID},
        ),
    }
    # Retried then succeeds, retries exhausted: for every Lambda task of the pipeline.
    for task in TASKS:
        cases[f"{task}RetriedThenSucceeds"] = Expected("SUCCEEDED", PROCESS, {**ok, task: 3})
        before = PROCESS[: PROCESS.index(task)]
        attempts = {name: 1 for name in before if name != "Route"}
        if task == "Validate":
            # Validate did not answer: its Catch keeps the error as the whole state, named by Validate Failed.
            cases["ValidateRetriesExhausted"] = reported(
                ["Validate", "Validate Failed"], {"Validate": 4}, "TransientError", exhausted("validate")
            )
        else:
            cases[f"{task}RetriesExhausted"] = reported(
                [*before, task], {**attempts, task: 4}, "TransientError", exhausted(STEPS[task])
            )
    cases["RemoveOutputsRetriedThenSucceeds"] = Expected(
        "SUCCEEDED",
        ["Validate", "Route", "Remove Outputs"],
        {"Validate": 1, "Remove Outputs": 3},
        document=DELETED,
        output={"removed.outcome": "DELETED"},
    )
    cases["RemoveOutputsRetriesExhausted"] = reported(
        ["Validate", "Route", "Remove Outputs"],
        {"Validate": 1, "Remove Outputs": 4},
        "TransientError",
        exhausted("remove"),
        DELETED,
    )
    # Validate's Lambda itself fails (never answers): retried per its retrier, then Validate Failed.
    cases["ValidateTimedOutExhausted"] = reported(
        ["Validate", "Validate Failed"],
        {"Validate": 4},
        "Sandbox.Timedout",
        f"RequestId: {REQUEST_ID} Error: Task timed out after 20.00 seconds",
    )
    cases["ValidateLambdaServiceExceptionExhausted"] = reported(
        ["Validate", "Validate Failed"],
        {"Validate": 5},
        "Lambda.ServiceException",
        thrown_cause("ValidateLambdaServiceExceptionExhausted", "0-4"),  # not the runtime's JSON: kept whole
    )
    cases["ValidateInternalError"] = reported(
        ["Validate", "Validate Failed"], {"Validate": 1}, "InternalError", "KeyError: 'ContentLength'"
    )
    # Validate answers REJECTED: never retried, Route sends it to the failure branch.
    for name, (error, cause, document) in REJECTIONS.items():
        cases[f"ValidateRejected{name}"] = reported(["Validate", "Route"], {"Validate": 1}, error, cause, document)
    # A custom error, caught at once (not retried), for every task after Validate.
    cases["ResizeCorruptImage"] = reported(
        PROCESS[:3], {"Validate": 1, "Resize": 1}, "CorruptImage", "the JPEG data cannot be decoded: broken data stream"
    )
    cases["WatermarkSourceMissing"] = reported(
        PROCESS[:4],
        {"Validate": 1, "Resize": 1, "Watermark": 1},
        "SourceMissing",
        "GET s3://staging-bucket/staging/ed7c9d16ffedbd679361afa86eae56a16276f748/resized/640w.tiff: "
        "the object does not exist",
    )
    cases["StoreInternalError"] = reported(
        PROCESS[:5],
        {"Validate": 1, "Resize": 1, "Watermark": 1, "Store": 1},
        "InternalError",
        "KeyError: 'content_type'",
    )
    cases["NotifyInvalidInput"] = reported(
        PROCESS, ok, "InvalidInput", "the step input's stored result needs a manifest"
    )
    cases["RemoveOutputsInternalError"] = reported(
        ["Validate", "Route", "Remove Outputs"],
        {"Validate": 1, "Remove Outputs": 1},
        "InternalError",
        "TypeError: 'NoneType' object is not iterable",
        DELETED,
    )
    cases["ResizeLambdaServiceExhausted"] = reported(
        PROCESS[:3],
        {"Validate": 1, "Resize": 5},
        "Lambda.ServiceException",
        thrown_cause("ResizeLambdaServiceExhausted", "0-4"),
    )
    # Cleanup finds the failed revision replaced or deleted: the failure is moot, the execution succeeds.
    cases["CleanupFindsSourceSuperseded"] = Expected(
        "SUCCEEDED",
        [*PROCESS[:5], "Cleanup", "Failed or Superseded", "Superseded"],
        {"Validate": 1, "Resize": 1, "Watermark": 1, "Store": 4, "Cleanup": 1},
        output={"outcome": "SUPERSEDED", "error": {"Error": "TransientError", "Cause": exhausted("store")}},
    )
    cases["CleanupFindsRejectedSourceSuperseded"] = Expected(
        "SUCCEEDED",
        ["Validate", "Route", "Cleanup", "Failed or Superseded", "Superseded"],
        {"Validate": 1, "Cleanup": 1},
        output={"outcome": "SUPERSEDED", "error.Error": "CorruptImage"},
    )
    # The failure branch's own tasks.
    cases["CleanupRetriedThenSucceeds"] = reported(
        PROCESS[:3],
        {"Validate": 1, "Resize": 1},
        "CorruptImage",
        "the JPEG data cannot be decoded: broken data stream",
        cleanup=3,
    )
    # A Cleanup that keeps failing: the fixed message is published, and the step's own error name raised
    # with a fixed cause (the caught Cause may be absent, or the Lambda runtime's JSON with a stack trace).
    unreported = {"Cleanup": 4, "Publish Unreported Failure": 1}
    cases["CleanupFails"] = Expected(
        "FAILED",
        [*PROCESS[:3], *UNREPORTED],
        {"Validate": 1, "Resize": 1, **unreported},
        "CorruptImage",
        UNREPORTED_CAUSE,
    )
    cases["CleanupFailsAfterValidateTimedOut"] = Expected(
        "FAILED",
        ["Validate", "Validate Failed", *UNREPORTED],
        {"Validate": 4, **unreported},
        "Sandbox.Timedout",
        UNREPORTED_CAUSE,
    )
    cases["CleanupFailsAfterRejection"] = Expected(
        "FAILED",
        ["Validate", "Route", *UNREPORTED],
        {"Validate": 1, **unreported},
        "InvalidInput",
        UNREPORTED_CAUSE,
        REJECTIONS["InvalidInput"][2],
    )
    cases["CleanupFailsAfterRemoveOutputsFailed"] = Expected(
        "FAILED",
        ["Validate", "Route", "Remove Outputs", *UNREPORTED],
        {"Validate": 1, "Remove Outputs": 1, **unreported},
        "InternalError",
        UNREPORTED_CAUSE,
        DELETED,
    )
    # When no failure message can be published, the execution still fails with the step's error.
    cases["UnreportedFailurePublishFails"] = Expected(
        "FAILED",
        [*PROCESS[:3], *UNREPORTED],
        {"Validate": 1, "Resize": 1, "Cleanup": 4, "Publish Unreported Failure": 4},
        "CorruptImage",
        UNREPORTED_CAUSE,
    )
    empty_error, empty_cause, empty_input = REJECTIONS["EmptyObject"]
    cases["FailurePublishFails"] = reported(
        ["Validate", "Route"], {"Validate": 1}, empty_error, empty_cause, empty_input, publish=4
    )
    cases["PublishFailureRetriedThenSucceeds"] = reported(
        ["Validate", "Route"], {"Validate": 1}, empty_error, empty_cause, empty_input, publish=2
    )
    return cases


CASES = _cases()

#: Where LocalStack deviates from AWS's documented behaviour on a case: the case, the AWS documentation it
#: deviates from, and what LocalStack does instead. Only LocalStack's expectation changes (every other engine
#: is held to AWS's), and docs/testing.md lists each one. None with localstack-core 2026.3.0: every case
#: behaves as AWS documents it there.
LOCALSTACK_DEVIATIONS: dict[str, tuple[str, Expected]] = {}


def expected_on(engine: Engine, case: str) -> Expected:
    if engine.name == "localstack" and case in LOCALSTACK_DEVIATIONS:
        return LOCALSTACK_DEVIATIONS[case][1]
    return CASES[case]


# -- reading the execution history ------------------------------------------------------------


def states_entered(events: list[dict[str, Any]]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]


def task_events(events: list[dict[str, Any]], kind: str) -> list[tuple[str, dict[str, Any]]]:
    """(state, details) of each Task<kind> event: the parameters of TaskScheduled, the output of TaskSucceeded."""
    found: list[tuple[str, dict[str, Any]]] = []
    current = ""
    for event in events:
        if event["type"].endswith("StateEntered"):
            current = event["stateEnteredEventDetails"]["name"]
        elif event["type"] == f"Task{kind}":
            details = event[f"task{kind}EventDetails"]
            found.append((current, json.loads(details["parameters" if kind == "Scheduled" else "output"])))
    return found


def attempts(events: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state, _ in task_events(events, "Scheduled"):
        counts[state] = counts.get(state, 0) + 1
    return counts


def dig(document: Any, path: str) -> Any:
    for part in path.split("."):
        document = document[part]
    return document


# -- what crosses the state machine, checked with the pipeline's own code -----------------------


def check_payload(state: str, payload: Any) -> None:
    """The Payload a Lambda state sends is one its step's event class accepts (InvalidInput otherwise)."""
    if state == "Validate":
        return  # any input: compared with the execution input instead
    event: ResizeEvent | WatermarkEvent | StoreEvent | NotifyEvent | RemoveEvent | CleanupEvent
    if state == "Resize":
        event = ResizeEvent(payload)
        assert has_shape(event.source, ObjectRef)
        assert has_shape(event.image, ImageInfo)
    elif state == "Watermark":
        event = WatermarkEvent(payload)
        assert has_shape(event.source, ObjectRef)
        assert all(has_shape(r, StagedImage) for r in event.renditions)
    elif state == "Store":
        event = StoreEvent(payload)
        assert has_shape(event.source, ObjectRef)
        assert has_shape(event.image, ImageInfo)
        assert all(has_shape(o, Output) for o in event.outputs)
    elif state == "Notify":
        event = NotifyEvent(payload)
        assert has_shape(event.source, ObjectRef)
        assert has_shape(event.image, ImageInfo)
        assert event.started is not None
        if event.outcome != "SUPERSEDED":
            assert event.manifest
            assert event.renditions
        assert set(event.durations) == {"validate", "resize", "watermark", "store"}, payload["durations"]
    elif state == "Remove Outputs":
        event = RemoveEvent(payload)
        assert set(event.source) == {"bucket", "key", "revision"}
    elif state == "Cleanup":
        event = CleanupEvent(payload)
        assert set(event.error) == {"Error", "Cause"}
        assert event.failed_step in set(STEPS.values())
    else:
        raise AssertionError(f"no event class for {state!r}")
    assert event.execution.startswith("arn:aws:states:"), "every step gets the execution's id"


def real_cleanup(payload: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """The error and failure message the real Cleanup returns for ``payload`` (steps.cleanup, less its S3 work)."""
    event = CleanupEvent(payload)
    error = event.error
    reason = messages.one_line(error["Cause"])
    message = messages.failure_message(
        execution=event.execution,
        error=error["Error"],
        reason=reason,
        step=event.failed_step,
        source=event.reported_source,
    )
    return {"Error": error["Error"], "Cause": reason}, message


def check_failure_branch(events: list[dict[str, Any]], execution: str) -> None:
    scheduled = task_events(events, "Scheduled")
    results = dict(task_events(events, "Succeeded"))
    cleanup_inputs = [params["Payload"] for state, params in scheduled if state == "Cleanup"]
    if not cleanup_inputs:
        return
    payload = cleanup_inputs[-1]
    assert payload["execution"] == execution
    if "Cleanup" in results:
        answer = results["Cleanup"]["Payload"]
        error, message = real_cleanup(payload)
        assert answer["error"] == error, "the mocked Cleanup must answer what the real one answers"
        assert {**answer["message"], "execution": execution} == message
        assert answer["outcome"] in ("FAILED", "SUPERSEDED")
        for state, params in scheduled:
            if state == "Publish Failure":
                assert params["Message"] == answer["message"]
                assert params["MessageAttributes"]["status"]["StringValue"] == "FAILED"
                assert params["MessageAttributes"]["error"]["StringValue"] == error["Error"]
    for state, params in scheduled:
        if state == "Publish Unreported Failure":
            original = payload["state"]["error"]["Error"]
            assert params["Message"] == {
                "status": "FAILED",
                "error": original,
                "reason": "the failure branch could not run; the execution history holds the error",
                "step": "cleanup",
                "execution": execution,
            }
            assert params["MessageAttributes"]["error"]["StringValue"] == original


# -- the cases ----------------------------------------------------------------------------------


def test_every_case_in_the_mock_config_is_asserted() -> None:
    assert set(TEST_CASES) == set(CASES)


def test_every_localstack_deviation_names_a_case_and_the_aws_documentation() -> None:
    for case, (aws_doc, _) in LOCALSTACK_DEVIATIONS.items():
        assert case in CASES
        assert aws_doc.startswith("https://docs.aws.amazon.com/step-functions/"), case


def test_every_mocked_response_is_used() -> None:
    machines = CONFIG["StateMachines"].values()
    assert {name for m in machines for case in m["TestCases"].values() for name in case.values()} == set(RESPONSES)


def test_the_timing_machines_mock_as_the_pipeline_does() -> None:
    """test_retry_timing.py runs copies of the pipeline under other names: their cases are the pipeline's own."""
    for case, states in CONFIG["StateMachines"]["ImagePipelineNoJitter"]["TestCases"].items():
        assert states == TEST_CASES[case], case


@pytest.fixture(scope="module")
def cases_engine(engine: Engine) -> Engine:
    """The engine, every case already started on it where Retry intervals last for real (they run at once)."""
    if engine.real_time:
        engine.start_all((case, expected.document) for case, expected in sorted(CASES.items()))
    return engine


@pytest.mark.parametrize("case", sorted(CASES))
def test_case(cases_engine: Engine, case: str) -> None:
    engine = cases_engine
    expected = expected_on(engine, case)
    run = engine.run(case, expected.document)
    described, events = run["described"], run["events"]
    assert described["status"] == expected.status, described.get("cause")
    assert states_entered(events) == expected.path
    assert attempts(events) == expected.attempts
    assert described.get("error") == expected.error
    assert described.get("cause") == expected.cause
    if expected.status == "FAILED":
        [failed] = [e["executionFailedEventDetails"] for e in events if e["type"] == "ExecutionFailed"]
        assert (failed["error"], failed.get("cause")) == (expected.error, expected.cause)
    else:
        output = json.loads(described["output"])
        for path, value in expected.output.items():
            assert dig(output, path) == value, path
    scheduled = task_events(events, "Scheduled")
    assert scheduled[0] == (
        "Validate",
        {
            "FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:Validate",
            "Payload": {"input": expected.document, "execution": described["executionArn"]},
        },
    ), "Validate receives the execution input unchanged, and the execution's ARN"
    for state, params in scheduled:
        if state in LAMBDA_STATES:
            check_payload(state, params["Payload"])
    check_failure_branch(events, described["executionArn"])


# -- the mocks and inputs themselves --------------------------------------------------------------

ERROR_NAMES = {cls.__name__ for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, Exception)}
LAMBDA_ERRORS = {"Lambda.ServiceException", "Lambda.TooManyRequestsException", "Sandbox.Timedout"}
#: The keys of each function's answer (run_step adds elapsed_ms to every one).
RESULT_KEYS = {
    "Resize": {"renditions", "image", "elapsed_ms"},
    "Watermark": {"outputs", "elapsed_ms"},
    "Store": {"outcome", "manifest", "renditions", "elapsed_ms"},
    "Notify": {"outcome", "message_id", "elapsed_ms"},
    "Remove Outputs": {"outcome", "removed", "message_id", "elapsed_ms"},
    "Cleanup": {"outcome", "message", "error", "elapsed_ms"},
}
VALIDATE_KEYS = {
    "PROCESS": {"outcome", "source", "image", "elapsed_ms"},
    "DELETED": {"outcome", "source", "elapsed_ms"},
    "SUPERSEDED": {"outcome", "source", "elapsed_ms"},
    "REJECTED": {"outcome", "step", "source", "error", "elapsed_ms"},
}
OUTCOMES = {
    "Store": {"STORED", "UNCHANGED", "SUPERSEDED"},
    "Notify": {"SUCCEEDED", "SUPERSEDED"},
    "Remove Outputs": {"DELETED", "UNCHANGED"},
    "Cleanup": {"FAILED", "SUPERSEDED"},
}


def has_shape(value: Any, shape: Any) -> bool:
    """``value`` has exactly the keys of the TypedDict ``shape`` (all required ones, no others)."""
    keys = set(value)
    return bool(shape.__required_keys__ <= keys <= shape.__required_keys__ | shape.__optional_keys__)


def mocked(state: str) -> list[tuple[str, dict[str, Any]]]:
    """(response name, outcome) of every attempt mocked for ``state`` in any test case."""
    names = sorted({case[state] for case in TEST_CASES.values() if state in case})
    return [(name, outcome) for name in names for outcome in RESPONSES[name].values()]


def check_validate_answer(payload: dict[str, Any]) -> None:
    outcome = payload["outcome"]
    assert set(payload) == VALIDATE_KEYS[outcome]
    if outcome == "PROCESS":
        assert has_shape(payload["source"], ObjectRef)
        assert has_shape(payload["image"], ImageInfo)
    elif outcome == "REJECTED":
        assert payload["step"] == "validate"
        assert set(payload["error"]) == {"Error", "Cause"}
        assert payload["error"]["Error"] in {c.__name__ for c in errors.ValidationError.__subclasses__()}
        assert payload["error"]["Cause"] == messages.one_line(payload["error"]["Cause"])
    else:
        assert set(payload["source"]) == {"bucket", "key", "revision"}  # messages.source_summary of the decision


def check_answer(state: str, payload: dict[str, Any]) -> None:
    assert set(payload) == RESULT_KEYS[state]
    if state in OUTCOMES:
        assert payload["outcome"] in OUTCOMES[state]
    if state == "Resize":
        assert all(has_shape(r, StagedImage) for r in payload["renditions"])
        assert has_shape(payload["image"], ImageInfo)
    elif state == "Watermark":
        assert all(has_shape(o, Output) for o in payload["outputs"])
    elif state == "Store":
        assert all(has_shape(o, Output) for o in payload["renditions"])
        assert (payload["manifest"] is None) == (payload["outcome"] == "SUPERSEDED")
    elif state == "Cleanup":
        assert set(payload["message"]) == {"status", "error", "reason", "step", "source", "execution"}
        assert payload["message"]["error"] == payload["error"]["Error"]


@pytest.mark.parametrize("state", [*STEPS, "Cleanup", *SNS_STATES])
def test_mocked_responses_have_the_shapes_the_real_tasks_return(state: str) -> None:
    responses = mocked(state)
    assert responses, f"no case mocks {state}"
    for name, outcome in responses:
        if "Throw" in outcome:
            error = outcome["Throw"]["Error"]
            if state in SNS_STATES:
                assert error.startswith("SNS."), name
                continue
            assert error in ERROR_NAMES | LAMBDA_ERRORS, name
            if state == "Validate":
                assert error not in {c.__name__ for c in errors.ValidationError.__subclasses__()}, (
                    f"{name}: Validate returns its rejections, it does not raise them"
                )
            if error in ERROR_NAMES:  # raised by the function: the runtime's JSON is the Cause
                assert json.loads(outcome["Throw"]["Cause"])["errorType"] == error, name
            continue
        returned = outcome["Return"]
        if state in SNS_STATES:
            assert set(returned) == {"MessageId"}, name
            continue
        assert set(returned) == {"StatusCode", "Payload"}, name
        assert returned["StatusCode"] == 200, name
        if state == "Validate":
            check_validate_answer(returned["Payload"])
        else:
            check_answer(state, returned["Payload"])


def validate_answer(case: str) -> dict[str, Any] | None:
    """What the case's Validate mock answers in the end, or None when it only throws."""
    outcome = list(RESPONSES[TEST_CASES[case]["Validate"]].values())[-1]
    return outcome["Return"]["Payload"] if "Return" in outcome else None


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_validate_mock_reads_the_input_as_the_real_validate_does(case: str) -> None:
    """The input of each case (events/*.json where one fits) names what the Validate mock claims to have read."""
    answer = validate_answer(case)
    if answer is None:
        return
    event = ValidateEvent(CASES[case].document)
    if answer["outcome"] == "REJECTED" and answer["source"] is None:
        with pytest.raises(errors.InvalidInput) as rejected:
            event.upload(SOURCE_BUCKET, UPLOAD_PREFIX)
        assert answer["error"] == {"Error": "InvalidInput", "Cause": str(rejected.value)}
        return
    upload = event.upload(SOURCE_BUCKET, UPLOAD_PREFIX)
    assert answer["source"]["bucket"] == upload.bucket
    assert answer["source"]["key"] in upload.candidates
    if answer["outcome"] == "DELETED":
        assert upload.kind == "deleted"
        assert answer["source"]["revision"] == upload.version_id
    elif answer["outcome"] == "SUPERSEDED":
        assert upload.kind == "created"
        assert answer["source"]["revision"] in (upload.version_id, upload.etag)
    else:
        assert upload.kind in ("created", "manual")
        if upload.kind == "created" and answer["outcome"] == "PROCESS":
            assert answer["source"]["etag"] == upload.etag
            assert answer["source"]["size"] == CREATED["detail"]["object"]["size"]


@pytest.mark.parametrize(
    ("name", "rule"), [("s3-object-created.json", "ObjectCreated"), ("s3-object-deleted.json", "ObjectDeleted")]
)
def test_the_s3_event_samples_match_their_rules(template: dict[str, Any], name: str, rule: str) -> None:
    event = sample(name)
    properties = template["Resources"]["ImagePipeline"]["Properties"]["Events"][rule]["Properties"]
    pattern = properties["Pattern"]
    assert event["source"] in pattern["source"]
    assert event["detail-type"] in pattern["detail-type"]
    assert event["detail"]["object"]["key"].startswith(template["Parameters"]["UploadPrefix"]["Default"])
    assert event["detail"]["bucket"]["name"] == SOURCE_BUCKET  # the placeholder, replaced by sample()
