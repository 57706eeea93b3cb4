"""Executions as the console lists and shows them.

A page of the list is one ListExecutions call (status, start and stop come with it) and, for the
source key, one DescribeExecution per row not seen before: an execution's input never changes, so
the key is remembered by ARN and a page refreshed costs one call.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from botocore.exceptions import ClientError

from imgpipe.console import graph, history

STATUSES: Final = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE")
ENDED: Final = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
PAGE_SIZES: Final = (10, 25, 50, 100)
#: An execution name as Step Functions accepts it (1 to 80 characters, none of these).
_NAME: Final = re.compile(r"[^\s<>{}\[\]?*\"#%\\^|~`$&,;:/]{1,80}")


class NotFound(LookupError):
    """No such execution."""


class BadRequest(ValueError):
    """A parameter the console cannot use; the message is for the person who sent it."""


def source_key(input_text: str | None) -> str | None:
    """The object an execution is about: an S3 event's ``detail.object.key`` or a manual ``{"bucket", "key"}``."""
    try:
        document = json.loads(input_text or "null")
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    detail = document.get("detail")
    if isinstance(detail, dict):
        found = (detail.get("object") or {}).get("key") if isinstance(detail.get("object"), dict) else None
    else:
        found = document.get("key")
    return found if isinstance(found, str) else None


def execution_arn(state_machine_arn: str, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise NotFound(name)
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + name


def name_of(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]


def seconds(start: datetime, stop: datetime | None) -> float:
    return ((stop or datetime.now(UTC)) - start).total_seconds()


@dataclass(frozen=True)
class Row:
    name: str
    arn: str
    status: str
    start: datetime
    stop: datetime | None
    key: str | None

    @property
    def seconds(self) -> float:
        return seconds(self.start, self.stop)


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    next_token: str | None


class Lister:
    """Pages of executions, newest first, with each row's source key."""

    def __init__(self, sfn: Any, state_machine_arn: str, remembered: int = 10_000) -> None:
        self.sfn = sfn
        self.state_machine_arn = state_machine_arn
        self._keys: OrderedDict[str, str | None] = OrderedDict()
        self._remembered = remembered
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="console-describe")

    def page(self, status: str | None, token: str | None, size: int) -> Page:
        if status is not None and status not in STATUSES:
            raise BadRequest(f"unknown status {status!r}: one of {', '.join(STATUSES)}")
        if size not in PAGE_SIZES:
            raise BadRequest(f"page size {size}: one of {', '.join(map(str, PAGE_SIZES))}")
        ask: dict[str, Any] = {"stateMachineArn": self.state_machine_arn, "maxResults": size}
        if status:
            ask["statusFilter"] = status
        if token:
            ask["nextToken"] = token
        try:
            answer = self.sfn.list_executions(**ask)
        except ClientError as exc:
            if exc.response["Error"].get("Code") in ("InvalidToken", "ValidationException"):
                raise BadRequest("this page's token is not valid (any more): start again from the first page") from exc
            raise
        listed = answer.get("executions", [])
        keys = self._keys_of([e["executionArn"] for e in listed])
        rows = [
            Row(name_of(e["executionArn"]), e["executionArn"], e["status"], e["startDate"], e.get("stopDate"), keys[i])
            for i, e in enumerate(listed)
        ]
        return Page(rows, answer.get("nextToken"))

    def _keys_of(self, arns: list[str]) -> list[str | None]:
        with self._lock:
            unknown = [arn for arn in arns if arn not in self._keys]
        described = list(self._pool.map(self._describe_key, unknown))
        with self._lock:
            for arn, key in zip(unknown, described, strict=True):
                self._keys[arn] = key
            while len(self._keys) > self._remembered:
                self._keys.popitem(last=False)
            return [self._keys.get(arn) for arn in arns]

    def _describe_key(self, arn: str) -> str | None:
        try:
            return source_key(self.sfn.describe_execution(executionArn=arn).get("input"))
        except ClientError:
            return None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def describe(sfn: Any, state_machine_arn: str, name: str) -> dict[str, Any]:
    """DescribeExecution of the execution called ``name``; NotFound when there is none."""
    arn = execution_arn(state_machine_arn, name)
    try:
        return dict(sfn.describe_execution(executionArn=arn))
    except ClientError as exc:
        if exc.response["Error"].get("Code") in ("ExecutionDoesNotExist", "InvalidArn", "ValidationException"):
            raise NotFound(name) from exc
        raise


def full_history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
        events.extend(page["events"])
    return events


def definition_graph(sfn: Any, arn: str) -> dict[str, Any]:
    """The graph of the definition this execution ran (DescribeStateMachineForExecution)."""
    described = sfn.describe_state_machine_for_execution(executionArn=arn)
    try:
        definition = json.loads(described["definition"])
    except ValueError:
        definition = {}
    return graph.build(definition if isinstance(definition, dict) else {})


def live(sfn: Any, described: dict[str, Any], shape: dict[str, Any]) -> dict[str, Any]:
    """What changes while an execution runs: each state's view, the edges taken, the history table."""
    events = full_history(sfn, described["executionArn"])
    reading = history.read(events)
    running = described["status"] == "RUNNING"
    names = [n["id"] for n in shape["nodes"] if n["type"] not in ("start", "end")]
    states = history.state_views(reading, names, running)
    outcomes = {name: view["outcome"] for name, view in states.items()}
    return {
        "status": described["status"],
        "states": states,
        "taken": graph.taken(shape, reading.path, outcomes, ended=not running),
        "rows": history.history_rows(events),
    }
