"""localcloud.emulator and localcloud.patching: every patch applied and undone, every gap tested twice."""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import moto
import pytest
from moto.awslambda.models import LambdaFunction
from moto.cloudformation.models import CloudFormationBackend
from moto.core.config import default_user_config
from moto.events.models import Rule
from moto.moto_server import werkzeug_app
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.s3 import notifications as s3_notifications
from moto.s3.models import FakeBucket, S3Backend
from moto.s3.responses import S3Response
from moto.stepfunctions.models import StateMachine
from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)
from moto.stepfunctions.parser.asl.component.state.fail import state_fail
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.utils import boto_client
from moto.stepfunctions.parser.backend.execution import Execution
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

from localcloud import emulator, patching
from localcloud.services import eventbridge
from localcloud.services.cloudformation import CFN_GUARDED
from localcloud.services.lambda_ import service as lambda_service
from localcloud.services.stepfunctions import interpreter
from tests.localcloud.services.helpers import PASS, FakeRuntime


def _patched_attributes() -> dict[str, Any]:
    return {
        "StateMachine.create_from_cloudformation_json": StateMachine.__dict__["create_from_cloudformation_json"],
        "FakeBucket.create_from_cloudformation_json": FakeBucket.__dict__["create_from_cloudformation_json"],
        "s3_notifications._send_event_bridge_message": s3_notifications._send_event_bridge_message,
        "Rule.send_to_targets": Rule.__dict__["send_to_targets"],
        "StepFunctionsParserBackend.start_execution": StepFunctionsParserBackend.__dict__["start_execution"],
        "LambdaFunction.invoke": LambdaFunction.__dict__["invoke"],
        "LambdaFunction.create_from_cloudformation_json": LambdaFunction.__dict__["create_from_cloudformation_json"],
        "retrier_decl.time": vars(retrier_decl)["time"],
        "WaitFunction._wait_interval": WaitFunction.__dict__["_wait_interval"],
        "Execution._get_start_execution_worker": Execution.__dict__["_get_start_execution_worker"],
        "StateTaskServiceSfn._normalise_parameters": StateTaskServiceSfn.__dict__["_normalise_parameters"],
        "StateTaskServiceSfn._normalise_response": StateTaskServiceSfn.__dict__.get("_normalise_response"),
        "DomainDispatcherApplication.__call__": DomainDispatcherApplication.__dict__["__call__"],
        "state_fail.CustomErrorName": vars(state_fail)["CustomErrorName"],
        "ErrorEqualsDecl._eval_body": vars(ErrorEqualsDecl)["_eval_body"],
        **{f"CloudFormationBackend.{name}": CloudFormationBackend.__dict__[name] for name in CFN_GUARDED},
        **{
            f"{name}.boto_client_for": vars(importlib.import_module(name))["boto_client_for"]
            for name in (boto_client.__name__, *interpreter.BOTO_CLIENT_USERS)
        },
        "DomainDispatcherApplication.get_backend_for_host": vars(DomainDispatcherApplication)["get_backend_for_host"],
        "ExecutionWorker._get_evaluation_entrypoint": vars(ExecutionWorker)["_get_evaluation_entrypoint"],
        "S3Response.put_object": vars(S3Response)["put_object"],
        "S3Response.delete_object": vars(S3Response)["delete_object"],
        "S3Backend.put_object": vars(S3Backend)["put_object"],
        "S3Backend.delete_object": vars(S3Backend)["delete_object"],
        "S3Backend.complete_multipart_upload": vars(S3Backend)["complete_multipart_upload"],
        "S3Response.setup_class": vars(S3Response)["setup_class"],
        "S3Response.bucket_response": vars(S3Response)["bucket_response"],
        "S3Response._bucket_response_post": vars(S3Response)["_bucket_response_post"],
        "S3Response.key_response": vars(S3Response)["key_response"],
        "S3Response._response_options": vars(S3Response)["_response_options"],
        "werkzeug_app.CORS": vars(werkzeug_app)["CORS"],
    }


def test_remove_restores_every_original(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not patching.applied()
    # apply/remove write to moto's process-wide config: let them write to a copy, restored afterwards.
    monkeypatch.setitem(default_user_config, "stepfunctions", dict(default_user_config.get("stepfunctions", {})))
    executing_before = default_user_config["stepfunctions"].get("execute_state_machine", False)
    before = _patched_attributes()
    runtime = FakeRuntime()
    try:
        emulator.apply(invoker=runtime, deliverer=runtime, time_scale=0.5)
        emulator.apply(
            invoker=runtime, deliverer=runtime, time_scale=0.25
        )  # idempotent: the originals are kept, not re-read
        during = _patched_attributes()
        assert [name for name in before if during[name] is before[name]] == []
        assert len(patching.applied()) == len(before), "every patch is among the attributes checked here"
        assert default_user_config["stepfunctions"]["execute_state_machine"] is True
        assert interpreter.time_scale() == 0.25
        interpreter.parsed_program(json.dumps(PASS))
        assert interpreter.parsed_program.cache_info().currsize == 1
    finally:
        emulator.remove()
    assert interpreter.parsed_program.cache_info().currsize == 0, "no program outlives the patches"
    after = _patched_attributes()
    assert [name for name in before if after[name] is not before[name]] == []
    assert not patching.applied()
    for slot in (lambda_service.INVOKER, eventbridge.DELIVERY):
        with pytest.raises(RuntimeError, match="is not attached"):
            slot.get()
    assert default_user_config["stepfunctions"].get("execute_state_machine", False) == executing_before
    emulator.remove()  # removing twice is harmless
    assert _patched_attributes() == after


def test_apply_refuses_another_moto_version(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not patching.applied()
    before = _patched_attributes()
    monkeypatch.setattr(moto, "__version__", "5.2.6")
    try:
        with pytest.raises(RuntimeError, match=r"patches moto 5\.2\.5; moto 5\.2\.6 is installed"):
            emulator.apply(invoker=FakeRuntime(), deliverer=FakeRuntime())
    finally:
        emulator.remove()
    assert not patching.applied()
    assert _patched_attributes() == before


def test_the_pinned_moto_is_the_patched_one() -> None:
    assert moto.__version__ == patching.MOTO_VERSION


SERVICE_TESTS = Path(__file__).parent / "services"


def _gap_tests() -> dict[str, list[tuple[str, Callable[..., Any]]]]:
    """Every test_gap_* and test_patched_* function of the service tests, by name, with its module."""
    found: dict[str, list[tuple[str, Callable[..., Any]]]] = {}
    for path in sorted(SERVICE_TESTS.rglob("test_*.py")):
        module = importlib.import_module(".".join(path.relative_to(SERVICE_TESTS.parents[2]).with_suffix("").parts))
        for name, value in vars(module).items():
            if name.startswith(("test_gap_", "test_patched_")) and callable(value):
                found.setdefault(name, []).append((module.__name__, value))
    return found


@pytest.mark.parametrize("name", sorted(emulator.gaps()))
def test_every_gap_has_both_tests_beside_its_service(name: str) -> None:
    service = emulator.gaps()[name].__name__  # localcloud.services.s3, localcloud.services.lambda_.service, ...
    tests = _gap_tests()
    [(gap_module, gap_test)] = tests[f"test_gap_{name}"]
    [(patched_module, _)] = tests[f"test_patched_{name}"]
    assert gap_module == patched_module
    # Beside the service: tests/localcloud/services/ for a module, tests/localcloud/services/<package>/ for a package's.
    package = service.split(".")[2:-1]
    assert gap_module.rsplit(".", 1)[0] == ".".join(["tests", "localcloud", "services", *package]), gap_module
    assert f"drop patch {name} from {service}" in (gap_test.__doc__ or "")


@pytest.mark.parametrize("name", sorted(emulator.gaps()))
def test_every_gap_is_described_by_its_patch(name: str) -> None:
    """A patch's docstring says what the pinned moto does ("moto 5.2.5 ..."), so the gap is read where it is closed."""
    closing = [patch for patch in emulator.patches() if name in patch.closes]
    docs = [inspect.getdoc(getattr(patch.replacement, "__func__", patch.replacement)) or "" for patch in closing]
    assert any(f"moto {patching.MOTO_VERSION} " in doc for doc in docs), [patch.target for patch in closing]
