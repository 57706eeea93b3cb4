"""Retry waits follow IntervalSeconds, BackoffRate and MaxDelaySeconds (engine time scaled down).

The interpreter records the waits it asks for, unscaled (`localcloud.services.stepfunctions.interpreter.retry_waits`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from localcloud.services.stepfunctions import interpreter
from tests.statemachine.conftest import ASL, MANUAL_INPUT, Engine, definition

#: What the ASL's retriers must produce, attempt by attempt.
LAMBDA_SERVICE_WAITS = [1.0, 2.0, 4.0, 8.0]  # IntervalSeconds 1, BackoffRate 2, MaxAttempts 4
TRANSIENT_WAITS = [2.0, 4.0, 8.0]  # IntervalSeconds 2, BackoffRate 2, MaxAttempts 3
PUBLISH_WAITS = [1.0, 2.0, 4.0]  # the sns:publish states: IntervalSeconds 1, BackoffRate 2, MaxAttempts 3


def without_jitter(asl: dict[str, Any], max_attempts: int | None = None) -> dict[str, Any]:
    for state in asl["States"].values():
        for retrier in state.get("Retry", []):
            retrier.pop("JitterStrategy", None)
            if max_attempts is not None:
                retrier["MaxAttempts"] = max_attempts
    return asl


@pytest.fixture
def embedded(engine: Engine) -> Engine:
    if engine.cloud is None:
        pytest.skip("waits are read from the embedded engine's interpreter")
    # The same test cases, for copies of the state machine under other names.
    machines = engine.cloud.mock_config["StateMachines"]  # type: ignore[index]
    for name in ("ImagePipelineNoJitter", "ImagePipelineLongRetries"):
        machines[name] = machines["ImagePipeline"]
    return engine


def waits_of(engine: Engine, case: str, machine: str) -> list[float]:
    before = len(interpreter.retry_waits())
    run = engine.run(case, MANUAL_INPUT, machine=machine)
    assert run["described"]["status"] == "FAILED"
    return interpreter.retry_waits()[before:]


@pytest.mark.parametrize(
    ("case", "waits"),
    [
        ("ResizeLambdaServiceExhausted", LAMBDA_SERVICE_WAITS),
        ("ValidateLambdaServiceExceptionExhausted", LAMBDA_SERVICE_WAITS),
        ("StoreRetriesExhausted", TRANSIENT_WAITS),
        ("ValidateTimedOutExhausted", TRANSIENT_WAITS),
        ("RemoveOutputsRetriesExhausted", TRANSIENT_WAITS),
        ("CleanupFails", TRANSIENT_WAITS),  # Resize's CorruptImage is not retried; Cleanup's TransientError is
        ("FailurePublishFails", PUBLISH_WAITS),
        ("UnreportedFailurePublishFails", TRANSIENT_WAITS + PUBLISH_WAITS),
    ],
)
def test_waits_grow_by_the_backoff_rate(embedded: Engine, case: str, waits: list[float]) -> None:
    if "ImagePipelineNoJitter" not in embedded.arns:
        embedded.create("ImagePipelineNoJitter", definition(without_jitter(json.loads(ASL.read_text()))))
    assert waits_of(embedded, case, "ImagePipelineNoJitter") == waits


def test_waits_are_capped_by_max_delay(embedded: Engine) -> None:
    """With more attempts than the ASL allows, the Lambda retrier's waits stop at MaxDelaySeconds (16)."""
    asl = without_jitter(json.loads(ASL.read_text()), max_attempts=6)
    embedded.create("ImagePipelineLongRetries", definition(asl))
    assert embedded.cloud is not None
    machines: Any = embedded.cloud.mock_config
    machines["MockedResponses"]["ResizeLambdaServiceExhausted6"] = {
        "0-6": {"Throw": {"Error": "Lambda.ServiceException", "Cause": "Lambda is unavailable"}}
    }
    machines["StateMachines"]["ImagePipelineLongRetries"] = {
        "TestCases": {
            "LongRetries": {
                "Validate": "ValidateProcess",
                "Resize": "ResizeLambdaServiceExhausted6",
                "Cleanup": "CleanupAfterResizeLambdaServiceExhausted",
                "Publish Failure": "PublishOK",
            }
        }
    }
    assert waits_of(embedded, "LongRetries", "ImagePipelineLongRetries") == [1.0, 2.0, 4.0, 8.0, 16.0, 16.0]


def test_full_jitter_keeps_each_wait_within_its_backoff_bound(embedded: Engine) -> None:
    waits = waits_of(embedded, "ResizeLambdaServiceExhausted", "ImagePipeline")
    assert len(waits) == len(LAMBDA_SERVICE_WAITS)
    assert all(0 <= wait <= bound for wait, bound in zip(waits, LAMBDA_SERVICE_WAITS, strict=True)), waits
    assert waits != LAMBDA_SERVICE_WAITS, "FULL jitter draws each wait at random below its bound"
