"""What the execution page says of each state, from histories as Step Functions writes them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from imgpipe.console import executions, graph, history

ASL = json.loads((Path(__file__).resolve().parents[2] / "statemachines" / "image_pipeline.asl.json").read_text())
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class History:
    """Builds a history event by event, 10 ms apart."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def add(self, kind: str, **details: Any) -> History:
        event: dict[str, Any] = {
            "id": len(self.events) + 1,
            "type": kind,
            "timestamp": T0 + timedelta(milliseconds=10 * len(self.events)),
        }
        if details:
            name = kind[0].lower() + kind[1:]
            key = {"stateEntered": "stateEnteredEventDetails", "stateExited": "stateExitedEventDetails"}
            suffix = (
                "StateEntered"
                if kind.endswith("StateEntered")
                else "StateExited"
                if kind.endswith("StateExited")
                else ""
            )
            field = (
                key["stateEntered"]
                if suffix == "StateEntered"
                else key["stateExited"]
                if suffix
                else name + "EventDetails"
            )
            event[field] = details
        self.events.append(event)
        return self

    def task(self, name: str, *results: str, exit_state: bool = True) -> History:
        """A Task state: one attempt per result (``ok``, ``fail:<Error>``, ``timeout``)."""
        self.add("TaskStateEntered", name=name, input='{"in": 1}')
        for result in results:
            self.add("TaskScheduled", resource="invoke").add("TaskStarted", resource="invoke")
            if result == "ok":
                self.add("TaskSucceeded", output='{"Payload": {}}')
            elif result == "timeout":
                self.add("TaskTimedOut", error="States.Timeout")
            else:
                self.add("TaskFailed", error=result.removeprefix("fail:"), cause="because")
        if exit_state:
            self.add("TaskStateExited", name=name, output='{"out": 1}')
        return self

    def state(self, kind: str, name: str) -> History:
        return self.add(f"{kind}StateEntered", name=name, input="{}").add(f"{kind}StateExited", name=name, output="{}")


NAMES = list(ASL["States"])
SHAPE = graph.build(ASL)


def views(h: History, running: bool = False) -> dict[str, dict[str, Any]]:
    return history.state_views(history.read(h.events), NAMES, running)


def test_a_successful_execution_colours_its_six_states_and_leaves_the_others_not_entered() -> None:
    h = History().add("ExecutionStarted", input="{}").task("Validate", "ok").state("Choice", "Route")
    for name in ("Resize", "Watermark", "Store", "Notify"):
        h.task(name, "ok")
    h.add("ExecutionSucceeded", output="{}")
    found = views(h)
    entered = {n for n, v in found.items() if v["outcome"] != "not-entered"}
    assert entered == {"Validate", "Route", "Resize", "Watermark", "Store", "Notify"}
    assert {v["outcome"] for n, v in found.items() if n in entered} == {"succeeded"}
    assert found["Resize"]["attempts"][0]["ms"] == 10, "TaskStarted to TaskSucceeded"
    assert found["Resize"]["ms"] == 40, "entered to exited"
    assert json.loads(found["Resize"]["output"]) == {"out": 1}
    reading = history.read(h.events)
    outcomes = {n: v["outcome"] for n, v in found.items()}
    taken = [SHAPE["edges"][i] for i in graph.taken(SHAPE, reading.path, outcomes, ended=True)]
    assert [(e["from"], e["to"]) for e in taken] == [
        (graph.START, "Validate"),
        ("Validate", "Route"),
        ("Route", "Resize"),
        ("Resize", "Watermark"),
        ("Watermark", "Store"),
        ("Store", "Notify"),
        ("Notify", graph.END),
    ]
    assert taken[2]["label"] == "PROCESS"


def test_retried_caught_and_failed_states() -> None:
    h = History().add("ExecutionStarted").task("Validate", "ok").state("Choice", "Route")
    h.task("Resize", "fail:TransientError", "timeout", "ok")
    h.task("Watermark", "fail:CorruptImage", exit_state=False)
    h.task("Cleanup", "ok").state("Choice", "Failed or Superseded").task("Publish Failure", "ok")
    h.add("FailStateEntered", name="Failed", input="{}")
    h.add("ExecutionFailed", error="CorruptImage", cause="the data is bad")
    found = views(h)
    assert (found["Resize"]["outcome"], found["Resize"]["retries"]) == ("retried", 2)
    assert [a["result"] for a in found["Resize"]["attempts"]] == ["failed", "timed out", "succeeded"]
    assert found["Resize"]["attempts"][1]["error"] == "States.Timeout"
    assert found["Watermark"]["outcome"] == "caught"
    assert (found["Watermark"]["error"], found["Watermark"]["cause"]) == ("CorruptImage", "because")
    assert found["Failed"]["outcome"] == "failed"
    assert (found["Failed"]["error"], found["Failed"]["cause"]) == ("CorruptImage", "the data is bad")
    assert found["Cleanup"]["outcome"] == found["Publish Failure"]["outcome"] == "succeeded"
    assert found["Store"]["outcome"] == "not-entered"
    reading = history.read(h.events)
    taken = [
        SHAPE["edges"][i] for i in graph.taken(SHAPE, reading.path, {n: v["outcome"] for n, v in found.items()}, True)
    ]
    catch = next(e for e in taken if e["from"] == "Watermark")
    assert (catch["to"], catch["kind"]) == ("Cleanup", "catch")


def test_a_task_that_failed_and_ended_the_execution_is_failed_and_a_running_one_is_running() -> None:
    ended = History().add("ExecutionStarted").task("Validate", "fail:Boom", exit_state=False)
    assert views(ended.add("ExecutionFailed", error="Boom"))["Validate"]["outcome"] == "failed"
    waiting = History().add("ExecutionStarted").task("Validate", "fail:TransientError", exit_state=False)
    assert views(waiting, running=True)["Validate"]["outcome"] == "running", "a Retry may still come"
    busy = History().add("ExecutionStarted").add("TaskStateEntered", name="Validate", input="{}").add("TaskScheduled")
    assert views(busy, running=True)["Validate"]["outcome"] == "running"
    aborted = History().add("ExecutionStarted").add("TaskStateEntered", name="Validate", input="{}")
    assert views(aborted.add("ExecutionAborted"))["Validate"]["outcome"] == "failed"


def test_the_graph_has_every_state_and_every_way_out() -> None:
    ids = {n["id"] for n in SHAPE["nodes"]}
    assert ids == set(ASL["States"]) | {graph.START, graph.END}
    route = {(e["to"], e["label"]) for e in SHAPE["edges"] if e["from"] == "Route"}
    assert route == {
        ("Resize", "PROCESS"),
        ("Remove Outputs", "DELETED"),
        ("Superseded", "SUPERSEDED"),
        ("Cleanup", "default"),
    }
    catches = {e["from"] for e in SHAPE["edges"] if e["kind"] == "catch"}
    assert {"Validate", "Resize", "Watermark", "Store", "Notify", "Remove Outputs", "Cleanup"} <= catches
    assert {e["from"] for e in SHAPE["edges"] if e["to"] == graph.END} == {
        "Notify",
        "Remove Outputs",
        "Superseded",
        "Failed",
    }


@pytest.mark.parametrize(
    ("document", "key"),
    [
        ({"detail": {"object": {"key": "uploads/a+b.jpg"}}}, "uploads/a+b.jpg"),
        ({"bucket": "b", "key": "uploads/x.png"}, "uploads/x.png"),
        ({"detail": "odd"}, None),
        ([1, 2], None),
        ("not json", None),
    ],
)
def test_the_source_key_of_an_execution_input(document: Any, key: str | None) -> None:
    text = document if document == "not json" else json.dumps(document)
    assert executions.source_key(text) == key


def test_payloads_are_indented_and_cut() -> None:
    assert history.shown('{"a":1}') == '{\n  "a": 1\n}'
    long = json.dumps("x" * (history.SHOWN_CHARS + 10))
    cut = history.shown(long)
    assert cut is not None
    assert cut.endswith("more characters)")
    assert history.shown(None) is None


def test_a_lambda_errors_cause_reads_as_its_message() -> None:
    lambda_cause = json.dumps({"errorType": "Runtime.ExitError", "errorMessage": "signal: killed", "trace": []})
    assert history.readable(lambda_cause) == "signal: killed"
    assert history.readable("the JPEG data is truncated") == "the JPEG data is truncated"
    assert history.readable('["a list"]') == '["a list"]'
    assert history.readable(None) is None
