"""Every test case of MockConfigFile.json, with the same assertions on every engine.

Asserted from get_execution_history: the final status, the error and cause, the exact sequence
of states entered, and the number of attempts of each task state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.statemachine.conftest import MANUAL_INPUT, MOCK_CONFIG, Engine

START = ["Read Upload", "From Manual Input"]
TASKS = ["Validate", "Resize", "Watermark", "Store", "Notify"]
FAILED_END = ["Cleanup", "Publish Failure", "Failed"]


@dataclass(frozen=True)
class Expected:
    status: str
    path: list[str]
    attempts: dict[str, int]
    error: str | None = None
    cause: str | None = None
    document: dict[str, Any] = field(default_factory=lambda: dict(MANUAL_INPUT))


def cause_of(response: str, attempt: str) -> str:
    """The Cause a mocked response throws, read from the mock config itself."""
    config = json.loads(MOCK_CONFIG.read_text())
    return str(config["MockedResponses"][response][attempt]["Throw"]["Cause"])


def _cases() -> dict[str, Expected]:
    cases = {"HappyPath": Expected("SUCCEEDED", [*START, *TASKS, "Done"], dict.fromkeys(TASKS, 1))}
    for i, task in enumerate(TASKS):
        cases[f"{task}RetriedThenSucceeds"] = Expected(
            "SUCCEEDED", [*START, *TASKS, "Done"], {**dict.fromkeys(TASKS, 1), task: 3}
        )
        cases[f"{task}RetriesExhausted"] = Expected(
            "FAILED",
            [*START, *TASKS[: i + 1], *FAILED_END],
            {**dict.fromkeys(TASKS[:i], 1), task: 4, "Cleanup": 1, "Publish Failure": 1},
            "TransientError",
            cause_of(f"{task}TransientExhausted", "0-3"),
        )
    for error in ("EmptyObject", "UnsupportedFormat", "CorruptImage", "ObjectTooLarge", "TooManyPixels"):
        cases[f"Validate{error}"] = Expected(
            "FAILED",
            [*START, "Validate", *FAILED_END],
            {"Validate": 1, "Cleanup": 1, "Publish Failure": 1},
            error,
            cause_of(f"Validate{error}", "0"),
        )
    for error in ("SourceMissing", "InvalidInput"):
        cases[f"Validate{error}"] = Expected(
            "FAILED",
            [*START, "Validate", *FAILED_END],
            {"Validate": 1, "Cleanup": 1, "Publish Failure": 1},
            error,
            cause_of(f"Validate{error}", "0"),
        )
    cases["ResizeCorruptImage"] = Expected(
        "FAILED",
        [*START, "Validate", "Resize", *FAILED_END],
        {"Validate": 1, "Resize": 1, "Cleanup": 1, "Publish Failure": 1},
        "CorruptImage",
        cause_of("ResizeCorruptImage", "0"),
    )
    cases["ResizeLambdaServiceExhausted"] = Expected(
        "FAILED",
        [*START, "Validate", "Resize", *FAILED_END],
        {"Validate": 1, "Resize": 5, "Cleanup": 1, "Publish Failure": 1},
        "Lambda.ServiceException",
        cause_of("ResizeLambdaServiceExhausted", "0-4"),
    )
    cases["SuccessPublishFails"] = Expected(
        "FAILED",
        [*START, *TASKS, *FAILED_END],
        {**dict.fromkeys(TASKS[:4], 1), "Notify": 4, "Cleanup": 1, "Publish Failure": 1},
        "TransientError",
        cause_of("NotifyTransientExhausted", "0-3"),
    )
    # When the failure message itself cannot be published, the execution still fails with the step's error.
    cases["FailurePublishFails"] = Expected(
        "FAILED",
        [*START, "Validate", *FAILED_END],
        {"Validate": 1, "Cleanup": 1, "Publish Failure": 4},
        "EmptyObject",
        cause_of("ValidateEmptyObject", "0"),
    )
    # A clean-up that keeps failing is retried, then the step's own error is still published and raised.
    cases["CleanupFails"] = Expected(
        "FAILED",
        [*START, "Validate", "Resize", *FAILED_END],
        {"Validate": 1, "Resize": 1, "Cleanup": 4, "Publish Failure": 1},
        "CorruptImage",
        cause_of("ResizeCorruptImage", "0"),
    )
    cases["InputRejected"] = Expected(
        "FAILED",
        ["Read Upload", "Reject Input", "Publish Failure", "Failed"],
        {"Publish Failure": 1},
        "InvalidInput",
        'The execution input is neither an S3 Object Created event nor an object {"bucket": ..., "key": ...}.',
        {"image": "uploads/photo.jpg"},
    )
    return cases


CASES = _cases()


def test_every_case_in_the_mock_config_is_asserted() -> None:
    config = json.loads(MOCK_CONFIG.read_text())
    assert set(config["StateMachines"]["ImagePipeline"]["TestCases"]) == set(CASES)


def states_entered(events: list[dict[str, Any]]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]


def attempts(events: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    current = None
    for event in events:
        if event["type"].endswith("StateEntered"):
            current = event["stateEnteredEventDetails"]["name"]
        elif event["type"] == "TaskScheduled" and current is not None:
            counts[current] = counts.get(current, 0) + 1
    return counts


@pytest.mark.parametrize("case", sorted(CASES))
def test_case(engine: Engine, case: str) -> None:
    expected = CASES[case]
    run = engine.run(case, expected.document)
    described, events = run["described"], run["events"]
    assert described["status"] == expected.status, described.get("cause")
    assert states_entered(events) == expected.path
    assert attempts(events) == expected.attempts
    assert described.get("error") == expected.error
    assert described.get("cause") == expected.cause
    if expected.status == "FAILED":
        failed = [e for e in events if e["type"] == "ExecutionFailed"]
        assert failed[0]["executionFailedEventDetails"]["error"] == expected.error
