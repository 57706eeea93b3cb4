"""What happened to each state of one execution, read from GetExecutionHistory.

Each state gets an outcome: ``succeeded``; ``retried`` (succeeded after N retries); ``caught`` (its
last attempt failed and a Catch took the execution on); ``failed`` (the execution ended there, or it
is a Fail state); ``running``; or, for states the execution never entered, ``not-entered``. With it:
its input and output, its error and cause, and each attempt with its duration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

SCHEDULED: Final = frozenset({"TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled"})
STARTED: Final = frozenset({"TaskStarted", "LambdaFunctionStarted", "ActivityStarted"})
SUCCEEDED: Final = frozenset({"TaskSucceeded", "LambdaFunctionSucceeded", "ActivitySucceeded"})
FAILED: Final = frozenset(
    {
        "TaskFailed",
        "TaskStartFailed",
        "TaskSubmitFailed",
        "LambdaFunctionFailed",
        "LambdaFunctionStartFailed",
        "LambdaFunctionScheduleFailed",
        "ActivityFailed",
        "ActivityScheduleFailed",
    }
)
TIMED_OUT: Final = frozenset({"TaskTimedOut", "LambdaFunctionTimedOut", "ActivityTimedOut"})
EXECUTION_ENDED: Final = frozenset({"ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"})
#: Inputs and outputs are shown up to this many characters (a payload may be 256 KiB).
SHOWN_CHARS: Final = 32_000


def readable(cause: str | None) -> str | None:
    """A cause as people read it: a Lambda error's ``errorMessage`` rather than its JSON, stack trace and all."""
    try:
        found = json.loads(cause or "")
    except ValueError:
        return cause
    if isinstance(found, dict) and isinstance(found.get("errorMessage"), str):
        return str(found["errorMessage"])
    return cause


def details(event: dict[str, Any]) -> dict[str, Any]:
    """The event's ``...EventDetails`` member (each event type has its own), or {}."""
    return next((v for k, v in event.items() if k.endswith("EventDetails") and isinstance(v, dict)), {})


@dataclass
class Attempt:
    number: int
    scheduled: datetime
    started: datetime | None = None
    ended: datetime | None = None
    result: str = "running"  # succeeded | failed | timed out | running
    error: str | None = None
    cause: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "result": self.result,
            "started": (self.started or self.scheduled).isoformat(),
            "ms": _ms(self.started or self.scheduled, self.ended),
            "error": self.error,
            "cause": self.cause,
        }


@dataclass
class Visit:
    """One entry into a state, to its exit."""

    state: str
    kind: str  # the event type's prefix: Task, Choice, Pass, Fail, Succeed, Wait, Map, Parallel
    entered: datetime
    input: str | None
    exited: datetime | None = None
    output: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    error: str | None = None
    cause: str | None = None
    followed: bool = False  # another state was entered after this one

    def outcome(self, execution_running: bool) -> str:
        if self.kind == "Fail":
            return "failed"
        last = self.attempts[-1] if self.attempts else None
        failed = last is not None and last.result in ("failed", "timed out")
        if failed:
            if self.followed:
                return "caught"
            return "running" if execution_running else "failed"  # a Retry may still come
        if self.exited is not None or self.followed:
            return "retried" if len(self.attempts) > 1 else "succeeded"
        return "running" if execution_running else "failed"


@dataclass
class Reading:
    """An execution's history, read: the visits in order and how the execution ended."""

    visits: list[Visit] = field(default_factory=list)
    ended: str | None = None  # the Execution* event that ended it
    error: str | None = None
    cause: str | None = None
    started: datetime | None = None

    @property
    def path(self) -> list[str]:
        return [visit.state for visit in self.visits]


def read(history: list[dict[str, Any]]) -> Reading:
    """Walk the events once, in order."""
    reading = Reading()
    for event in history:
        kind: str = event["type"]
        found = details(event)
        when: datetime = event["timestamp"]
        visit = reading.visits[-1] if reading.visits else None
        if kind == "ExecutionStarted":
            reading.started = when
        elif kind.endswith("StateEntered"):
            if visit is not None:
                visit.followed = True
            reading.visits.append(
                Visit(found.get("name", "?"), kind.removesuffix("StateEntered"), when, found.get("input"))
            )
        elif kind.endswith("StateExited") and visit is not None:
            visit.exited, visit.output = when, found.get("output")
        elif kind in EXECUTION_ENDED:
            reading.ended, reading.error, reading.cause = kind, found.get("error"), found.get("cause")
            if visit is not None and visit.exited is None:
                visit.error = visit.error or found.get("error")
                visit.cause = visit.cause or readable(found.get("cause"))
        elif visit is not None:
            _attempt_event(visit, kind, found, when)
    return reading


def _attempt_event(visit: Visit, kind: str, found: dict[str, Any], when: datetime) -> None:
    if kind in SCHEDULED:
        visit.attempts.append(Attempt(len(visit.attempts) + 1, when))
        return
    if not visit.attempts:
        return
    attempt = visit.attempts[-1]
    if kind in STARTED:
        attempt.started = when
    elif kind in SUCCEEDED:
        attempt.ended, attempt.result = when, "succeeded"
    elif kind in FAILED or kind in TIMED_OUT:
        attempt.ended = when
        attempt.result = "timed out" if kind in TIMED_OUT else "failed"
        attempt.error = found.get("error") or ("States.Timeout" if kind in TIMED_OUT else None)
        attempt.cause = readable(found.get("cause"))
        visit.error, visit.cause = attempt.error, attempt.cause


def state_views(reading: Reading, names: list[str], execution_running: bool) -> dict[str, dict[str, Any]]:
    """What the page shows for each state of the definition (``names``) and each state entered."""
    views: dict[str, dict[str, Any]] = {
        name: {"name": name, "outcome": "not-entered", "visits": 0, "retries": 0, "attempts": []} for name in names
    }
    for visit in reading.visits:
        view = views.setdefault(visit.state, {"name": visit.state, "visits": 0, "retries": 0, "attempts": []})
        view["visits"] += 1
        view["retries"] += max(0, len(visit.attempts) - 1)
        view["attempts"] += [a.view() for a in visit.attempts]
        view.update(
            outcome=visit.outcome(execution_running),
            entered=visit.entered.isoformat(),
            exited=visit.exited.isoformat() if visit.exited else None,
            ms=_ms(visit.entered, visit.exited),
            input=shown(visit.input),
            output=shown(visit.output),
            error=visit.error,
            cause=visit.cause,
        )
    return views


def shown(payload: str | None) -> str | None:
    """A payload as the page shows it: JSON indented, cut at SHOWN_CHARS with a note."""
    if payload is None:
        return None
    try:
        text = json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    except ValueError:
        text = payload
    if len(text) > SHOWN_CHARS:
        return text[:SHOWN_CHARS] + f"\n… ({len(text) - SHOWN_CHARS:,} more characters)"
    return text


def history_rows(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history table: each event with its state, milliseconds since the start, and its error."""
    rows = []
    start: datetime | None = history[0]["timestamp"] if history else None
    state = ""
    for event in history:
        found = details(event)
        if event["type"].endswith("StateEntered"):
            state = found.get("name", "")
        rows.append(
            {
                "id": event.get("id"),
                "type": event["type"],
                "state": found.get("name", state if not event["type"].startswith("Execution") else ""),
                "timestamp": event["timestamp"],
                "ms": _ms(start, event["timestamp"]) if start else None,
                "error": found.get("error"),
                "cause": readable(found.get("cause")),
            }
        )
    return rows


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() * 1000)
