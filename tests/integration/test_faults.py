"""Faults on the embedded local cloud: throttling and 5xx, a worker killed, a step timing out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from localcloud.faults import InvocationFault, RequestFault
from localcloud.manual import state_path
from tests.integration.conftest import Deployed, deploy, jpeg

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fast() -> Iterator[Deployed]:
    """Retry waits scaled down 100 times: a 2 s interval takes 20 ms."""
    yield from deploy(time_scale=0.01)


def history(deployed: Deployed, arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for page in deployed.sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
        events.extend(page["events"])
    return events


def task_errors(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for step in state_path(events):
        if step["errors"]:
            errors[step["state"]] = step["errors"]
    return errors


def test_throttling_and_5xx_in_every_step_are_retried_to_success(fast: Deployed) -> None:
    stack = fast.stack
    name = "throttled.jpg"
    key = stack.upload_prefix + name
    # Four failures in a row outlast botocore's own attempts (one and three retries), so each step
    # fails once with TransientError and the state machine's Retry takes it from there.
    faults = {
        "Validate": RequestFault(service="s3", count=4, method="HEAD", path_prefix=f"/{stack.source_bucket}/{key}"),
        "Resize": RequestFault(
            service="s3",
            count=4,
            method="PUT",
            path_prefix=f"/{stack.staging_bucket}/staging/",
            code="InternalError",
            status=500,
        ),
        "Watermark": RequestFault(
            service="s3",
            count=4,
            method="GET",
            path_prefix=f"/{stack.staging_bucket}/staging/",
            code="ServiceUnavailable",
        ),
        "Store": RequestFault(service="s3", count=4, method="PUT", path_prefix=f"/{stack.destination_bucket}/{name}/"),
        "Notify": RequestFault(service="sns", count=4, method="POST", code="InternalError", status=500),
    }
    for fault in faults.values():
        fast.cloud.inject_fault(fault)
    try:
        fast.upload(key, jpeg(900, 600))
        execution = fast.execution_for(key)
    finally:
        fast.cloud.clear_faults()

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert {step: fault.hits for step, fault in faults.items()} == dict.fromkeys(faults, 4)
    errors = task_errors(history(fast, execution["executionArn"]))
    assert errors == {step: ["TransientError"] for step in faults}, errors
    [message] = fast.messages_for(key)
    assert message["Message"]["status"] == "SUCCEEDED"
    version = fast.version_id(key)
    assert message["Message"]["source"]["revision"] == version
    assert fast.outputs_under(name) == fast.expected_outputs(name, version, (900, 320))
    assert fast.keys(stack.staging_bucket) == []


def test_a_worker_killed_mid_invocation_is_reported_and_retried(fast: Deployed) -> None:
    key = fast.stack.upload_prefix + "killed.jpg"
    fast.cloud.inject_fault(InvocationFault(function="ResizeFunction", count=1, effect="kill"))
    fast.upload(key, jpeg(700, 500))
    execution = fast.execution_for(key)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    events = history(fast, execution["executionArn"])
    assert task_errors(events) == {"Resize": ["Runtime.ExitError"]}
    failed = [e for e in events if e["type"] == "TaskFailed"]
    cause = json.loads(failed[0]["taskFailedEventDetails"]["cause"])
    assert cause["errorType"] == "Runtime.ExitError"
    assert "Runtime exited with error: signal: killed" in cause["errorMessage"]


def test_a_worker_that_keeps_dying_ends_in_the_failure_branch(fast: Deployed) -> None:
    key = fast.stack.upload_prefix + "always killed.jpg"
    fast.cloud.inject_fault(
        InvocationFault(function="WatermarkFunction", count=4, effect="kill")
    )  # the first attempt and its three retries
    fast.upload(key, jpeg(700, 500))
    execution = fast.execution_for(key)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "Runtime.ExitError"
    path = [s["state"] for s in state_path(history(fast, execution["executionArn"]))]
    assert path[-5:] == ["Watermark", "Cleanup", "Failed or Superseded", "Publish Failure", "Failed"]
    assert fast.keys(fast.stack.staging_bucket) == [], "the clean-up removed the resized intermediates"
    assert fast.outputs_under("always killed.jpg") == [], "nothing reached the destination"
    [message] = fast.messages_for(key)
    assert message["Message"]["error"] == "Runtime.ExitError"
    assert message["Message"]["step"] == "watermark"
    assert message["Message"]["source"]["key"] == key
    assert message["Message"]["source"]["revision"] == fast.version_id(key)


def test_a_step_that_times_out_is_retried_then_fails_cleanly(fast: Deployed) -> None:
    """A step that stops answering: Sandbox.Timedout after the function's timeout, retried, then the failure branch."""
    lam = fast.cloud.client("lambda")
    resize = fast.stack.resources["ResizeFunction"]
    original = lam.get_function_configuration(FunctionName=resize)["Timeout"]
    # Shrink the deployed function's timeout, as an operator could (a new configuration: new workers).
    lam.update_function_configuration(FunctionName=resize, Timeout=1)
    fast.cloud.inject_fault(
        InvocationFault(function="ResizeFunction", count=4, effect="hang")
    )  # the first attempt and its three retries
    try:
        key = fast.stack.upload_prefix + "stuck.jpg"
        fast.upload(key, jpeg(800, 600))
        execution = fast.execution_for(key, timeout_s=180)
    finally:
        lam.update_function_configuration(FunctionName=resize, Timeout=original)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "Sandbox.Timedout"
    errors = task_errors(history(fast, execution["executionArn"]))
    assert errors["Resize"] == ["Sandbox.Timedout"] * 4, "the first attempt and three retries"
    assert fast.keys(fast.stack.staging_bucket) == []
    assert [m["Message"]["error"] for m in fast.messages_for(key)] == ["Sandbox.Timedout"]
    assert [m["Message"]["step"] for m in fast.messages_for(key)] == ["resize"]
    assert fast.outputs_under("stuck.jpg") == []
    failed = [e for e in history(fast, execution["executionArn"]) if e["type"] == "TaskFailed"]
    assert "Task timed out after 1.00 seconds" in failed[0]["taskFailedEventDetails"]["cause"]
