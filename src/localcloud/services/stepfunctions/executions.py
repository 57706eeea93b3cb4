"""State machines and their executions in moto's executing backend.

Patches: ``cfn_state_machine_executes``, ``sfn_nameless_execution``, ``sfn_mock_config``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from moto.core.config import default_user_config
from moto.stepfunctions.models import StateMachine
from moto.stepfunctions.parser.backend.execution import Execution
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

from localcloud.patching import Patch, original
from localcloud.services.stepfunctions import mock_config as mock_configuration


@dataclass
class _Config:
    mock_config: dict[str, Any] | None = None
    saved: dict[str, Any] | None = None  # moto's stepfunctions config before configure()


_config = _Config()
_pending = threading.local()


def configure(*, execute_state_machines: bool = True, mock_config: dict[str, Any] | None = None) -> None:
    """Make moto execute state machines (or not) and load Step Functions Local's mock test cases."""
    config: Any = default_user_config.setdefault("stepfunctions", {})
    if _config.saved is None:
        _config.saved = dict(config)
    config["execute_state_machine"] = execute_state_machines
    _config.mock_config = mock_config


def reset() -> None:
    """moto's stepfunctions config as it was before configure(); no mock config."""
    config: Any = default_user_config.setdefault("stepfunctions", {})
    if _config.saved is not None:
        config.clear()
        config.update(_config.saved)
    _config.saved = None
    _config.mock_config = None


# -- cfn_state_machine_executes ----------------------------------------------------------------------


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


# -- sfn_nameless_execution, sfn_mock_config ----------------------------------------------------------


def _start_execution(
    self: StepFunctionsParserBackend, state_machine_arn: str, name: Any = None, *args: Any, **kwargs: Any
) -> Any:
    """moto 5.2.5 gives a nameless execution the ARN suffix ``:None`` and refuses the second one.

    It also carries Step Functions Local's mock machinery but never loads a mock config and rejects
    ``stateMachineArn#TestCase``. Here the test case is read from the configured file and handed to
    the execution's worker (on this thread: the worker starts inside start_execution)."""
    base, _, case = state_machine_arn.partition("#")
    if case:
        from moto.stepfunctions.exceptions import InvalidName

        if _config.mock_config is None:
            raise InvalidName(f"no mock config file is loaded for test case {case!r}")
        machine = self.describe_state_machine(base)
        try:
            _pending.mock_test_case = mock_configuration.test_case(_config.mock_config, machine.name, case)
        except mock_configuration.MockConfigError as exc:
            raise InvalidName(str(exc)) from None
    try:
        start = original(StepFunctionsParserBackend, "start_execution")
        return start(self, base, name or str(uuid.uuid4()), *args, **kwargs)
    finally:
        _pending.mock_test_case = None


def _execution_worker(self: Any) -> Any:
    worker = original(Execution, "_get_start_execution_worker")(self)
    mock = getattr(_pending, "mock_test_case", None)
    if mock is not None:
        worker._mock_test_case = mock
    return worker


PATCHES = (
    Patch(
        ("cfn_state_machine_executes",),
        StateMachine,
        "create_from_cloudformation_json",
        classmethod(_state_machine_from_cfn),
    ),
    Patch(
        ("sfn_nameless_execution", "sfn_mock_config"), StepFunctionsParserBackend, "start_execution", _start_execution
    ),
    Patch(("sfn_mock_config",), Execution, "_get_start_execution_worker", _execution_worker),
)


# -- watching and stopping executions ---------------------------------------------------------------


def backend_of(arn: str) -> Any:
    """The executing backend that holds a state machine or execution, by its ARN."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    parts = arn.split(":")
    return stepfunctions_parser_backends[parts[4]][parts[3]]


def running_count(machine_arn: str) -> int | None:
    """How many executions of the state machine run; None when there is no such machine."""
    try:
        machine = backend_of(machine_arn).describe_state_machine(machine_arn)
    except Exception:  # noqa: BLE001 - any lookup failure means: not one of ours
        return None
    return sum(1 for e in list(machine.executions) if getattr(e, "exec_status", None) == "RUNNING")


def _running() -> list[Any]:
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    running: list[Any] = []
    for regions in list(stepfunctions_parser_backends.values()):
        for backend in list(regions.values()):
            for machine in list(backend.state_machines):
                found: list[Any] = list(machine.executions)  # the executing backend's, with exec_status
                running += [e for e in found if getattr(e.exec_status, "value", e.exec_status) == "RUNNING"]
    return running


def _abort(error: str) -> int:
    """Abort every running execution (it ends after the state it is in); how many still run."""
    running = _running()
    for execution in running:
        worker = execution.exec_worker
        if worker is not None and getattr(worker, "env", None) is not None:  # env: made on the worker's thread
            worker.stop(stop_date=datetime.now(UTC), error=error, cause="the local cloud stopped")
    return len(running)


def threads_started() -> int:
    """How many threads moto's interpreter has started in this process (its list only grows)."""
    from moto.stepfunctions.parser.utils import TMP_THREADS

    return len(TMP_THREADS)


def end_all(error: str, threads_from: int, deadline: float, *, report: bool = True) -> bool:
    """Abort the running executions (with ``error``) and wait, until ``deadline``, for them and the
    interpreter threads started since ``threads_from`` to end. Whether they did (if not and
    ``report``, a line on stderr says so)."""
    from moto.stepfunctions.parser.utils import TMP_THREADS

    while _abort(error) or any(thread.is_alive() for thread in TMP_THREADS[threads_from:]):
        if time.monotonic() > deadline:
            if report:
                print("local cloud: executions still running after stop; abandoned", file=sys.stderr)
            return False
        time.sleep(0.02)
    return True


def wait_until_ended(arn: str, timeout_s: float, describe: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """Wait until the execution has ended; what ``describe`` (DescribeExecution) then says of it.

    The execution runs in this process, so its status is watched here: polling DescribeExecution over
    HTTP would take CPU (and the GIL) from the very interpreter it waits for.
    """
    deadline = time.monotonic() + timeout_s
    try:
        execution: Any = backend_of(arn).describe_execution(arn)
    except Exception:  # noqa: BLE001 - not one of ours: DescribeExecution answers with the service's error
        return describe(arn)
    while getattr(execution.exec_status, "value", "RUNNING") == "RUNNING":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{arn} still RUNNING after {timeout_s} s")
        time.sleep(0.005)
    return describe(arn)
