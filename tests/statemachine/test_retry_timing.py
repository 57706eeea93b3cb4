"""Retry waits follow IntervalSeconds, BackoffRate and MaxDelaySeconds, on every engine.

The embedded engine's time is scaled down; its interpreter records the waits it asks for, unscaled
(`localcloud.services.stepfunctions.interpreter.retry_waits`). Where waits last for real (LocalStack),
they are read from the execution history, from each TaskFailed to the next attempt's TaskScheduled,
and every run of this module is started at once: the module takes as long as its longest run.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from localcloud.services.stepfunctions import interpreter
from tests.statemachine.conftest import ASL, MANUAL_INPUT, NAME, Engine, definition

#: What the ASL's retriers must produce, attempt by attempt.
LAMBDA_SERVICE_WAITS = [1.0, 2.0, 4.0, 8.0]  # IntervalSeconds 1, BackoffRate 2, MaxAttempts 4
TRANSIENT_WAITS = [2.0, 4.0, 8.0]  # IntervalSeconds 2, BackoffRate 2, MaxAttempts 3
PUBLISH_WAITS = [1.0, 2.0, 4.0]  # the sns:publish states: IntervalSeconds 1, BackoffRate 2, MaxAttempts 3
#: Copies of the pipeline (their test cases in MockConfigFile.json are the pipeline's own).
NO_JITTER = "ImagePipelineNoJitter"
LONG_RETRIES = "ImagePipelineLongRetries"
WAITS = [
    ("ResizeLambdaServiceExhausted", LAMBDA_SERVICE_WAITS),
    ("ValidateLambdaServiceExceptionExhausted", LAMBDA_SERVICE_WAITS),
    ("StoreRetriesExhausted", TRANSIENT_WAITS),
    ("ValidateTimedOutExhausted", TRANSIENT_WAITS),
    ("RemoveOutputsRetriesExhausted", TRANSIENT_WAITS),
    ("CleanupFails", TRANSIENT_WAITS),  # Resize's CorruptImage is not retried; Cleanup's TransientError is
    ("FailurePublishFails", PUBLISH_WAITS),
    ("UnreportedFailurePublishFails", TRANSIENT_WAITS + PUBLISH_WAITS),
]
#: Where waits last for real (read from the history), a wait is never shorter than asked; how much later it
#: ends is the engine's own work between the two events, which grows with the machine's load (0.1 s for one
#: execution alone on LocalStack, 1.5 s with this module's executions at once on two busy cores): no test
#: here bounds it, except where the bound tells two behaviours apart by a wide margin (see the cap).


def max_delay(engine: Engine) -> int:
    """MaxDelaySeconds of the Lambda retriers in the long-retries copy: the ASL's own (16) on the embedded
    engine; 2 where waits last for real, so that six attempts wait 1 + 2 + 2 + 2 + 2 + 2 s rather than 47 s."""
    return 2 if engine.real_time else 16


def without_jitter(
    asl: dict[str, Any], max_attempts: int | None = None, max_delay: int | None = None
) -> dict[str, Any]:
    for state in asl["States"].values():
        for retrier in state.get("Retry", []):
            retrier.pop("JitterStrategy", None)
            if max_attempts is not None:
                retrier["MaxAttempts"] = max_attempts
            if max_delay is not None and "Lambda.ServiceException" in retrier["ErrorEquals"]:
                assert retrier["MaxDelaySeconds"] == 16, "the ASL's cap changed: update max_delay()"
                retrier["MaxDelaySeconds"] = max_delay
    return asl


@pytest.fixture(scope="module")
def timed(engine: Engine) -> Engine:
    """The engine with the copies of the pipeline; where waits are real, every run of this module started."""
    engine.create(NO_JITTER, definition(without_jitter(json.loads(ASL.read_text()))))
    asl = without_jitter(json.loads(ASL.read_text()), max_attempts=6, max_delay=max_delay(engine))
    engine.create(LONG_RETRIES, definition(asl))
    if engine.real_time:
        engine.start_all(((case, MANUAL_INPUT) for case, _ in WAITS), machine=NO_JITTER)
        engine.start_all([("LongRetries", MANUAL_INPUT)], machine=LONG_RETRIES)
        engine.start_all([("ResizeLambdaServiceExhausted", MANUAL_INPUT)])
    return engine


def history_waits(events: list[dict[str, Any]]) -> list[float]:
    """Seconds from each TaskFailed to the TaskScheduled of the same state's next attempt."""
    waits: list[float] = []
    failed_at: datetime | None = None
    for event in events:
        if event["type"] == "TaskFailed":
            failed_at = event["timestamp"]
        elif event["type"] == "TaskScheduled" and failed_at is not None:
            waits.append((event["timestamp"] - failed_at).total_seconds())
            failed_at = None
        elif event["type"].endswith("StateEntered"):
            failed_at = None
    return waits


def waits_of(engine: Engine, case: str, machine: str) -> list[float]:
    before = len(interpreter.retry_waits())
    run = engine.run(case, MANUAL_INPUT, machine=machine)
    assert run["described"]["status"] == "FAILED"
    if engine.cloud is not None:
        return interpreter.retry_waits()[before:]
    return history_waits(run["events"])


def assert_waits(engine: Engine, waits: list[float], expected: list[float], below: list[float] | None = None) -> None:
    """The embedded engine's waits exactly; real waits at least as asked, and under ``below`` where given."""
    if engine.cloud is not None:
        assert waits == expected
        return
    assert len(waits) == len(expected), waits
    assert all(wait >= want - 0.01 for wait, want in zip(waits, expected, strict=True)), waits
    if below is not None:
        assert all(wait < limit for wait, limit in zip(waits, below, strict=True)), (waits, below)


@pytest.mark.parametrize(("case", "waits"), WAITS)
def test_waits_grow_by_the_backoff_rate(timed: Engine, case: str, waits: list[float]) -> None:
    assert_waits(timed, waits_of(timed, case, NO_JITTER), waits)


def test_waits_are_capped_by_max_delay(timed: Engine) -> None:
    """With more attempts than the ASL allows, the Lambda retrier's waits stop at MaxDelaySeconds."""
    cap = max_delay(timed)
    # A capped wait stays below the uncapped one it replaces (at least twice the cap): a margin no load reaches.
    uncapped = [2.0**n if 2.0**n >= 2 * cap else float("inf") for n in range(6)]
    expected = [min(2.0**n, cap) for n in range(6)]
    assert_waits(timed, waits_of(timed, "LongRetries", LONG_RETRIES), expected, below=uncapped)


def test_full_jitter_keeps_each_wait_within_its_backoff_bound(timed: Engine) -> None:
    waits = waits_of(timed, "ResizeLambdaServiceExhausted", NAME)
    assert len(waits) == len(LAMBDA_SERVICE_WAITS)
    assert all(wait >= 0 for wait in waits), waits
    if timed.cloud is not None:  # where waits are the interpreter's own, each is within its bound exactly
        assert all(wait <= bound for wait, bound in zip(waits, LAMBDA_SERVICE_WAITS, strict=True)), waits
    assert any(wait < bound - 0.05 for wait, bound in zip(waits, LAMBDA_SERVICE_WAITS, strict=True)), (
        f"FULL jitter draws each wait at random below its bound: {waits}"
    )
