"""How moto's ASL interpreter runs a definition: its clock, nested executions, Fail states, task
clients and parsing.

Patches: ``scaled_time``, ``sfn_nested_execution``, ``fail_state_error_name``,
``states_all_terminal_error``, ``sfn_task_clients_reused``, ``sfn_definition_parsed_once``.
"""

from __future__ import annotations

import importlib
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from functools import cache, lru_cache
from types import FunctionType, MethodType, ModuleType
from typing import Any

import botocore.session
from botocore import xform_name
from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl
from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)
from moto.stepfunctions.parser.asl.component.state.fail import state_fail
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.utils import boto_client
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from localcloud.patching import Patch, original

# -- scaled_time ---------------------------------------------------------------------------------------


@dataclass
class _Clock:
    scale: float = 1.0
    waits: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Set by end_waits(): Retry intervals end at once (the executions are being stopped).
    ended: threading.Event = field(default_factory=threading.Event)


_clock = _Clock()


def configure(*, time_scale: float = 1.0) -> None:
    """Run Retry intervals and Wait states ``time_scale`` times as long as the definition says."""
    with _clock.lock:
        _clock.scale = time_scale
        _clock.waits.clear()
    _clock.ended.clear()


def time_scale() -> float:
    return _clock.scale


class _ScaledClock:
    """Stands in for the ``time`` module in moto's retrier: sleeps ``scale`` times as long, or until ``end_waits()``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def sleep(self, seconds: float) -> None:
        """moto 5.2.5 sleeps Retry intervals for real, with no way to speed them up."""
        with _clock.lock:
            _clock.waits.append(seconds)
        _clock.ended.wait(seconds * _clock.scale)


def end_waits() -> None:
    """End every Retry interval now and skip the ones to come, until configure() is called again.

    An aborted execution whose task failed still sleeps out its Retry interval before it sees that it
    was stopped; the local cloud calls this when it stops, so that its executions end without delay."""
    _clock.ended.set()


def waits_ended() -> bool:
    return _clock.ended.is_set()


def _wait_interval(self: Any, env: Any, wait_seconds: float) -> None:
    """moto 5.2.5 sleeps Retry intervals and Wait states for real, with no way to speed them up."""
    # moto's own loop re-enters itself for the unwaited rest in whole seconds; a scaled wait is
    # usually under a second, so wait here until the scaled deadline instead.
    deadline = time.monotonic() + wait_seconds * _clock.scale
    while env.is_running() and (remaining := deadline - time.monotonic()) > 0:
        env.program_state_event.wait(remaining)


def retry_waits() -> list[float]:
    """The Retry intervals the interpreter asked for (unscaled, in seconds), in order."""
    with _clock.lock:
        return list(_clock.waits)


# -- sfn_nested_execution ------------------------------------------------------------------------------


@cache
def _sfn_operation(operation: str) -> Any:
    """botocore's model of a Step Functions operation, by its boto3 method name (start_execution)."""
    model = botocore.session.get_session().get_service_model("stepfunctions")
    name = next(n for n in model.operation_names if xform_name(n) == operation)
    return model.operation_model(name)


def _epoch_millis(value: Any) -> Any:
    """Timestamps in a task's result, as Step Functions writes them: epoch milliseconds."""
    if isinstance(value, datetime):
        return round(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {k: _epoch_millis(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_epoch_millis(v) for v in value]
    return value


def _sfn_normalise_parameters(
    self: StateTaskServiceSfn,
    parameters: dict[str, Any],
    boto_service_name: Any = None,
    service_action_name: Any = None,
) -> None:
    """moto 5.2.5 hands the task's Parameters to boto3 under their ASL names (StateMachineArn,
    Input, Name) and leaves boto3's answer camelCase: a startExecution task fails with States.Runtime,
    cause 'StateMachineArn', and .sync/.sync:2 could not read 'ExecutionArn' from the answer either.
    Here both go through the operation's botocore shapes (what moto's own helpers do once called)."""
    original(StateTaskServiceSfn, "_normalise_parameters")(self, parameters, boto_service_name, service_action_name)
    shape = _sfn_operation(self._get_boto_service_action(service_action_name)).input_shape
    if shape is not None:
        self._to_boto_request(parameters, shape)


def _sfn_normalise_response(
    self: StateTaskServiceSfn, response: Any, boto_service_name: Any = None, service_action_name: Any = None
) -> None:
    shape = _sfn_operation(self._get_boto_service_action(service_action_name)).output_shape
    if shape is not None and isinstance(response, dict):
        self._from_boto_response(response, shape)
        response.update(_epoch_millis(response))


# -- fail_state_error_name -------------------------------------------------------------------------------


class _FailStateErrorName(ErrorName):
    """Any error name, ``States.*`` included, as a Fail state's ErrorPath may carry it (moto 5.2.5 turns a
    ``States.*`` name from ErrorPath into States.Runtime)."""


# -- states_all_terminal_error --------------------------------------------------------------------------

#: What States.ALL does not match: AWS documents States.DataLimitExceeded as a terminal error that a Retry or
#: Catch of States.ALL cannot catch (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html).
TERMINAL_ERRORS = (StatesErrorName(typ=StatesErrorNameType.StatesStatesDataLimitExceeded),)
_STATES_ALL = StatesErrorName(typ=StatesErrorNameType.StatesALL)


def _error_equals(self: ErrorEqualsDecl, env: Any) -> None:
    """moto 5.2.5 lets States.ALL match every error, States.DataLimitExceeded included: a Catch of States.ALL
    catches a result over the payload quota (and a Retry of States.ALL retries it), where on AWS the execution
    fails. Here States.ALL does not match it; an ErrorEquals that names States.DataLimitExceeded still does."""
    if _STATES_ALL in self.error_names and env.stack and env.stack[-1] in TERMINAL_ERRORS:
        env.stack.pop()
        env.stack.append(False)
        return
    original(ErrorEqualsDecl, "_eval_body")(self, env)


# -- sfn_task_clients_reused ----------------------------------------------------------------------------

#: The modules of moto's interpreter that call ``boto_client_for`` through their own import of it.
BOTO_CLIENT_USERS: tuple[str, ...] = tuple(
    f"moto.stepfunctions.parser.asl.component.state.exec.{name}"
    for name in (
        "state_map.item_reader.eval.resource_eval_s3",
        "state_map.result_writer.resource_eval.resource_eval_s3",
        "state_task.lambda_eval_utils",
        *(
            f"state_task.service.state_task_service_{service}"
            for service in ("aws_sdk", "batch", "dynamodb", "ecs", "events", "glue", "sfn", "sns", "sqs", "unsupported")
        ),
    )
)


class _LeasedClients:
    """The clients one thread holds, by key; they go back to the idle lists when the thread ends."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.clients: dict[tuple[Any, ...], Any] = {}
        weakref.finalize(self, _return_clients, generation, self.clients)


# Reentrant: a lease replaced while the lock is held (a new generation) runs its finalizer there and then.
_clients_lock = threading.RLock()
_idle_clients: dict[tuple[Any, ...], list[Any]] = {}
_client_generation = 0
_leases = threading.local()


def _return_clients(generation: int, clients: dict[tuple[Any, ...], Any]) -> None:
    with _clients_lock:
        if generation == _client_generation:
            for key, client in clients.items():
                _idle_clients.setdefault(key, []).append(client)


def client_key(region: str, service: str, state_credentials: Any) -> tuple[Any, ...]:
    """Everything boto_client_for builds a client from: what it is given and what it reads when called."""
    names = vars(boto_client)
    stubbed = bool(names["botocore_stubber"].enabled)
    endpoint = None if stubbed else f"http://localhost:{names['moto_server_port']()}"
    credentials = None if state_credentials is None else repr(state_credentials)
    timeout = names["TimeoutSeconds"].DEFAULT_TIMEOUT_SECONDS
    return (service, region, credentials, stubbed, endpoint, timeout)


def build_client(region: str, service: str, state_credentials: Any = None) -> Any:
    """A new client, as moto's own boto_client_for builds it."""
    return original(boto_client, "boto_client_for")(region, service, state_credentials)


def task_client(region: str, service: str, state_credentials: Any = None) -> Any:
    """moto 5.2.5 builds a new boto3 client for every task it runs: about 3 ms each, a third of what
    orchestrating a Lambda task took. Here a client is built once per key and leased to the
    calling thread until that thread ends (the interpreter runs each state on a thread of its own), so
    a client serves one task at a time (its connection pool is never outgrown) and the next task of
    the same kind takes it over."""
    key = client_key(region, service, state_credentials)
    with _clients_lock:
        leased: _LeasedClients | None = getattr(_leases, "held", None)
        if leased is None or leased.generation != _client_generation:
            leased = _leases.held = _LeasedClients(_client_generation)
        client = leased.clients.get(key)
        if client is None:
            idle = _idle_clients.get(key)
            # Built under the lock: boto3's default session is not safe to build clients from at once.
            client = idle.pop() if idle else build_client(region, service, state_credentials)
            leased.clients[key] = client
        return client


def _drop_clients() -> None:
    global _client_generation  # noqa: PLW0603 - the one counter the leases compare against
    with _clients_lock:
        _client_generation += 1
        idle = [client for clients in _idle_clients.values() for client in clients]
        _idle_clients.clear()
    for client in idle:
        client.close()


# -- sfn_definition_parsed_once ----------------------------------------------------------------------------

#: How many parsed definitions are kept (least recently used first out).
PROGRAMS_KEPT = 64
_programs_lock = threading.Lock()
_NOT_WALKED = (type, ModuleType, FunctionType, MethodType, Enum)


def eval_components(tree: Any) -> list[EvalComponent]:
    """Every EvalComponent a parsed program reaches, through attributes, lists, tuples, sets and dicts."""
    seen: set[int] = set()
    found: list[EvalComponent] = []
    pending: list[Any] = [tree]
    while pending:
        node = pending.pop()
        if id(node) in seen or isinstance(node, _NOT_WALKED):
            continue
        seen.add(id(node))
        if isinstance(node, EvalComponent):
            found.append(node)
        if isinstance(node, dict):
            pending.extend(node.keys())
            pending.extend(node.values())
        elif isinstance(node, list | tuple | set | frozenset):
            pending.extend(node)
        elif hasattr(node, "__dict__"):
            pending.extend(vars(node).values())
    return found


@lru_cache(maxsize=PROGRAMS_KEPT)
def parsed_program(definition: str) -> EvalComponent:
    """The definition's program, parsed once, every heap key assigned (see _evaluation_entrypoint)."""
    program = AmazonStateLanguageParser.parse(definition)[0]
    for component in eval_components(program):
        _ = component.heap_key  # assigned on first read: read here, before the tree is shared
    return program


def _evaluation_entrypoint(self: ExecutionWorker) -> EvalComponent:
    """moto 5.2.5 parses the whole definition with ANTLR for every execution it starts (about 40 ms of
    CPU for the pipeline's machine) and evaluates the component tree it builds. Here a definition is
    parsed once (the last PROGRAMS_KEPT are kept, parsed one at a time) and its executions share the tree.

    Sharing is safe because evaluation does not change the tree: an execution's state lives in its
    Environment (stack, heap, states, frames), and moto's interpreter already runs one tree on several
    threads (Map iterations and Parallel branches share their states; a Map wraps them in a new Program
    for each evaluation but parses nothing). Checked in moto's asl/component classes: no attribute is
    written after construction (__init__, from_state_props) except EvalComponent.heap_key; the objects that
    change while a state runs (iteration workers, job pools, branch workers, map run records) are made
    for that evaluation and never kept on a component; the one mutable value a component holds, a Pass
    state's Result, reaches the output only through ResultPath's deep copy.

    heap_key is a long_uid() assigned on first read, without a lock, and names the Retry attempt counter
    (MaxAttemptsDecl) and backoff multiplier (BackoffRateDecl) in the Environment's heap. Two executions
    reading it first at once could each make one, and the one whose key was overwritten would start
    counting its attempts again. So every heap key of a tree is read before the tree is shared; equal keys
    across executions are fine, each execution has its own heap. TestState executions are not changed:
    TestStateExecutionWorker parses with a parser of its own and keeps doing so."""
    with _programs_lock:
        return parsed_program(self._evaluation_details.state_machine_details.definition)


PATCHES = (
    Patch(("scaled_time",), retrier_decl, "time", _ScaledClock()),
    Patch(("scaled_time",), WaitFunction, "_wait_interval", _wait_interval),
    Patch(("sfn_nested_execution",), StateTaskServiceSfn, "_normalise_parameters", _sfn_normalise_parameters),
    Patch(("sfn_nested_execution",), StateTaskServiceSfn, "_normalise_response", _sfn_normalise_response),
    Patch(("fail_state_error_name",), state_fail, "CustomErrorName", _FailStateErrorName),
    Patch(("states_all_terminal_error",), ErrorEqualsDecl, "_eval_body", _error_equals),
    *(
        Patch(("sfn_task_clients_reused",), importlib.import_module(name), "boto_client_for", task_client)
        for name in (boto_client.__name__, *BOTO_CLIENT_USERS)
    ),
    Patch(("sfn_definition_parsed_once",), ExecutionWorker, "_get_evaluation_entrypoint", _evaluation_entrypoint),
)


def reset() -> None:
    """Close the task clients and forget the parsed programs."""
    _drop_clients()
    with _programs_lock:
        parsed_program.cache_clear()
