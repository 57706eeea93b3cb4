"""Manual executions with inputs from events/, and their path through the states."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from localcloud.cloud import STACK, Stack, aws_client
from localcloud.sam import ROOT

PLACEHOLDER_BUCKET = "your-source-bucket"
#: Objects the inputs in events/ name, created in a fresh local cloud (rule disabled meanwhile).
EXAMPLE_OBJECTS: dict[str, bytes | None] = {
    "uploads/my holiday photo +1.jpg": None,  # a copy of samples/rocket.jpg
    "uploads/empty.jpg": b"",
    "uploads/notes.txt.jpg": b"These are notes, not a photograph.\n" * 8,
}


def _fill_bucket(document: Any, bucket: str) -> Any:
    text = json.dumps(document).replace(PLACEHOLDER_BUCKET, bucket)
    return json.loads(text)


def seed_examples(endpoint: str, stack: Stack) -> None:
    events = aws_client("events", endpoint)
    s3 = aws_client("s3", endpoint)
    rules = [r["Name"] for r in events.list_rules()["Rules"]]
    for rule in rules:
        events.disable_rule(Name=rule)
    try:
        for key, body in EXAMPLE_OBJECTS.items():
            data = (ROOT / "samples" / "rocket.jpg").read_bytes() if body is None else body
            s3.put_object(Bucket=stack.source_bucket, Key=key, Body=data)
    finally:
        for rule in rules:
            events.enable_rule(Name=rule)


def start_manual_execution(
    endpoint: str, document: Any, stack: Stack | None, timeout_s: float = 300.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Start an execution with ``document`` (bucket placeholder filled in) and wait for it to end."""
    if stack is None:
        described_stack = aws_client("cloudformation", endpoint).describe_stacks(StackName=STACK)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in described_stack.get("Outputs", [])}
        stack = Stack(STACK, outputs, {})
    else:
        seed_examples(endpoint, stack)
    sfn = aws_client("stepfunctions", endpoint)
    arn = sfn.start_execution(
        stateMachineArn=stack.state_machine_arn, input=json.dumps(_fill_bucket(document, stack.source_bucket))
    )["executionArn"]
    deadline = time.monotonic() + timeout_s
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    history: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
        history.extend(page["events"])
    return described, history


def state_path(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The states entered, in order, with duration and the number of task attempts."""
    steps: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for event in history:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            current = {
                "state": event["stateEnteredEventDetails"]["name"],
                "entered": event["timestamp"],
                "exited": None,
                "attempts": 0,
                "errors": [],
            }
            steps.append(current)
        elif current is not None and kind == "TaskScheduled":
            current["attempts"] += 1
        elif current is not None and kind in ("TaskFailed", "TaskTimedOut", "LambdaFunctionFailed"):
            details: dict[str, Any] = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
            current["errors"].append(details.get("error", kind))
        elif current is not None and kind.endswith("StateExited"):
            current["exited"] = event["timestamp"]
    return steps


def print_path(console: Console, described: dict[str, Any], history: list[dict[str, Any]]) -> None:
    table = Table(title=described["executionArn"])
    for column in ("state", "ms", "attempts", "errors"):
        table.add_column(column)
    for step in state_path(history):
        entered: datetime = step["entered"]
        exited: datetime | None = step["exited"]
        ms = f"{(exited - entered).total_seconds() * 1000:.0f}" if exited else "-"
        table.add_row(step["state"], ms, str(step["attempts"] or ""), ", ".join(step["errors"]))
    console.print(table)
    style = "green" if described["status"] == "SUCCEEDED" else "red"
    console.print(f"[{style}]{described['status']}[/]")
    if described.get("error"):
        console.print(f"error: {described['error']}\ncause: {described.get('cause')}")
    if described.get("output"):
        console.print_json(described["output"])
