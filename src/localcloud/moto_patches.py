"""Every change the local cloud makes to moto, in one place.

moto is pinned exactly (pyproject.toml). Each patch below bridges one gap measured in
that version and names it; tests/localcloud/test_moto_patches.py checks, for each one,
that the gap is still there in unpatched moto (so an upgrade that fixes it fails that
test and tells which patch to drop) and that the patched behaviour is right.
"""

from __future__ import annotations

import copy
import importlib
import json
import threading
import time
import urllib.parse
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from functools import cache, lru_cache
from types import FunctionType, MethodType, ModuleType
from typing import Any, Protocol, cast

import botocore.session
import moto
from botocore import xform_name
from moto.awslambda.models import LambdaFunction
from moto.cloudformation.models import CloudFormationBackend
from moto.core.config import default_user_config
from moto.events.models import Rule
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.s3 import notifications as s3_notifications
from moto.s3.exceptions import MissingKey
from moto.s3.models import FakeBucket, FakeKey, S3Backend
from moto.s3.responses import S3Response
from moto.stepfunctions.models import StateMachine
from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)
from moto.stepfunctions.parser.asl.component.state.fail import state_fail
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.utils import boto_client
from moto.stepfunctions.parser.backend.execution import Execution
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.stepfunctions.parser.models import StepFunctionsParserBackend
from werkzeug.datastructures import Headers

MOTO_VERSION = "5.2.5"


class Runtime(Protocol):
    """What the patches call back into: the local cloud's Lambda workers and event delivery."""

    def invoke(self, function: Any, payload: bytes) -> tuple[bytes, str | None]:
        """Run a function; return the response payload and the error type (None on success)."""

    def deliver(self, rule: Any, target: dict[str, Any], event: dict[str, Any]) -> None:
        """Deliver an event to a rule target that moto cannot reach (a state machine)."""


@dataclass
class _Originals:
    state_machine_cfn: Any
    bucket_cfn: Any
    send_event_bridge_message: Any
    rule_send_to_targets: Any
    start_execution: Any
    lambda_invoke: Any
    function_cfn: Any
    retrier_time: Any
    wait_interval: Any
    execution_worker: Any
    cfn: dict[str, Any]
    sfn_normalise_parameters: Any
    sfn_normalise_response: Any  # None: inherited, nothing to restore but the inheritance
    dispatch: Any
    fail_error_name: Any
    boto_client_for: dict[str, Any]
    backend_for_host: Any
    evaluation_entrypoint: Any
    s3_response_put_object: Any
    s3_response_delete_object: Any
    s3_backend_put_object: Any
    s3_backend_delete_object: Any
    complete_multipart_upload: Any


@dataclass
class _State:
    originals: _Originals | None = None
    runtime: Runtime | None = None
    time_scale: float = 1.0
    retry_waits: list[float] = field(default_factory=list)
    mock_config: dict[str, Any] | None = None
    saved_sfn_config: dict[str, Any] | None = None
    faults: list[Fault] = field(default_factory=list)


_lock = threading.Lock()
_state = _State()


def _require_runtime() -> Runtime:
    if _state.runtime is None:
        raise RuntimeError("the local cloud runtime is not attached (call moto_patches.apply)")
    return _state.runtime


def _originals() -> _Originals:
    if _state.originals is None:
        raise RuntimeError("moto is not patched (call moto_patches.apply)")
    return _state.originals


# -- 1. CloudFormation state machines land in the executing backend, with substitutions -------


def _state_machine_from_cfn(
    cls: Any,
    /,
    resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> Any:
    """moto 5.2.5 creates CloudFormation state machines in the non-executing backend and
    ignores DefinitionSubstitutions, an object Definition and StateMachineType."""
    from moto.stepfunctions.responses import get_backend

    properties = cloudformation_json["Properties"]
    name = properties.get("StateMachineName", resource_name)
    definition = properties.get("DefinitionString") or properties.get("Definition") or ""
    if not isinstance(definition, str):
        definition = json.dumps(definition)
    for placeholder, value in (properties.get("DefinitionSubstitutions") or {}).items():
        definition = definition.replace("${" + placeholder + "}", str(value))
    backend = get_backend(account_id, region_name)
    return backend.create_state_machine(
        name,
        definition,
        properties.get("RoleArn", ""),
        tags=[{"key": t["Key"], "value": t["Value"]} for t in properties.get("Tags", [])],
        sm_type=properties.get("StateMachineType", "STANDARD"),
    )


# -- 2. A bucket's EventBridge notifications and versioning from CloudFormation --------------


def _bucket_from_cfn(
    cls: Any,
    /,
    resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> FakeBucket:
    """moto 5.2.5 ignores a bucket's NotificationConfiguration and its VersioningConfiguration in
    CloudFormation (the bucket is created unversioned, without EventBridge notifications)."""
    bucket: FakeBucket = _originals().bucket_cfn.__func__(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    )
    properties = cloudformation_json.get("Properties", {})
    config = properties.get("NotificationConfiguration", {})
    if config.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled") in (True, "true", "True"):
        bucket.set_notification_configuration({"EventBridgeConfiguration": {}})
    status = properties.get("VersioningConfiguration", {}).get("Status")
    if status in ("Enabled", "Suspended"):
        bucket.versioning_status = status
    return bucket


# -- 3. S3 events to EventBridge in AWS's shape, errors not swallowed -------------------------


#: ``deletion-type`` of an Object Deleted event, by the S3 event name moto sends.
_DELETION_TYPES = {
    "s3:ObjectRemoved:Delete": "Permanently Deleted",
    "s3:ObjectRemoved:DeleteMarkerCreated": "Delete Marker Created",
}


def s3_object_event(account_id: str, bucket: Any, event_name: str, key: Any) -> dict[str, Any]:
    """The EventBridge event S3 sends (https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html).

    An Object Deleted event names no size or ETag; its reason is the API (``DeleteObject``) and its
    ``deletion-type`` says whether a delete marker was created or a version removed for good.
    """
    detail_type = s3_notifications._detail_type(event_name)
    obj: dict[str, Any] = {"key": key.name}
    if detail_type != "Object Deleted":
        obj.update(size=key.size, etag=key.etag.replace('"', ""))
    obj["sequencer"] = f"{int(datetime.now(UTC).timestamp() * 1e6):016X}"
    if key.version_id and key.version_id != "null":
        obj["version-id"] = key.version_id
    extra: dict[str, str] = {}
    if event_name in _DELETION_TYPES:
        extra = {"reason": "DeleteObject", "deletion-type": _DELETION_TYPES[event_name]}
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": bucket.region_name,
        "resources": [bucket.arn],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket.name},
            "object": obj,
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": account_id,
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject" if event_name.endswith("Put") else event_name.rsplit(":", maxsplit=1)[-1],
            **extra,
        },
    }


def _send_event_bridge_message(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
    """moto 5.2.5 writes ``eTag`` (AWS: ``etag``), a float ``time``, a fixed ``id``, sends to
    every bus (AWS: the default bus) and swallows every error on the way."""
    from moto.events.models import events_backends

    event = s3_object_event(account_id, bucket, event_name, key)
    bus = events_backends[account_id][bucket.region_name].event_buses.get("default")
    if bus is None:
        return
    for rule in list(bus.rules.values()):
        if rule.state == "ENABLED":
            rule.send_to_targets(cast(Any, event), transform_input=False)


# -- 4. Rules whose target is a state machine ---------------------------------------------


def _rule_send_to_targets(self: Rule, original_event: Any, transform_input: bool = True) -> None:
    """moto 5.2.5 raises NotImplementedError for a state machine target, which also aborts the
    rule's other targets. State machine targets go to the runtime (retry policy, DLQ)."""
    if self.state != "ENABLED" or not self.event_pattern.matches_event(original_event):
        return
    ours = [t for t in self.targets if t["Arn"].split(":")[2] == "states"]
    others = [t for t in self.targets if t not in ours]
    for target in ours:
        _require_runtime().deliver(self, target, copy.deepcopy(original_event))
    if others:
        proxy = copy.copy(self)
        proxy.targets = others
        _originals().rule_send_to_targets(proxy, _moto_time(original_event), transform_input)


def _moto_time(event: Any) -> Any:
    """moto's own targets (SQS, CloudWatch Logs) take ``time`` in epoch seconds and format it themselves."""
    if not isinstance(event.get("time"), str):
        return event
    return {**event, "time": datetime.fromisoformat(event["time"]).timestamp()}


# -- 5. Nameless executions ----------------------------------------------------------------


def _start_execution(
    self: StepFunctionsParserBackend, state_machine_arn: str, name: Any = None, *args: Any, **kwargs: Any
) -> Any:
    """moto 5.2.5 gives a nameless execution the ARN suffix ``:None`` and refuses the second one."""
    return _originals().start_execution(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)


# -- 6. Lambda invocations run in the local workers -----------------------------------------


def _lambda_invoke(self: LambdaFunction, body: str, request_headers: Any, response_headers: Any) -> bytes:
    """moto 5.2.5 runs functions with ``docker run`` only (or echoes the payload without Docker)."""
    payload = body.encode() if isinstance(body, str) else (body or b"{}")
    result, error_type = _require_runtime().invoke(self, payload or b"{}")
    if error_type is not None:
        response_headers["x-amz-function-error"] = "Unhandled"
    return result


# -- 7. Functions keep their layers from CloudFormation ---------------------------------------


def _function_from_cfn(
    cls: Any,
    /,
    resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> LambdaFunction:
    """moto 5.2.5 drops a CloudFormation function's Layers (and resolves a Ref to a layer
    version to the model object rather than its ARN)."""
    from moto.awslambda.models import lambda_backends

    function: LambdaFunction = _originals().function_cfn.__func__(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    )
    storage = lambda_backends[account_id][region_name]._layers
    arns: list[str] = []
    for value in cloudformation_json.get("Properties", {}).get("Layers") or []:
        ref = str(getattr(value, "arn", value))  # a Ref to a LayerVersion resolves to the model object
        if not ref.startswith("arn:"):
            versions = storage.get_layer_versions(ref)
            if not versions:
                raise ValueError(f"{resource_name}: layer {ref!r} does not exist")
            ref = max(versions, key=lambda v: v.version).arn
        arns.append(ref)
    if arns and not function.layers:
        function.layers = function._get_layers_data(arns)
    return function


# -- 8. Retry and Wait times, scalable --------------------------------------------------------


class _ScaledClock:
    """Stands in for the ``time`` module in moto's retrier: sleeps ``scale`` times as long, or until ``end_waits()``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def sleep(self, seconds: float) -> None:
        with _lock:
            _state.retry_waits.append(seconds)
        _waits_ended.wait(seconds * _state.time_scale)


#: Set by end_waits(): Retry intervals end at once (the executions are being stopped).
_waits_ended = threading.Event()


def end_waits() -> None:
    """End every Retry interval now and skip the ones to come, until the patches are applied again.

    An aborted execution whose task failed still sleeps out its Retry interval before it sees that it
    was stopped; the local cloud calls this when it stops, so that its executions end without delay."""
    _waits_ended.set()


def _wait_interval(self: Any, env: Any, wait_seconds: float) -> None:
    """moto 5.2.5 sleeps Retry intervals and Wait states for real, with no way to speed them up."""
    # moto's own loop re-enters itself for the unwaited rest in whole seconds; a scaled wait is
    # usually under a second, so wait here until the scaled deadline instead.
    deadline = time.monotonic() + wait_seconds * _state.time_scale
    while env.is_running() and (remaining := deadline - time.monotonic()) > 0:
        env.program_state_event.wait(remaining)


def retry_waits() -> list[float]:
    """The Retry intervals the interpreter asked for (unscaled, in seconds), in order."""
    with _lock:
        return list(_state.retry_waits)


# -- 9. Mocked responses, as Step Functions Local runs them ------------------------------------


def _start_execution_with_mocks(
    self: StepFunctionsParserBackend, state_machine_arn: str, name: Any = None, *args: Any, **kwargs: Any
) -> Any:
    """moto 5.2.5 carries Step Functions Local's mock machinery but never loads a mock config and
    rejects ``stateMachineArn#TestCase``. Here the test case is read from the configured file and
    handed to the execution's worker (on this thread: the worker starts inside start_execution)."""
    base, _, case = state_machine_arn.partition("#")
    if case:
        from moto.stepfunctions.exceptions import InvalidName

        from localcloud import mock_config

        if _state.mock_config is None:
            raise InvalidName(f"no mock config file is loaded for test case {case!r}")
        machine = self.describe_state_machine(base)
        try:
            _pending.mock_test_case = mock_config.test_case(_state.mock_config, machine.name, case)
        except mock_config.MockConfigError as exc:
            raise InvalidName(str(exc)) from None
    try:
        return _start_execution(self, base, name, *args, **kwargs)
    finally:
        _pending.mock_test_case = None


def _execution_worker(self: Any) -> Any:
    worker = _originals().execution_worker(self)
    mock = getattr(_pending, "mock_test_case", None)
    if mock is not None:
        worker._mock_test_case = mock
    return worker


_pending = threading.local()


# -- 10. A stack is not read while it is being created -----------------------------------------

_CFN_GUARDED = (
    "create_stack",
    "describe_stacks",
    "describe_stack_resource",
    "describe_stack_resources",
    "list_stack_resources",
)
_cfn_lock = threading.RLock()


def _cfn_serialised(name: str) -> Any:
    """moto 5.2.5 lists a stack before its resources exist and creates resources on first reference:
    a DescribeStacks that arrives during CreateStack evaluates the outputs and creates a second copy
    of resources (two state machines, the rule targeting one, the output naming the other)."""

    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _cfn_lock:
            return _originals().cfn[name](self, *args, **kwargs)

    guarded.__name__ = name
    return guarded


# -- 11. Fault injection at the server's front door --------------------------------------------


@dataclass
class Fault:
    """Answer the next ``count`` matching requests with an error, as an overloaded service would.

    ``service`` is read from the request's SigV4 credential scope (s3, sns, dynamodb, ...);
    ``method`` and ``path_prefix`` narrow it (for S3, the path is ``/<bucket>/<key>``).
    """

    service: str
    count: int
    method: str | None = None
    path_prefix: str = "/"
    status: int = 503
    code: str = "SlowDown"
    hits: int = 0


def _service_of(environ: dict[str, Any]) -> str:
    scope = environ.get("HTTP_AUTHORIZATION", "").split("Credential=", 1)[-1].split(",", 1)[0].split("/")
    return scope[3] if len(scope) >= 5 else ""


def _error_body(fault: Fault, service: str) -> tuple[bytes, str]:
    message = "Reduce your request rate." if fault.code == "SlowDown" else "Injected by the local cloud."
    if service in ("s3",):
        body = f"<Error><Code>{fault.code}</Code><Message>{message}</Message></Error>"
    else:
        body = (
            f"<ErrorResponse><Error><Type>Receiver</Type><Code>{fault.code}</Code>"
            f"<Message>{message}</Message></Error></ErrorResponse>"
        )
    return body.encode(), "application/xml"


def _dispatch(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
    """moto has no way to make a service fail on purpose; the local cloud needs one to prove retries."""
    if _state.faults:
        service = _service_of(environ)
        path = urllib.parse.unquote(environ.get("PATH_INFO", ""))
        with _lock:
            fault = next(
                (
                    f
                    for f in _state.faults
                    if f.hits < f.count
                    and f.service == service
                    and (f.method is None or f.method == environ.get("REQUEST_METHOD"))
                    and path.startswith(f.path_prefix)
                ),
                None,
            )
            if fault is not None:
                fault.hits += 1
        if fault is not None:
            body, content_type = _error_body(fault, service)
            start_response(
                f"{fault.status} Injected", [("Content-Type", content_type), ("Content-Length", str(len(body)))]
            )
            return [body]
    return _originals().dispatch(self, environ, start_response)


def inject(fault: Fault) -> Fault:
    """Arm a fault; returns it so the caller can read ``hits``."""
    with _lock:
        _state.faults.append(fault)
    return fault


def clear_faults() -> None:
    with _lock:
        _state.faults.clear()


# -- 12. Nested executions: states:startExecution, .sync and .sync:2 ------------------------------


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
    _originals().sfn_normalise_parameters(self, parameters, boto_service_name, service_action_name)
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


# -- 13. A Fail state keeps a States.* error name from ErrorPath ---------------------------------


class _FailStateErrorName(ErrorName):
    """Any error name, ``States.*`` included, as a Fail state's ErrorPath may carry it."""


# -- 14. Task clients are reused, not built for every task --------------------------------------

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


def _client_key(region: str, service: str, state_credentials: Any) -> tuple[Any, ...]:
    """Everything boto_client_for builds a client from: what it is given and what it reads when called."""
    names = vars(boto_client)
    stubbed = bool(names["botocore_stubber"].enabled)
    endpoint = None if stubbed else f"http://localhost:{names['moto_server_port']()}"
    credentials = None if state_credentials is None else repr(state_credentials)
    timeout = names["TimeoutSeconds"].DEFAULT_TIMEOUT_SECONDS
    return (service, region, credentials, stubbed, endpoint, timeout)


def _boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
    """moto 5.2.5 builds a new boto3 client for every task it runs: about 3 ms each, a third of what
    orchestrating a Lambda task took. Here a client is built once per key and leased to the
    calling thread until that thread ends (the interpreter runs each state on a thread of its own), so
    a client serves one task at a time (its connection pool is never outgrown) and the next task of
    the same kind takes it over."""
    key = _client_key(region, service, state_credentials)
    with _clients_lock:
        leased: _LeasedClients | None = getattr(_leases, "held", None)
        if leased is None or leased.generation != _client_generation:
            leased = _leases.held = _LeasedClients(_client_generation)
        client = leased.clients.get(key)
        if client is None:
            idle = _idle_clients.get(key)
            if idle:
                client = idle.pop()
            else:
                # Built under the lock: boto3's default session is not safe to build clients from at once.
                client = _originals().boto_client_for[boto_client.__name__](region, service, state_credentials)
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


# -- 15. The server finds a request's backend without listing moto's package each time -----------

_hosts: weakref.WeakKeyDictionary[Any, dict[str | None, Any]] = weakref.WeakKeyDictionary()


def _backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
    """moto 5.2.5 lists its package directory (a stat per service) and tries every service's URL
    patterns, for every request, under the dispatcher's one lock: about half a millisecond a request.
    Both are fixed once moto is installed and the dispatcher made, so the answer for a host is too."""
    known = _hosts.setdefault(self, {})
    if host not in known:
        known[host] = _originals().backend_for_host(self, host)
    return known[host]


# -- 16. A definition is parsed once, not for every execution --------------------------------------

#: How many parsed definitions are kept (least recently used first out).
PROGRAMS_KEPT = 64
_programs_lock = threading.Lock()
_NOT_WALKED = (type, ModuleType, FunctionType, MethodType, Enum)


def _eval_components(tree: Any) -> list[EvalComponent]:
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
def _parsed_program(definition: str) -> EvalComponent:
    program = AmazonStateLanguageParser.parse(definition)[0]
    for component in _eval_components(program):
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
        return _parsed_program(self._evaluation_details.state_machine_details.definition)


# -- 17. Conditional writes and deletes are atomic ---------------------------------------------


class _KeyLocks:
    """One reentrant lock per object (account, bucket, key), kept while anyone holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str, str], tuple[threading.RLock, int]] = {}

    @contextmanager
    def hold(self, key: tuple[str, str, str]) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key) or (threading.RLock(), 0)
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)


_key_locks = _KeyLocks()


def _requested_object(response: S3Response) -> tuple[str, str, str]:
    return (response.backend.account_id, response.bucket_name, response.parse_key_name())


def _s3_response_put_object(self: S3Response) -> Any:
    """moto 5.2.5 checks PutObject's If-Match and If-None-Match, then writes, with nothing between the
    two: two requests that read the same ETag can both pass the check and both write, where S3 lets
    one of them through and fails the other (412 PreconditionFailed, or 409 ConditionalRequestConflict
    while the first is in flight). Here the check and the write hold the object's lock, which every
    write and delete of that object takes (the backend's put_object and delete_object, so also copies
    and completed multipart uploads): the second request is checked against what the first wrote."""
    with _key_locks.hold(_requested_object(self)):
        return _originals().s3_response_put_object(self)


def _s3_response_delete_object(self: S3Response) -> Any:
    """DeleteObject's If-Match check and the delete, under the object's lock (see _s3_response_put_object)."""
    with _key_locks.hold(_requested_object(self)):
        return _delete_if_match_any(self)


def _s3_backend_put_object(self: S3Backend, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> FakeKey:
    with _key_locks.hold((self.account_id, bucket_name, key_name)):
        key: FakeKey = _originals().s3_backend_put_object(self, bucket_name, key_name, *args, **kwargs)
        return key


def _s3_backend_delete_object(self: S3Backend, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
    with _key_locks.hold((self.account_id, bucket_name, key_name)):
        result = _originals().s3_backend_delete_object(self, bucket_name, key_name, *args, **kwargs)
        _versioned_deletion_event(
            self, bucket_name, key_name, kwargs.get("version_id", args[0] if args else None), result
        )
        return result


# -- 18. DeleteObject with If-Match: * ----------------------------------------------------------


def _delete_if_match_any(self: S3Response) -> Any:
    """moto 5.2.5 compares ``If-Match: *`` with the object's ETag and answers 412 PreconditionFailed;
    S3 takes ``*`` for any ETag: DeleteObject deletes the object (404 NoSuchKey when there is none)."""
    if self.headers.get("If-Match") != "*":
        return _originals().s3_response_delete_object(self)
    if self.backend.get_object(self.bucket_name, self.parse_key_name()) is None:
        raise MissingKey
    headers = self.headers
    self.headers = Headers([(name, value) for name, value in headers.items() if name.lower() != "if-match"])
    try:
        return _originals().s3_response_delete_object(self)
    finally:
        self.headers = headers


# -- 19. A completed multipart upload is one Object Created event -------------------------------


class _QuietPuts:
    """An S3 backend whose put_object sends no event; everything else is the backend's own."""

    def __init__(self, backend: S3Backend) -> None:
        self._backend = backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def put_object(self, *args: Any, **kwargs: Any) -> FakeKey:
        return self._backend.put_object(*args, **{**kwargs, "disable_notification": True})


def _complete_multipart_upload(self: S3Backend, bucket_name: str, multipart_id: str, body: Any) -> FakeKey | None:
    """moto 5.2.5 sends two Object Created events for a completed multipart upload: one for the
    put_object it makes inside (reason PutObject), then its own (reason CompleteMultipartUpload).
    S3 sends one, with reason CompleteMultipartUpload. Here the inner put sends nothing."""
    key: FakeKey | None = _originals().complete_multipart_upload(_QuietPuts(self), bucket_name, multipart_id, body)
    return key


# -- 20. Deletions in a versioned bucket are Object Deleted events ------------------------------


class _RemovedVersion:
    """The object a permanent deletion names (its key and the version removed)."""

    def __init__(self, name: str, version_id: str) -> None:
        self.name = name
        self.version_id = version_id


def _versioned_deletion_event(
    backend: S3Backend, bucket_name: str, key_name: str, version_id: Any, result: Any
) -> None:
    """moto 5.2.5 sends no event when DeleteObject creates a delete marker in a versioned bucket, and
    for a permanent deletion of one version only when it was the key's last. S3 sends Object Deleted
    for both: ``deletion-type`` "Delete Marker Created" (``version-id`` the marker's) or "Permanently
    Deleted" (``version-id`` the version removed). Runs inside the object's lock (section 17)."""
    deleted, meta = result
    bucket = backend.get_bucket(bucket_name)
    if not deleted or not bucket.is_versioned:
        return  # unversioned: moto sends its Permanently Deleted event itself
    if version_id is None and meta.get("delete-marker") == "true":
        marker = bucket.keys.get(key_name)
        event, key = s3_notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT, marker
    elif version_id is not None and bucket.keys.getlist(key_name, []):
        event, key = (
            s3_notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_EVENT,
            _RemovedVersion(key_name, str(version_id)),
        )
    else:
        return  # the key's last version: moto sent the event
    s3_notifications.send_event(backend.account_id, event, bucket, key)


# -- apply / remove -------------------------------------------------------------------------

PATCHES: dict[str, str] = {
    "cfn_state_machine_executes": "StateMachine.create_from_cloudformation_json",
    "cfn_bucket_eventbridge": "FakeBucket.create_from_cloudformation_json",
    "cfn_bucket_versioning": "FakeBucket.create_from_cloudformation_json (with cfn_bucket_eventbridge)",
    "s3_eventbridge_event_shape": "moto.s3.notifications._send_event_bridge_message",
    "events_state_machine_target": "Rule.send_to_targets",
    "sfn_nameless_execution": "StepFunctionsParserBackend.start_execution",
    "lambda_runs_locally": "LambdaFunction.invoke",
    "cfn_function_layers": "LambdaFunction.create_from_cloudformation_json",
    "scaled_time": "retrier_decl.time.sleep and WaitFunction._wait_interval",
    "cfn_stack_reads_wait_for_create": "CloudFormationBackend.create_stack and its describe/list calls",
    "sfn_nested_execution": "StateTaskServiceSfn._normalise_parameters and _normalise_response",
    "fault_injection": "DomainDispatcherApplication.__call__",
    "fail_state_error_name": "state_fail.CustomErrorName (a States.* ErrorPath became States.Runtime)",
    "sfn_mock_config": "StepFunctionsParserBackend.start_execution (#Case), Execution._get_start_execution_worker",
    "sfn_task_clients_reused": "boto_client.boto_client_for, and each BOTO_CLIENT_USERS module's import of it",
    "dispatch_backend_lookup_cached": "DomainDispatcherApplication.get_backend_for_host",
    "sfn_definition_parsed_once": "ExecutionWorker._get_evaluation_entrypoint",
    "s3_conditional_writes_atomic": "S3Response.put_object and delete_object, S3Backend.put_object and delete_object",
    "s3_delete_if_match_any": "S3Response.delete_object (inside the object's lock of s3_conditional_writes_atomic)",
    "s3_multipart_one_created_event": "S3Backend.complete_multipart_upload",
    "s3_versioned_deletion_event": "S3Backend.delete_object (inside the object's lock of s3_conditional_writes_atomic)",
}


def apply(
    runtime: Runtime,
    *,
    execute_state_machines: bool = True,
    time_scale: float = 1.0,
    mock_config: dict[str, Any] | None = None,
) -> None:
    """Install every patch and attach the runtime. Idempotent; ``remove()`` undoes it."""
    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(f"the local cloud patches moto {MOTO_VERSION}; moto {moto.__version__} is installed")
    with _lock:
        _state.runtime = runtime
        _state.time_scale = time_scale
        _state.mock_config = mock_config
        _state.retry_waits.clear()
        _waits_ended.clear()
        config: Any = default_user_config.setdefault("stepfunctions", {})
        if _state.saved_sfn_config is None:
            _state.saved_sfn_config = dict(config)
        config["execute_state_machine"] = execute_state_machines
        if _state.originals is not None:
            return
        _state.originals = _Originals(
            state_machine_cfn=StateMachine.__dict__["create_from_cloudformation_json"],
            bucket_cfn=FakeBucket.__dict__["create_from_cloudformation_json"],
            send_event_bridge_message=s3_notifications._send_event_bridge_message,
            rule_send_to_targets=Rule.send_to_targets,
            start_execution=StepFunctionsParserBackend.start_execution,
            lambda_invoke=LambdaFunction.invoke,
            function_cfn=LambdaFunction.__dict__["create_from_cloudformation_json"],
            retrier_time=getattr(retrier_decl, "time"),  # noqa: B009 - the module's own import of time
            wait_interval=WaitFunction._wait_interval,
            execution_worker=Execution._get_start_execution_worker,
            cfn={name: getattr(CloudFormationBackend, name) for name in _CFN_GUARDED},
            sfn_normalise_parameters=StateTaskServiceSfn.__dict__["_normalise_parameters"],
            sfn_normalise_response=StateTaskServiceSfn.__dict__.get("_normalise_response"),
            dispatch=DomainDispatcherApplication.__call__,
            fail_error_name=vars(state_fail)["CustomErrorName"],
            boto_client_for={
                name: vars(importlib.import_module(name))["boto_client_for"]
                for name in (boto_client.__name__, *BOTO_CLIENT_USERS)
            },
            backend_for_host=DomainDispatcherApplication.get_backend_for_host,
            evaluation_entrypoint=ExecutionWorker._get_evaluation_entrypoint,
            s3_response_put_object=S3Response.put_object,
            s3_response_delete_object=S3Response.delete_object,
            s3_backend_put_object=S3Backend.put_object,
            s3_backend_delete_object=S3Backend.delete_object,
            complete_multipart_upload=S3Backend.complete_multipart_upload,
        )
        StateMachine.create_from_cloudformation_json = classmethod(_state_machine_from_cfn)  # type: ignore[assignment,method-assign]
        FakeBucket.create_from_cloudformation_json = classmethod(_bucket_from_cfn)  # type: ignore[assignment,method-assign]
        s3_notifications._send_event_bridge_message = _send_event_bridge_message
        Rule.send_to_targets = _rule_send_to_targets  # type: ignore[method-assign]
        StepFunctionsParserBackend.start_execution = _start_execution_with_mocks  # type: ignore[method-assign]
        LambdaFunction.invoke = _lambda_invoke  # type: ignore[method-assign]
        LambdaFunction.create_from_cloudformation_json = classmethod(_function_from_cfn)  # type: ignore[assignment,method-assign]
        setattr(retrier_decl, "time", _ScaledClock())  # noqa: B010 - replaces that import
        WaitFunction._wait_interval = _wait_interval  # type: ignore[method-assign]
        Execution._get_start_execution_worker = _execution_worker  # type: ignore[method-assign]
        for name in _CFN_GUARDED:
            setattr(CloudFormationBackend, name, _cfn_serialised(name))
        StateTaskServiceSfn._normalise_parameters = _sfn_normalise_parameters  # type: ignore[method-assign]
        StateTaskServiceSfn._normalise_response = _sfn_normalise_response  # type: ignore[assignment,method-assign]
        DomainDispatcherApplication.__call__ = _dispatch  # type: ignore[method-assign]
        setattr(state_fail, "CustomErrorName", _FailStateErrorName)  # noqa: B010 - the module's own import
        for name in _state.originals.boto_client_for:
            setattr(importlib.import_module(name), "boto_client_for", _boto_client_for)  # noqa: B010 - its own import
        DomainDispatcherApplication.get_backend_for_host = _backend_for_host  # type: ignore[method-assign]
        ExecutionWorker._get_evaluation_entrypoint = _evaluation_entrypoint  # type: ignore[method-assign]
        S3Response.put_object = _s3_response_put_object  # type: ignore[method-assign]
        S3Response.delete_object = _s3_response_delete_object  # type: ignore[method-assign]
        S3Backend.put_object = _s3_backend_put_object  # type: ignore[method-assign]
        S3Backend.delete_object = _s3_backend_delete_object  # type: ignore[method-assign]
        S3Backend.complete_multipart_upload = _complete_multipart_upload  # type: ignore[method-assign]


def remove() -> None:
    """Restore moto as it was."""
    with _lock:
        originals = _state.originals
        if originals is None:
            return
        StateMachine.create_from_cloudformation_json = originals.state_machine_cfn  # type: ignore[method-assign]
        FakeBucket.create_from_cloudformation_json = _originals().bucket_cfn  # type: ignore[method-assign]
        s3_notifications._send_event_bridge_message = originals.send_event_bridge_message
        Rule.send_to_targets = originals.rule_send_to_targets  # type: ignore[method-assign]
        StepFunctionsParserBackend.start_execution = originals.start_execution  # type: ignore[method-assign]
        LambdaFunction.invoke = originals.lambda_invoke  # type: ignore[method-assign]
        LambdaFunction.create_from_cloudformation_json = originals.function_cfn  # type: ignore[method-assign]
        setattr(retrier_decl, "time", originals.retrier_time)  # noqa: B010
        WaitFunction._wait_interval = originals.wait_interval  # type: ignore[method-assign]
        Execution._get_start_execution_worker = originals.execution_worker  # type: ignore[method-assign]
        for name, original in originals.cfn.items():
            setattr(CloudFormationBackend, name, original)
        StateTaskServiceSfn._normalise_parameters = originals.sfn_normalise_parameters  # type: ignore[method-assign]
        if originals.sfn_normalise_response is None:
            del StateTaskServiceSfn._normalise_response
        else:
            StateTaskServiceSfn._normalise_response = originals.sfn_normalise_response  # type: ignore[method-assign]
        DomainDispatcherApplication.__call__ = originals.dispatch  # type: ignore[method-assign]
        setattr(state_fail, "CustomErrorName", originals.fail_error_name)  # noqa: B010
        for name, original in originals.boto_client_for.items():
            setattr(importlib.import_module(name), "boto_client_for", original)  # noqa: B010
        _drop_clients()
        DomainDispatcherApplication.get_backend_for_host = originals.backend_for_host  # type: ignore[method-assign]
        _hosts.clear()
        ExecutionWorker._get_evaluation_entrypoint = originals.evaluation_entrypoint  # type: ignore[method-assign]
        with _programs_lock:
            _parsed_program.cache_clear()
        S3Response.put_object = originals.s3_response_put_object  # type: ignore[method-assign]
        S3Response.delete_object = originals.s3_response_delete_object  # type: ignore[method-assign]
        S3Backend.put_object = originals.s3_backend_put_object  # type: ignore[method-assign]
        S3Backend.delete_object = originals.s3_backend_delete_object  # type: ignore[method-assign]
        S3Backend.complete_multipart_upload = originals.complete_multipart_upload  # type: ignore[method-assign]
        _state.faults.clear()
        _state.originals = None
        _state.runtime = None
        _state.mock_config = None
        config: Any = default_user_config.setdefault("stepfunctions", {})
        config.clear()
        config.update(_state.saved_sfn_config or {})
        _state.saved_sfn_config = None
