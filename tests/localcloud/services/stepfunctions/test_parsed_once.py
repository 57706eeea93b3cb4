"""sfn_definition_parsed_once (localcloud.services.stepfunctions.interpreter) against moto itself: the gap
is still there, and the patch closes it safely (see conftest.py)."""

from __future__ import annotations

import ast
import gc
import json
import os
import threading
import time
from collections.abc import Iterator
from enum import Enum
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType, SimpleNamespace
from typing import Any, cast

import pytest
from moto.stepfunctions.parser.asl.component import eval_component
from moto.stepfunctions.parser.asl.component.common.retry.max_attempts_decl import MaxAttemptsDecl
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.stepfunctions.parser.backend.test_state import execution_worker as test_state_worker
from moto.stepfunctions.parser.utils import long_uid

from localcloud.services.stepfunctions import interpreter
from tests.localcloud.services.helpers import ACCOUNT, PASS, REGION, Clients, execution_ended, make_state_machine

RETRY_ATTEMPTS = 3


CONCURRENT_EXECUTIONS = 6


BOOM = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "always"}}}


RETRIED_PARALLEL: dict[str, Any] = {
    "StartAt": "Par",
    "States": {
        "Par": {
            "Type": "Parallel",
            "Branches": [BOOM],
            "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 1, "MaxAttempts": RETRY_ATTEMPTS, "BackoffRate": 2}],
            "End": True,
        }
    },
}


_RETRY = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1.5}]


_ITEMS = {
    "StartAt": "Shape",
    "States": {
        "Shape": {"Type": "Pass", "Parameters": {"item.$": "$", "fixed": [1, {"a": 2}]}, "Next": "Work"},
        "Work": {
            "Type": "Task",
            "Resource": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:f",
            "Retry": _RETRY,
            "End": True,
        },
    },
}


#: One of each kind of state and of the parts that hold other states (branches, item processors, iterators).
EVERY_KIND: dict[str, Any] = {
    "TimeoutSeconds": 60,
    "StartAt": "Pass",
    "States": {
        "Pass": {"Type": "Pass", "Result": {"r": [1, 2]}, "ResultPath": "$.r", "Next": "Parallel"},
        "Parallel": {
            "Type": "Parallel",
            "Branches": [_ITEMS, BOOM],
            "Retry": _RETRY,
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Inline"}],
            "Next": "Inline",
        },
        "Inline": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 2,
            "ItemSelector": {"value.$": "$$.Map.Item.Value"},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, **_ITEMS},
            "Next": "Distributed",
        },
        "Distributed": {
            "Type": "Map",
            "ItemReader": {
                "Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW", "MaxItems": 10},
                "Parameters": {"Bucket": "b", "Key": "k"},
            },
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, **_ITEMS},
            "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "b", "Prefix": "p"}},
            "Next": "Iterator",
        },
        "Iterator": {"Type": "Map", "Iterator": _ITEMS, "Next": "Choice"},
        "Choice": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.n", "NumericGreaterThan": 1, "Next": "Wait"}],
            "Default": "Send",
        },
        "Wait": {"Type": "Wait", "SecondsPath": "$.s", "Next": "Task"},
        "Task": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "f", "Payload.$": "States.JsonMerge($.a, States.StringToJson($.b), false)"},
            "Retry": _RETRY,
            "Next": "Send",
        },
        "Send": {
            "Type": "Task",
            "QueryLanguage": "JSONata",
            "Resource": "arn:aws:states:::sqs:sendMessage",
            "Arguments": {"QueueUrl": "q", "MessageBody": "{% $string($states.input) %}"},
            "Assign": {"sent": "{% $states.result %}", "count": [1, "{% 2 %}"]},
            "Retry": _RETRY,
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}


#: Methods that build a component: its constructor, and from_state_props, which the parser calls on a new state.
CONSTRUCTION = ("__init__", "from_state_props")


MUTATORS = frozenset(
    {"append", "extend", "insert", "pop", "remove", "clear", "update", "setdefault", "add", "discard", "popitem"}
    | {"sort", "reverse"}
)


#: What moto's ASL component classes write after construction, by class. EvalComponent.heap_key aside, these
#: are made for one evaluation of a state (workers, job pools, counters) and never held by a parsed program.
WRITTEN_AFTER_CONSTRUCTION = {
    "eval_component.EvalComponent": {"__heap_key"},
    "state.exec.state_map.iteration.iteration_worker.IterationWorker": {"_stop_signal_received"},
    "state.exec.state_map.iteration.job.JobPool": {"_open_jobs", "_closed_jobs", "_worker_exception"},
    "state.exec.state_map.iteration.itemprocessor.map_run_record.Counter": {"_count"},
    "state.exec.state_map.iteration.itemprocessor.map_run_record.MapRunRecord": {
        "status",
        "stop_date",
        "max_concurrency",
        "tolerated_failure_count",
        "tolerated_failure_percentage",
    },
    "state.exec.state_map.iteration.itemprocessor.map_run_record.MapRunRecordPoolManager": {"_pool"},
    "state.exec.state_parallel.branch_worker.BranchWorker": {"_worker_thread"},
    "state.exec.state_parallel.branches_decl.BranchWorkerPool": {"_terminated_with_error", "_active_workers_num"},
}


def _self_attribute(target: ast.expr) -> str | None:
    """The attribute of ``self`` (or ``cls``) a target writes into: self.a, self.a.b, self.a[k]: a; self[k]: self."""
    attribute = None
    while isinstance(target, ast.Attribute | ast.Subscript):
        if isinstance(target, ast.Attribute):
            attribute = target.attr
        target = target.value
    if isinstance(target, ast.Name) and target.id in ("self", "cls"):
        return attribute or target.id
    return None


def _written_targets(method: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[ast.expr]:
    """What a method (and any function inside it) assigns, deletes, mutates in place or setattr()s."""
    for node in ast.walk(method):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign | ast.Delete):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
            targets = [node.func.value]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
            targets = node.args[:1]
        for target in targets:
            yield from target.elts if isinstance(target, ast.Tuple | ast.List) else [target]


def _written_after_construction() -> dict[str, set[str]]:
    """For every class of moto's ASL components package: the attributes of ``self`` its methods write, but
    for construction's (CONSTRUCTION), keyed by module (relative to the package) and qualified class name."""
    import moto.stepfunctions.parser.asl.component as package

    root = os.path.dirname(package.__file__)
    written: dict[str, set[str]] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for cls in (node for node in body if isinstance(node, ast.ClassDef)):
            for method in cls.body:
                if isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef) and method.name not in CONSTRUCTION:
                    for target in _written_targets(method):
                        attribute = _self_attribute(target)
                        if attribute is not None:
                            written.setdefault(prefix + cls.name, set()).add(attribute)
            visit(cls.body, f"{prefix}{cls.name}.")

    for folder, _dirs, files in os.walk(root):
        for file in (f for f in files if f.endswith(".py")):
            path = os.path.join(folder, file)
            module = os.path.relpath(path, root).removesuffix(".py").replace(os.sep, ".")
            with open(path, encoding="utf-8") as source:
                visit(ast.parse(source.read()).body, f"{module}.")
    return written


def _component_class_name(obj: Any) -> str:
    """An object's class as _written_after_construction names it (module relative to the components package)."""
    import moto.stepfunctions.parser.asl.component as package

    return f"{type(obj).__module__.removeprefix(package.__name__ + '.')}.{type(obj).__qualname__}"


_NOT_WALKED = (type, ModuleType, FunctionType, BuiltinFunctionType, MethodType, Enum)


def _reachable(root: Any) -> list[Any]:
    """Every object a parsed program refers to, found by the garbage collector's own references (not by
    interpreter.eval_components' walk), without going into classes, modules, functions or enum members."""
    seen: set[int] = set()
    found: list[Any] = []
    pending = [root]
    while pending:
        obj = pending.pop()
        if id(obj) in seen or isinstance(obj, _NOT_WALKED):
            continue
        seen.add(id(obj))
        found.append(obj)
        pending.extend(gc.get_referents(obj))
    return found


def _counting_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    parses: list[str] = []
    parse = AmazonStateLanguageParser.parse

    def counting(definition: str) -> Any:
        parses.append(definition)
        return parse(definition)

    monkeypatch.setattr(AmazonStateLanguageParser, "parse", staticmethod(counting))
    return parses


def _worker(definition: dict[str, Any]) -> ExecutionWorker:
    """An execution's worker, as far as _get_evaluation_entrypoint reads it."""
    details = SimpleNamespace(state_machine_details=SimpleNamespace(definition=json.dumps(definition)))
    return ExecutionWorker(
        evaluation_details=cast(Any, details),
        exec_comm=cast(Any, None),
        cloud_watch_logging_session=None,
        activity_store={},
    )


def test_gap_sfn_definition_parsed_once(unpatched: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    """If this fails, moto changed how an execution gets its program or what its components write while they
    run: drop patch sfn_definition_parsed_once from localcloud.services.stepfunctions.interpreter,
    or revisit what makes sharing a program safe."""
    c = unpatched
    parses = _counting_parses(monkeypatch)

    # Every execution parses its definition again (CreateStateMachine parsed it once already, to validate it).
    sm = make_state_machine(c, PASS)
    for run in range(2):
        execution_ended(c, c.sfn.start_execution(stateMachineArn=sm, name=f"run{run}")["executionArn"])
    assert parses == [json.dumps(PASS)] * 3
    worker = _worker(EVERY_KIND)
    first, second = worker._get_evaluation_entrypoint(), worker._get_evaluation_entrypoint()
    assert first is not second
    # TestState's worker has a parser of its own and is not the one patched.
    assert "_get_evaluation_entrypoint" in vars(test_state_worker.TestStateExecutionWorker)

    # Nothing a parsed program holds is written once it is built, but EvalComponent's heap key...
    assert _written_after_construction() == WRITTEN_AFTER_CONSTRUCTION
    reachable = {_component_class_name(obj) for obj in _reachable(first)}
    assert "program.program.Program" in reachable
    assert "state.exec.state_map.state_map.StateMap" in reachable
    assert not reachable & (set(WRITTEN_AFTER_CONSTRUCTION) - {"eval_component.EvalComponent"})
    # ...a private attribute, set on first read of the heap_key property...
    assert isinstance(vars(EvalComponent)["heap_key"], property)
    assert vars(EvalComponent)["_EvalComponent__heap_key"] is None
    components = [obj for obj in _reachable(first) if isinstance(obj, EvalComponent)]
    assert len(components) > 100
    assert not [obj for obj in components if "_EvalComponent__heap_key" in vars(obj)]
    # ...without a lock: two first reads at once make a key each, and the component keeps the last written.
    made: list[str] = []
    both_inside = threading.Barrier(2, timeout=5)

    def uid() -> str:
        both_inside.wait()
        made.append(long_uid())
        return made[-1]

    monkeypatch.setattr(eval_component, "long_uid", uid)
    attempts = MaxAttemptsDecl(attempts=1)
    readers = [threading.Thread(target=lambda: attempts.heap_key) for _ in range(2)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(5)
    assert len(set(made)) == 2
    assert attempts.heap_key in made


def test_patched_sfn_definition_parsed_once(patched: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    c = patched
    parses = _counting_parses(monkeypatch)

    # Parsed, every component of every kind of state has its heap key.
    every_kind = interpreter.parsed_program(json.dumps(EVERY_KIND))
    reachable = [obj for obj in _reachable(every_kind) if isinstance(obj, EvalComponent)]
    assert len(reachable) > 100
    assert all("_EvalComponent__heap_key" in vars(obj) for obj in reachable)
    assert interpreter.parsed_program(json.dumps(EVERY_KIND)) is every_kind
    assert parses == [json.dumps(EVERY_KIND)]
    parses.clear()

    sm = make_state_machine(c, RETRIED_PARALLEL, name="retried")
    definition = json.dumps(RETRIED_PARALLEL)
    assert parses == [definition]  # CreateStateMachine's validation
    parses.clear()
    keys: list[str] = []

    def slow_uid() -> str:
        time.sleep(0.005)  # a wide window for two first reads of a heap key to meet in
        keys.append(long_uid())
        return keys[-1]

    monkeypatch.setattr(eval_component, "long_uid", slow_uid)

    # Executions started together: one parse, and each retries exactly as often as its Retry says.
    arns = [
        c.sfn.start_execution(stateMachineArn=sm, name=f"run{n}")["executionArn"] for n in range(CONCURRENT_EXECUTIONS)
    ]
    for arn in arns:
        described = execution_ended(c, arn)
        assert (described["status"], described["error"]) == ("FAILED", "Boom")
        events = [event["type"] for event in c.sfn.get_execution_history(executionArn=arn)["events"]]
        assert events.count("ParallelStateStarted") == 1 + RETRY_ATTEMPTS, events
    assert parses == [definition]
    assert sorted(interpreter.retry_waits()) == sorted([1.0, 2.0, 4.0] * CONCURRENT_EXECUTIONS)

    # The shared program had every heap key before any execution ran: one key made for each component.
    program = interpreter.parsed_program(definition)
    components = [obj for obj in _reachable(program) if isinstance(obj, EvalComponent)]
    assert components
    assert all("_EvalComponent__heap_key" in vars(obj) for obj in components)
    assert sorted(keys) == sorted(obj.heap_key for obj in components)
    assert len(set(keys)) == len(keys)
    assert {id(obj) for obj in interpreter.eval_components(program)} == {id(obj) for obj in components}
    assert parses == [definition]

    # Another definition has a program of its own; the first one stays.
    parses.clear()
    other = make_state_machine(c, PASS, name="other")
    assert execution_ended(c, c.sfn.start_execution(stateMachineArn=other)["executionArn"])["status"] == "SUCCEEDED"
    assert parses == [json.dumps(PASS)] * 2  # CreateStateMachine's, then the execution's
    assert interpreter.parsed_program(json.dumps(PASS)) is not program
    assert interpreter.parsed_program(definition) is program
    assert interpreter.parsed_program.cache_info().maxsize == interpreter.PROGRAMS_KEPT
