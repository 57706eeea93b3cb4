"""What some images used, as a ``Measurement``: per function (Lambda REPORT lines) and per execution
(state transitions, duration and task time from its history), read from a local cloud or made from
given figures."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from imgpipe_bench.cost.prices import PRICES, ZERO, ceil_to, express_memory_mb

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud


@dataclass(frozen=True)
class FunctionUsage:
    """One function's invocations, as its REPORT lines tell."""

    name: str
    invocations: int
    billed_ms: Decimal
    """Total billed duration (cold starts include their init)."""
    memory_mb: int
    init_ms: Decimal = ZERO
    """Total init duration of the cold starts, included in billed_ms."""
    cold_starts: int = 0
    max_memory_used_mb: int = 0


@dataclass(frozen=True)
class ExecutionUsage:
    """One execution, as its history tells."""

    transitions: int
    duration_ms: Decimal
    """ExecutionStarted to the execution's last event: what Express bills."""
    task_ms: Decimal = ZERO
    """Time spent inside task attempts (scheduled to succeeded/failed); the rest is orchestration."""
    express_memory_mb: int = 64
    status: str = "SUCCEEDED"


@dataclass(frozen=True)
class Measurement:
    """What some images used: per function and per execution (one execution per image)."""

    functions: tuple[FunctionUsage, ...]
    executions: tuple[ExecutionUsage, ...]
    origin: str = "given figures"
    """Where the figures come from, as the report's caption says: "from <origin>"."""

    @property
    def images(self) -> int:
        return len(self.executions)

    def function(self, name: str) -> FunctionUsage:
        for usage in self.functions:
            if usage.name == name:
                return usage
        raise KeyError(name)


_SCHEDULED: Final = ("TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled")
_TASK_ENDED: Final = (
    "TaskSucceeded",
    "TaskFailed",
    "TaskTimedOut",
    "LambdaFunctionSucceeded",
    "LambdaFunctionFailed",
    "LambdaFunctionTimedOut",
    "ActivitySucceeded",
    "ActivityFailed",
    "ActivityTimedOut",
)


def count_transitions(events: Sequence[Mapping[str, Any]]) -> int:
    """State transitions as Standard workflows bill them: states entered, plus one per retry.

    A task attempt is a retry when its Scheduled event follows an earlier attempt's failure instead of its
    state's entry (previousEventId when the history has it, else the event just before).
    """
    by_id = {event.get("id"): event for event in events}
    transitions = 0
    for index, event in enumerate(events):
        kind = str(event["type"])
        if kind.endswith("StateEntered"):
            transitions += 1
        elif kind in _SCHEDULED:
            previous = by_id.get(event.get("previousEventId")) if event.get("previousEventId") else None
            if previous is None and index > 0:
                previous = events[index - 1]
            if previous is not None and not str(previous["type"]).endswith("StateEntered"):
                transitions += 1
    return transitions


def _ms(delta: timedelta) -> Decimal:
    return Decimal(delta // timedelta(microseconds=1)) / 1000


def _data_bytes(event: Mapping[str, Any]) -> int:
    largest = 0
    for key, details in event.items():
        if key.endswith("EventDetails") and isinstance(details, Mapping):
            for field_name in ("input", "output", "parameters"):
                value = details.get(field_name)
                if isinstance(value, str):
                    largest = max(largest, len(value.encode("utf-8")))
    return largest


def execution_usage(events: Sequence[Mapping[str, Any]], definition_bytes: int = 0) -> ExecutionUsage:
    """Transitions, duration, task time and Express memory of one execution, from its history."""
    if not events:
        raise ValueError("an execution history has at least its ExecutionStarted event")
    started: datetime = events[0]["timestamp"]
    ended: datetime = events[-1]["timestamp"]
    by_id = {event.get("id"): event for event in events}
    task_ms = ZERO
    last_started: datetime | None = None
    for event in events:
        kind = str(event["type"])
        if kind in ("TaskStarted", "LambdaFunctionStarted", "ActivityStarted"):
            last_started = event["timestamp"]
        elif kind in _TASK_ENDED:
            begin = by_id.get(event.get("previousEventId"))
            begun = begin["timestamp"] if begin is not None and str(begin["type"]).endswith("Started") else None
            begun = begun or last_started
            if begun is not None:
                task_ms += _ms(event["timestamp"] - begun)
            last_started = None
    status = str(events[-1]["type"]).removeprefix("Execution").upper()
    return ExecutionUsage(
        transitions=count_transitions(events),
        duration_ms=_ms(ended - started),
        task_ms=task_ms,
        express_memory_mb=express_memory_mb(definition_bytes, max(_data_bytes(e) for e in events)),
        status={"SUCCEEDED": "SUCCEEDED", "TIMEDOUT": "TIMED_OUT"}.get(status, status),
    )


def _logical_name(name: str) -> str:
    return name.removesuffix("Function") or name


def function_usages(reports: Iterable[tuple[str, Any]], names: Mapping[str, str] | None = None) -> list[FunctionUsage]:
    """Aggregate (function name, Invocation) pairs per function; ``names`` maps physical to display names."""
    totals: dict[str, dict[str, Any]] = {}
    for physical, invocation in reports:
        name = (names or {}).get(physical) or display_name(physical)
        entry = totals.setdefault(
            name, {"invocations": 0, "billed": ZERO, "init": ZERO, "cold": 0, "memory": 0, "peak": 0}
        )
        entry["invocations"] += 1
        entry["billed"] += Decimal(invocation.billed_ms)
        if invocation.init_ms is not None:
            entry["init"] += Decimal(str(invocation.init_ms))
            entry["cold"] += 1
        entry["memory"] = int(invocation.memory_mb)
        entry["peak"] = max(entry["peak"], int(invocation.max_memory_mb))
    return [
        FunctionUsage(
            name=name,
            invocations=entry["invocations"],
            billed_ms=entry["billed"],
            memory_mb=entry["memory"],
            init_ms=entry["init"],
            cold_starts=entry["cold"],
            max_memory_used_mb=entry["peak"],
        )
        for name, entry in totals.items()
    ]


def from_cloud(cloud: LocalCloud, execution_arns: list[str]) -> Measurement:
    """The REPORT lines the local cloud recorded and the histories of these executions."""
    sfn = cloud.client("stepfunctions")
    names: dict[str, str] = {}
    if cloud.stack is not None:
        names = {physical: _logical_name(logical) for logical, physical in cloud.stack.resources.items()}
    with cloud.stats.lock:
        reports = list(cloud.stats.reports)
    definitions: dict[str, int] = {}
    executions: list[ExecutionUsage] = []
    for arn in execution_arns:
        machine = sfn.describe_execution(executionArn=arn)["stateMachineArn"]
        if machine not in definitions:
            definition = sfn.describe_state_machine(stateMachineArn=machine)["definition"]
            definitions[machine] = len(definition.encode("utf-8"))
        events: list[dict[str, Any]] = []
        for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
            events.extend(page["events"])
        executions.append(execution_usage(events, definitions[machine]))
    functions = sorted(function_usages(reports, names), key=lambda f: _pipeline_order(f.name))
    return Measurement(tuple(functions), tuple(executions), origin=f"a local run of {len(execution_arns)} image(s)")


_ORDER: Final = ("Validate", "Resize", "Watermark", "Store", "Notify", "Cleanup")


def _pipeline_order(name: str) -> tuple[int, str]:
    return (_ORDER.index(name) if name in _ORDER else len(_ORDER), name)


def template_memory(template_path: Path | None = None) -> dict[str, int]:
    """MemorySize of each function in template.yaml (its own, else the Globals'), by display name."""
    from localcloud import sam

    template = sam.load(template_path or sam.TEMPLATE)
    default = int(template.get("Globals", {}).get("Function", {}).get("MemorySize", 128))
    return {
        _logical_name(logical): int(resource.get("Properties", {}).get("MemorySize", default))
        for logical, resource in template["Resources"].items()
        if resource.get("Type") == "AWS::Serverless::Function"
    }


def happy_path_transitions(asl_path: Path | None = None) -> int:
    """States entered by an upload that succeeds without retries: StartAt, each first Choice, to the end."""
    from localcloud.sam import ROOT

    definition = json.loads((asl_path or ROOT / "statemachines" / "image_pipeline.asl.json").read_text("utf-8"))
    states = definition["States"]
    name: str | None = definition["StartAt"]
    seen: list[str] = []
    while name is not None and name not in seen:
        seen.append(name)
        state = states[name]
        if state["Type"] in ("Succeed", "Fail") or state.get("End"):
            break
        name = state["Choices"][0]["Next"] if state["Type"] == "Choice" else state.get("Next")
    return len(seen)


def from_figures(
    *,
    ms: Mapping[str, float],
    memory_mb: Mapping[str, int] | None = None,
    transitions_per_image: int | None = None,
    execution_ms: float | None = None,
    invocations_per_image: Mapping[str, int] | None = None,
    express_memory: int = 64,
) -> Measurement:
    """One image's worth of given figures: billed ms per invocation and memory per function.

    Memory defaults to template.yaml's, transitions to the happy path of the state machine, the execution's
    duration (for Express) to the sum of the functions' durations.
    """
    memories = template_memory()
    memories.update({_match(name, memories): mb for name, mb in (memory_mb or {}).items()})
    functions = []
    for raw, duration in ms.items():
        name = _match(raw, memories)
        if name not in memories:
            raise ValueError(f"no memory size for {raw}: pass --memory {raw}=MB")
        count = (invocations_per_image or {}).get(raw, 1)
        functions.append(FunctionUsage(name, count, Decimal(str(duration)) * count, memories[name]))
    task_ms = sum((f.billed_ms for f in functions), ZERO)
    total = Decimal(str(execution_ms)) if execution_ms is not None else task_ms
    execution = ExecutionUsage(
        transitions=transitions_per_image if transitions_per_image is not None else happy_path_transitions(),
        duration_ms=total,
        task_ms=min(task_ms, total),
        express_memory_mb=int(ceil_to(Decimal(express_memory), PRICES.express_memory_chunk_mb)),
    )
    return Measurement(tuple(sorted(functions, key=lambda f: _pipeline_order(f.name))), (execution,))


def _match(raw: str, known: Iterable[str]) -> str:
    wanted = _logical_name(raw).lower()
    return next((name for name in known if name.lower() == wanted), _logical_name(raw))


def with_memory(measurement: Measurement, memory_mb: Mapping[str, int]) -> Measurement:
    """The same durations priced at other memory sizes (combine with cpu_scaling to model the CPU)."""
    names = [f.name for f in measurement.functions]
    overrides = {_match(raw, names): mb for raw, mb in memory_mb.items()}
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"no function named {', '.join(unknown)}; measured: {', '.join(names)}")
    functions = tuple(replace(f, memory_mb=overrides.get(f.name, f.memory_mb)) for f in measurement.functions)
    return replace(measurement, functions=functions)


_PHYSICAL: Final = re.compile(r"^(?P<stack>[^-]+)-(?P<logical>.+)-[A-Z0-9]{8,}$")


def display_name(physical: str) -> str:
    """``imgpipe-ResizeFunction-1BDTBXFM8OBO`` -> ``Resize`` (when the stack's resource map is not at hand)."""
    match = _PHYSICAL.match(physical)
    return _logical_name(match["logical"]) if match else physical
