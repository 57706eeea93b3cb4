"""localcloud.services.cloudformation against moto itself: each gap still there, each patch
closing it (see conftest.py)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from moto.stepfunctions.models import StateMachine

from tests.localcloud.services.helpers import PASS, ROLE, Clients, non_executing_state_machines


def _race_stack(c: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    """Create a one-state-machine stack while another thread reads it in the middle of the creation."""
    current = StateMachine.__dict__["create_from_cloudformation_json"].__func__
    reader_done = threading.Event()

    def read() -> None:
        try:
            c.cfn.describe_stacks(StackName="race")
        finally:
            reader_done.set()

    def racing(cls: Any, *args: Any, **kwargs: Any) -> Any:
        if not reader_done.is_set() and not getattr(racing, "started", False):
            racing.started = True  # type: ignore[attr-defined]
            threading.Thread(target=read).start()
            reader_done.wait(3)  # a reader that is kept out returns only after the creation
        return current(cls, *args, **kwargs)

    resources = {
        "Machine": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {"RoleArn": ROLE, "Definition": PASS}}
    }
    outputs = {"Arn": {"Value": {"Ref": "Machine"}}}
    # Undone here, before the patches are removed (a later undo would put the patched method back).
    with monkeypatch.context() as patch:
        patch.setattr(StateMachine, "create_from_cloudformation_json", classmethod(racing))
        c.cfn.create_stack(StackName="race", TemplateBody=json.dumps({"Resources": resources, "Outputs": outputs}))
        reader_done.wait(5)


def test_gap_cfn_stack_reads_wait_for_create(unpatched: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    """If this fails, moto fixed the gap:
    drop patch cfn_stack_reads_wait_for_create from localcloud.services.cloudformation."""
    c = unpatched
    _race_stack(c, monkeypatch)
    names = [n for n in non_executing_state_machines() if n.startswith("race-Machine")]
    assert len(names) == 2, f"a read during creation creates the state machine a second time: {names}"


def test_patched_cfn_stack_reads_wait_for_create(patched: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    c = patched
    _race_stack(c, monkeypatch)
    machines = [m["name"] for m in c.sfn.list_state_machines()["stateMachines"] if m["name"].startswith("race-")]
    assert len(machines) == 1, machines
    output = c.cfn.describe_stacks(StackName="race")["Stacks"][0]["Outputs"][0]["OutputValue"]
    assert output.endswith(":" + machines[0])
