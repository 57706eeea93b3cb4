"""localcloud.services.stepfunctions.executions against moto itself: each gap still there, each patch
closing it (see conftest.py)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.stepfunctions.parser.mocking.mock_config import load_mock_test_case_for

from localcloud import emulator
from localcloud.services.stepfunctions import interpreter
from tests.localcloud.services.helpers import (
    ACCOUNT,
    PASS,
    REGION,
    ROLE,
    STATE_MACHINE_RESOURCES,
    Clients,
    FakeRuntime,
    deploy_stack,
    execution_ended,
    make_function,
    make_state_machine,
    non_executing_state_machines,
    sm_arn,
)


def test_gap_cfn_state_machine_executes(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap:
    drop patch cfn_state_machine_executes from localcloud.services.stepfunctions.executions."""
    c = unpatched
    deploy_stack(c, STATE_MACHINE_RESOURCES)

    # The executing API (the one that runs executions) does not know the stack's state machines...
    assert c.sfn.list_state_machines()["stateMachines"] == []
    with pytest.raises(ClientError, match="StateMachineDoesNotExist"):
        c.sfn.describe_state_machine(stateMachineArn=sm_arn("substituted"))
    # ...they landed in the non-executing backend, without substitutions, object Definition or type.
    machines = non_executing_state_machines()
    assert sorted(machines) == ["express", "substituted"]
    assert "${Greeting}" in machines["substituted"].definition
    assert machines["express"].definition == ""
    assert machines["express"].type == "STANDARD"


def test_patched_cfn_state_machine_executes(patched: Clients) -> None:
    c = patched
    deploy_stack(c, STATE_MACHINE_RESOURCES)

    assert sorted(m["name"] for m in c.sfn.list_state_machines()["stateMachines"]) == ["express", "substituted"]
    assert non_executing_state_machines() == {}
    substituted = c.sfn.describe_state_machine(stateMachineArn=sm_arn("substituted"))
    assert json.loads(substituted["definition"])["States"]["P"]["Result"] == {"greeting": "hello"}
    assert substituted["type"] == "STANDARD"
    assert substituted["roleArn"] == ROLE
    express = c.sfn.describe_state_machine(stateMachineArn=sm_arn("express"))
    assert json.loads(express["definition"]) == PASS
    assert express["type"] == "EXPRESS"

    run = c.sfn.start_execution(stateMachineArn=sm_arn("substituted"), name="one")
    finished = execution_ended(c, run["executionArn"])
    assert finished["status"] == "SUCCEEDED"
    assert json.loads(finished["output"]) == {"greeting": "hello"}


def test_gap_sfn_nameless_execution(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap:
    drop patch sfn_nameless_execution from localcloud.services.stepfunctions.executions."""
    c = unpatched
    sm = make_state_machine(c, PASS)

    first = c.sfn.start_execution(stateMachineArn=sm)["executionArn"]
    assert first == f"arn:aws:states:{REGION}:{ACCOUNT}:execution:sm:None"
    execution_ended(c, first)
    for execution_input in ("{}", '{"other": "input"}'):
        with pytest.raises(ClientError, match="ExecutionAlreadyExists"):
            c.sfn.start_execution(stateMachineArn=sm, input=execution_input)


def test_patched_sfn_nameless_execution(patched: Clients) -> None:
    c = patched
    sm = make_state_machine(c, PASS)

    arns = [c.sfn.start_execution(stateMachineArn=sm)["executionArn"] for _ in range(2)]
    named = c.sfn.start_execution(stateMachineArn=sm, name="named")["executionArn"]

    assert len(set(arns)) == 2
    for arn in arns:
        name = arn.rsplit(":", 1)[1]
        assert uuid.UUID(name).version == 4
        described = execution_ended(c, arn)
        assert described["name"] == name
        assert described["status"] == "SUCCEEDED"
    assert named.endswith(":execution:sm:named")
    assert execution_ended(c, named)["status"] == "SUCCEEDED"


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
    fn = make_function(c)
    retry = [{"ErrorEquals": ["ImageBroken"], "IntervalSeconds": 2, "MaxAttempts": 1}]
    task = {"Type": "Task", "Resource": fn, "Retry": retry, "End": True}
    return make_state_machine(c, {"StartAt": "T", "States": {"T": task}})


def test_gap_sfn_mock_config(unpatched: Clients, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """If this fails, moto fixed the gap:
    drop patch sfn_mock_config from localcloud.services.stepfunctions.executions."""
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
    emulator.apply(invoker=runtime, deliverer=runtime, time_scale=0.01, mock_config=MOCK_CONFIG)

    mocked = c.sfn.start_execution(stateMachineArn=f"{sm}#FlakyThenOK", name="mocked")
    assert mocked["executionArn"].endswith(":execution:sm:mocked")
    described = execution_ended(c, mocked["executionArn"])
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {"mocked": True}
    assert runtime.invocations == []  # the mocked task never reached the function
    assert interpreter.retry_waits() == [2.0]  # the mocked Throw was retried like a real error

    # Without a test case the same machine runs for real.
    plain = c.sfn.start_execution(stateMachineArn=sm, name="plain")
    assert json.loads(execution_ended(c, plain["executionArn"])["output"]) == {"ok": True}
    assert len(runtime.invocations) == 1

    with pytest.raises(ClientError, match=r"InvalidName.*no test case 'Missing'"):
        c.sfn.start_execution(stateMachineArn=f"{sm}#Missing", name="missing")
    emulator.apply(invoker=runtime, deliverer=runtime, time_scale=0.01, mock_config=None)
    with pytest.raises(ClientError, match=r"InvalidName.*no mock config file is loaded"):
        c.sfn.start_execution(stateMachineArn=f"{sm}#FlakyThenOK", name="unloaded")
