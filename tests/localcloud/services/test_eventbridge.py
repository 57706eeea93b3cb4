"""localcloud.services.eventbridge against moto itself: each gap still there, each patch
closing it (see conftest.py)."""

from __future__ import annotations

import json
import re

import pytest

from tests.localcloud.services.helpers import (
    PASS,
    ROLE,
    Clients,
    FakeRuntime,
    make_queue,
    make_rule,
    make_state_machine,
    queue_bodies,
)

MY_APP = json.dumps({"source": ["my.app"]})


def test_gap_events_state_machine_target(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap:
    drop patch events_state_machine_target from localcloud.services.eventbridge."""
    c = unpatched
    sm = make_state_machine(c, PASS)
    url, queue_arn = make_queue(c, "also")
    make_rule(
        c, "both", [{"Id": "a-sm", "Arn": sm, "RoleArn": ROLE}, {"Id": "b-queue", "Arn": queue_arn}], pattern=MY_APP
    )

    with pytest.raises(NotImplementedError, match=re.escape("Expr not defined for <class 'moto.events.models.Rule'>")):
        c.events.put_events(Entries=[{"Source": "my.app", "DetailType": "thing", "Detail": "{}"}])
    assert queue_bodies(c, url) == []  # the state machine target aborted the rule's other targets
    assert c.sfn.list_executions(stateMachineArn=sm)["executions"] == []


def test_patched_events_state_machine_target(patched: Clients, runtime: FakeRuntime) -> None:
    c = patched
    sm = make_state_machine(c, PASS)
    url, queue_arn = make_queue(c, "also")
    sm_target = {"Id": "a-sm", "Arn": sm, "RoleArn": ROLE, "RetryPolicy": {"MaximumRetryAttempts": 3}}
    make_rule(c, "both", [sm_target, {"Id": "b-queue", "Arn": queue_arn}], pattern=MY_APP)

    reply = c.events.put_events(
        Entries=[
            {"Source": "my.app", "DetailType": "thing", "Detail": json.dumps({"n": 1})},
            {"Source": "other.app", "DetailType": "thing", "Detail": json.dumps({"n": 2})},
        ]
    )

    assert reply["FailedEntryCount"] == 0
    [(rule, target, event)] = runtime.deliveries
    assert rule == "both"
    assert target == sm_target
    assert event["source"] == "my.app"
    assert event["detail"] == {"n": 1}
    assert event["id"] == reply["Entries"][0]["EventId"]
    [body] = queue_bodies(c, url)
    assert body["source"] == "my.app"
    assert body["detail"] == {"n": 1}
    # Delivery is the runtime's job: moto itself started nothing.
    assert c.sfn.list_executions(stateMachineArn=sm)["executions"] == []
