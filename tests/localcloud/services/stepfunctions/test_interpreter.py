"""localcloud.services.stepfunctions.interpreter against moto itself: each gap still there, each patch
closing it (see conftest.py)."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from moto.core.config import default_user_config
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.utils import boto_client

from localcloud import emulator
from localcloud.services.stepfunctions import interpreter
from tests.localcloud.services.helpers import (
    ACCOUNT,
    REGION,
    ROLE,
    Clients,
    FakeRuntime,
    execution_ended,
    make_function,
    make_state_machine,
)


def _retry_machine(task: dict[str, Any], wait_s: int, interval_s: int, attempts: int) -> dict[str, Any]:
    task = {
        **task,
        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": interval_s, "MaxAttempts": attempts}],
        "End": True,
    }
    return {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": wait_s, "Next": "T"}, "T": task}}


def test_gap_scaled_time(unpatched: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    """If this fails, moto fixed the gap:
    drop patch scaled_time from localcloud.services.stepfunctions.interpreter (or rework it:
    it replaces the retrier module's ``time`` and WaitFunction._wait_interval)."""
    c = unpatched
    real_sleep = time.sleep
    retrier_sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        if sys._getframe(1).f_globals.get("__name__") == retrier_decl.__name__:
            retrier_sleeps.append(seconds)  # recorded, not slept: the test need not take 2 s
            return
        real_sleep(seconds)

    # The retrier sleeps with the time module's own sleep; nothing scales it.
    assert vars(retrier_decl)["time"] is time
    monkeypatch.setattr(time, "sleep", sleep)
    failing_branch = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "always"}}}
    sm = make_state_machine(c, _retry_machine({"Type": "Parallel", "Branches": [failing_branch]}, 1, 2, 1))

    started = time.monotonic()
    run = c.sfn.start_execution(stateMachineArn=sm, name="one")
    described = execution_ended(c, run["executionArn"])
    elapsed = time.monotonic() - started

    assert described["status"] == "FAILED"
    assert retrier_sleeps == [2]  # IntervalSeconds, as written
    assert elapsed >= 1.0  # the Wait state's second, for real


def test_patched_scaled_time(patched: Clients, runtime: FakeRuntime) -> None:
    c = patched
    fn = make_function(c)
    error = json.dumps({"errorType": "ImageBroken", "errorMessage": "cannot decode"}).encode()
    runtime.replies.extend([(error, "ImageBroken"), (error, "ImageBroken")])
    definition = _retry_machine({"Type": "Task", "Resource": fn}, 2, 2, 2)
    definition["States"]["T"]["Retry"][0].update(ErrorEquals=["ImageBroken"], BackoffRate=1.5)
    sm = make_state_machine(c, definition)

    started = time.monotonic()
    run = c.sfn.start_execution(stateMachineArn=sm, name="one", input=json.dumps({"key": "a.jpg"}))
    described = execution_ended(c, run["executionArn"])
    elapsed = time.monotonic() - started

    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {"ok": True}
    assert elapsed < 3.5  # 2 s of Wait and 2 + 3 s of Retry at 0.01 (0.07 s); unscaled, 7 s
    assert interpreter.retry_waits() == [2.0, 3.0]  # as the interpreter asked for them
    assert [json.loads(payload) for _, payload in runtime.invocations] == [{"key": "a.jpg"}] * 3


def test_patched_wait_with_fractional_scale(patched: Clients, runtime: FakeRuntime) -> None:
    """A scaled Wait of less than a second waits once for the scaled time (moto's own loop would
    re-enter the patched function for the rest and rescale it: a RecursionError near scale 1)."""
    c = patched
    emulator.apply(invoker=runtime, deliverer=runtime, time_scale=0.05)
    sm = make_state_machine(c, {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 10, "End": True}}})

    started = time.monotonic()
    run = c.sfn.start_execution(stateMachineArn=sm, name="one")
    described = execution_ended(c, run["executionArn"])
    elapsed = time.monotonic() - started

    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert 0.5 <= elapsed < 5  # 10 s at 0.05; unscaled, 10 s


def test_patched_end_waits_ends_retry_intervals(patched: Clients, runtime: FakeRuntime) -> None:
    """end_waits() ends the Retry interval being slept and the ones to come; apply() restores them."""
    c = patched
    emulator.apply(invoker=runtime, deliverer=runtime, time_scale=1.0)
    fn = make_function(c)
    error = json.dumps({"errorType": "ImageBroken", "errorMessage": "cannot decode"}).encode()
    runtime.replies.extend([(error, "ImageBroken")] * 2)
    definition = _retry_machine({"Type": "Task", "Resource": fn}, 0, 30, 2)
    definition["States"]["T"]["Retry"][0]["ErrorEquals"] = ["ImageBroken"]
    sm = make_state_machine(c, definition)

    run = c.sfn.start_execution(stateMachineArn=sm, name="one")
    deadline = time.monotonic() + 10
    while not interpreter.retry_waits():  # asleep in the first 30 s interval
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    interpreter.end_waits()
    described = execution_ended(c, run["executionArn"])

    assert time.monotonic() - started < 5
    assert described["status"] == "SUCCEEDED"
    assert interpreter.retry_waits() == [30.0, 60.0]  # BackoffRate 2 by default
    emulator.apply(invoker=runtime, deliverer=runtime, time_scale=1.0)
    assert not interpreter.waits_ended()


START_EXECUTION = "arn:aws:states:::states:startExecution"


ECHO = {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "Parameters": {"seen.$": "$.key"}, "End": True}}}


FAILING = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "the child failed"}}}


def _nested(c: Clients, name: str, resource: str, child: str, **parameters: Any) -> dict[str, Any]:
    """Run a parent whose one task starts ``child`` with ``resource``; the finished parent execution."""
    task = {
        "Type": "Task",
        "Resource": resource,
        "Parameters": {"StateMachineArn": child, "Input": {"key.$": "$.key"}, **parameters},
        "End": True,
    }
    parent = make_state_machine(c, {"StartAt": "Run", "States": {"Run": task}}, name)
    run = c.sfn.start_execution(stateMachineArn=parent, name="one", input=json.dumps({"key": "a.jpg"}))
    return execution_ended(c, run["executionArn"])


def test_gap_sfn_nested_execution(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap:
    drop patch sfn_nested_execution from localcloud.services.stepfunctions.interpreter."""
    c = unpatched
    child = make_state_machine(c, ECHO, "child")
    for suffix in ("", ".sync", ".sync:2"):
        described = _nested(c, "parent" + suffix.replace(".", "-").replace(":", ""), START_EXECUTION + suffix, child)
        # The ASL's parameter names reach boto3 as written: the task fails before anything starts.
        assert described["status"] == "FAILED"
        assert described["error"] == "States.Runtime"
        assert described["cause"].endswith("). 'StateMachineArn'")  # a KeyError's message
    assert c.sfn.list_executions(stateMachineArn=child)["executions"] == []


def test_patched_sfn_nested_execution(patched: Clients) -> None:
    c = patched
    child = make_state_machine(c, ECHO, "child")
    failing = make_state_machine(c, FAILING, "failing")

    # .sync:2 waits for the child and gives its Input and Output as JSON, dates in epoch milliseconds.
    sync2 = _nested(c, "parent-sync2", START_EXECUTION + ".sync:2", child, Name="named")
    assert sync2["status"] == "SUCCEEDED", sync2.get("cause")
    result = json.loads(sync2["output"])
    assert result["ExecutionArn"] == f"arn:aws:states:{REGION}:{ACCOUNT}:execution:child:named"
    assert result["StateMachineArn"] == child
    assert result["Status"] == "SUCCEEDED"
    assert result["Input"] == {"key": "a.jpg"}
    assert result["Output"] == {"seen": "a.jpg"}
    assert isinstance(result["StartDate"], int)
    assert result["StopDate"] >= result["StartDate"] > 1_600_000_000_000

    # .sync gives them as the JSON strings DescribeExecution returns.
    sync = json.loads(_nested(c, "parent-sync", START_EXECUTION + ".sync", child)["output"])
    assert json.loads(sync["Output"]) == {"seen": "a.jpg"}
    assert sync["Status"] == "SUCCEEDED"

    # Without a suffix the task only starts the child (a nameless one: patch sfn_nameless_execution).
    started = json.loads(_nested(c, "parent-start", START_EXECUTION, child)["output"])
    assert set(started) == {"ExecutionArn", "StartDate"}
    assert started["ExecutionArn"].startswith(f"arn:aws:states:{REGION}:{ACCOUNT}:execution:child:")
    execution_ended(c, started["ExecutionArn"])
    assert len(c.sfn.list_executions(stateMachineArn=child)["executions"]) == 3

    # A failed child fails the task with States.TaskFailed (what a Catch takes), its description as the cause.
    failed = _nested(c, "parent-failing", START_EXECUTION + ".sync:2", failing)
    assert failed["status"] == "FAILED"
    assert failed["error"] == "States.TaskFailed"
    assert json.loads(failed["cause"])["Status"] == "FAILED"


FAIL_WITH_STATES_ERROR = {
    "StartAt": "Fail",
    "States": {"Fail": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}},
}


def test_gap_fail_state_error_name(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap:
    drop patch fail_state_error_name from localcloud.services.stepfunctions.interpreter."""
    c = unpatched
    arn = make_state_machine(c, FAIL_WITH_STATES_ERROR, name="fail-states")
    execution = c.sfn.start_execution(
        stateMachineArn=arn, name="x", input=json.dumps({"error": {"Error": "States.Timeout", "Cause": "late"}})
    )["executionArn"]
    assert execution_ended(c, execution)["error"] == "States.Runtime"


def test_patched_fail_state_error_name(patched: Clients) -> None:
    c = patched
    arn = make_state_machine(c, FAIL_WITH_STATES_ERROR, name="fail-states")
    execution = c.sfn.start_execution(
        stateMachineArn=arn, input=json.dumps({"error": {"Error": "States.Timeout", "Cause": "late"}})
    )["executionArn"]
    described = execution_ended(c, execution)
    assert described["error"] == "States.Timeout"
    assert described["cause"] == "late"


def _boto_client_importers() -> set[str]:
    """The modules of moto's interpreter whose source imports boto_client_for by name."""
    import moto.stepfunctions.parser as parser

    root = os.path.dirname(parser.__file__)
    found = set()
    for folder, _dirs, files in os.walk(root):
        for file in files:
            path = os.path.join(folder, file)
            with open(path, encoding="utf-8") as source:
                imports = file.endswith(".py") and "import boto_client_for" in source.read()
            if imports:
                relative = os.path.relpath(path, root).removesuffix(".py").replace(os.sep, ".")
                found.add(f"{parser.__name__}.{relative}")
    return found


def test_gap_sfn_task_clients_reused(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap:
    drop patch sfn_task_clients_reused from localcloud.services.stepfunctions.interpreter (or revisit it:
    it replaces boto_client_for where each of BOTO_CLIENT_USERS imported it, and keys clients on what it reads)."""
    first = boto_client.boto_client_for(REGION, "lambda")
    second = boto_client.boto_client_for(REGION, "lambda")
    assert first is not second, "a new client for every call"
    assert list(inspect.signature(boto_client.boto_client_for).parameters) == ["region", "service", "state_credentials"]
    # What a client is made of: the arguments, the stubber's state, the server's port, the timeout; nothing else.
    assert set(boto_client.boto_client_for.__code__.co_names) == {
        "botocore_stubber",
        "enabled",
        "moto_server_port",
        "boto3",
        "client",
        "Config",
        "TimeoutSeconds",
        "DEFAULT_TIMEOUT_SECONDS",
    }
    # Every caller holds its own reference, taken at import: patching boto_client alone would not reach them.
    assert _boto_client_importers() == set(interpreter.BOTO_CLIENT_USERS)
    for name in interpreter.BOTO_CLIENT_USERS:
        assert vars(importlib.import_module(name))["boto_client_for"] is boto_client.boto_client_for, name


def _on_a_thread(call: Callable[[], Any]) -> Any:
    """``call()`` on a thread of its own, ended when this returns: as the interpreter runs a task."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    return result[0]


def test_patched_sfn_task_clients_reused(
    patched: Clients, runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.credentials import StateCredentials

    c = patched
    made: list[tuple[Any, ...]] = []
    build = interpreter.build_client

    def counting(*args: Any) -> Any:
        made.append(args)
        return build(*args)

    monkeypatch.setattr(interpreter, "build_client", counting)
    for name in (boto_client.__name__, *interpreter.BOTO_CLIENT_USERS):
        assert vars(importlib.import_module(name))["boto_client_for"] is interpreter.task_client, name

    # A state machine's tasks (a thread each) take over the client of the task before; the invocations are as ever.
    fn = make_function(c)
    task = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": fn}}
    steps = {f"T{i}": {**task, **({"Next": f"T{i + 1}"} if i < 2 else {"End": True})} for i in range(3)}
    sm = make_state_machine(c, {"StartAt": "T0", "States": steps})
    for run in range(2):
        arn = c.sfn.start_execution(stateMachineArn=sm, name=f"run{run}")["executionArn"]
        assert execution_ended(c, arn)["status"] == "SUCCEEDED"
    assert [json.loads(payload) for _, payload in runtime.invocations] == [{}] * 6
    # Unpatched: six. A task's thread still ending as the next task asks can make it two.
    assert 1 <= len(made) <= 2
    assert {args[:2] for args in made} == {(REGION, "lambda")}
    assert made[0][2] == StateCredentials(role_arn=ROLE), "the execution's role"
    made.clear()

    def lam() -> Any:
        return interpreter.task_client(REGION, "lambda")

    # One thread asking again gets the same client; a later thread takes it over once the first has ended.
    first, again = _on_a_thread(lambda: (lam(), lam()))
    assert first is again
    assert _on_a_thread(lam) is first
    assert made == [(REGION, "lambda", None)]

    # Threads running at once never share one.
    hold = threading.Barrier(2)

    def lam_held() -> Any:
        client = lam()
        hold.wait(5)
        return client

    both: list[Any] = []
    threads = [threading.Thread(target=lambda: both.append(lam_held())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(both) == 2
    assert both[0] is not both[1]

    # Whatever makes a client different makes another client.
    made.clear()
    role = StateCredentials(role_arn=f"{ROLE}-other")
    others = _on_a_thread(
        lambda: [
            interpreter.task_client("eu-west-1", "lambda"),
            interpreter.task_client(REGION, "sqs"),
            interpreter.task_client(REGION, "lambda", role),
        ]
    )
    assert len({id(client) for client in [*both, *others]}) == 5
    assert made == [("eu-west-1", "lambda", None), (REGION, "sqs", None), (REGION, "lambda", role)]


def test_client_key_follows_what_boto_client_for_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.credentials import StateCredentials

    stubber = vars(boto_client)["botocore_stubber"]
    monkeypatch.setattr(stubber, "enabled", False)
    monkeypatch.setenv("MOTO_PORT", "5001")
    key = interpreter.client_key(REGION, "lambda", None)
    assert key == interpreter.client_key(REGION, "lambda", None)
    monkeypatch.setenv("MOTO_PORT", "5002")
    assert interpreter.client_key(REGION, "lambda", None) != key, "another server"
    monkeypatch.setenv("MOTO_PORT", "5001")
    role = StateCredentials(role_arn=ROLE)
    assert interpreter.client_key(REGION, "lambda", role) != key, "other credentials"
    assert interpreter.client_key(REGION, "lambda", role) == interpreter.client_key(
        REGION, "lambda", StateCredentials(role_arn=ROLE)
    )
    monkeypatch.setattr(TimeoutSeconds, "DEFAULT_TIMEOUT_SECONDS", 60)
    assert interpreter.client_key(REGION, "lambda", None) != key, "other timeouts"
    monkeypatch.undo()
    monkeypatch.setattr(stubber, "enabled", True)
    assert interpreter.client_key(REGION, "lambda", None)[3:5] == (True, None), "in-process: no endpoint"


def test_remove_drops_the_cached_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(default_user_config, "stepfunctions", dict(default_user_config.get("stepfunctions", {})))
    try:
        emulator.apply(invoker=FakeRuntime(), deliverer=FakeRuntime())
        first = _on_a_thread(lambda: interpreter.task_client(REGION, "lambda"))
        assert _on_a_thread(lambda: interpreter.task_client(REGION, "lambda")) is first
        emulator.remove()
        emulator.apply(invoker=FakeRuntime(), deliverer=FakeRuntime())
        second = _on_a_thread(lambda: interpreter.task_client(REGION, "lambda"))
    finally:
        emulator.remove()
    assert second is not first


def _catch_big_result(c: Clients, fn: str, errors: list[str], name: str) -> dict[str, Any]:
    """Run a Lambda task whose result is over the 256 KiB payload quota, caught by ``errors`` and retried
    on States.ALL; the finished execution."""
    task = {
        "Type": "Task",
        "Resource": fn,
        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 1}],
        "Catch": [{"ErrorEquals": errors, "ResultPath": "$.caught", "Next": "Caught"}],
        "End": True,
    }
    caught = {"Type": "Pass", "Parameters": {"error.$": "$.caught.Error"}, "End": True}
    arn = make_state_machine(c, {"StartAt": "Big", "States": {"Big": task, "Caught": caught}}, name)
    return execution_ended(c, c.sfn.start_execution(stateMachineArn=arn, name="one")["executionArn"])


def test_gap_states_all_terminal_error(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap:
    drop patch states_all_terminal_error from localcloud.services.stepfunctions.interpreter."""
    from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )

    class Stack:  # the one thing ErrorEqualsDecl reads of an Environment
        stack: list[Any]

    # (The unpatched engine cannot run a Lambda task here: the matching is asked of moto's ErrorEqualsDecl.)
    states_all = ErrorEqualsDecl([StatesErrorName(typ=StatesErrorNameType.StatesALL)])
    env = Stack()
    env.stack = [StatesErrorName(typ=StatesErrorNameType.StatesStatesDataLimitExceeded)]
    states_all._eval_body(env)  # type: ignore[arg-type]
    assert env.stack == [True], "States.ALL matches States.DataLimitExceeded: a Catch of States.ALL catches it"


def test_patched_states_all_terminal_error(patched: Clients, runtime: FakeRuntime) -> None:
    c = patched
    fn = make_function(c)
    big = json.dumps({"blob": "x" * 300_000}).encode()
    runtime.replies.extend([(big, None), (big, None)])

    # States.ALL neither retries nor catches it: the execution fails with it (one invocation, no retry).
    failed = _catch_big_result(c, fn, ["States.ALL"], "states-all")
    assert failed["status"] == "FAILED"
    assert failed["error"] == "States.DataLimitExceeded"
    assert "exceeding the maximum number of bytes service limit" in failed["cause"]
    assert len(runtime.invocations) == 1

    # Named, it is caught.
    caught = _catch_big_result(c, fn, ["States.DataLimitExceeded"], "named")
    assert caught["status"] == "SUCCEEDED", caught.get("cause")
    assert json.loads(caught["output"]) == {"error": "States.DataLimitExceeded"}
    assert len(runtime.invocations) == 2

    # Any other error is still caught by States.ALL.
    runtime.replies.append((json.dumps({"errorType": "ImageBroken", "errorMessage": "no"}).encode(), "ImageBroken"))
    runtime.replies.append((json.dumps({"errorType": "ImageBroken", "errorMessage": "no"}).encode(), "ImageBroken"))
    other = _catch_big_result(c, fn, ["States.ALL"], "other")
    assert other["status"] == "SUCCEEDED", other.get("cause")
    assert json.loads(other["output"]) == {"error": "ImageBroken"}
