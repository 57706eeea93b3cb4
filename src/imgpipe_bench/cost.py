"""What the pipeline would cost on AWS per million images, from a local run or from given figures.

    imgpipe cost [PATH...] [--json] [--images N] [--duration-scale X] [--parameter K=V]
    imgpipe cost --transitions-per-image 8 --ms Resize=300 --ms Watermark=150 --memory Resize=1769

One table of published prices (``PRICES``, us-east-1, with its date), a ``Measurement`` of what one
image uses (Lambda REPORT lines per function, state transitions and durations per execution), and
``estimate()`` turning the two into dollars for Standard and Express workflows on x86_64 and arm64.

How AWS bills, as read here:

- **Lambda**: $ per request, plus $ per GB-second = billed duration (1 ms granularity; since August 2025
  the init phase of on-demand ZIP functions is billed too, so a cold start's billed duration includes its
  Init Duration, as the local REPORT lines do) x configured memory / 1024. arm64 and x86_64 differ only
  in the GB-s price.
- **Step Functions Standard**: $ per state transition. Each state entered is one transition (Choice, Pass,
  Task, Succeed and Fail states alike); each retry of a task is one more. Read from
  ``get_execution_history``: one per ``*StateEntered`` event, plus one per ``TaskScheduled`` (or
  ``LambdaFunctionScheduled``/``ActivityScheduled``) that follows a failed attempt rather than its
  state's entry.
- **Step Functions Express**: $ per execution (request), plus $ per GB-second where, per execution, the
  duration (start to end) is rounded up to the next 100 ms and the memory is rounded up to the next 64 MB
  chunk. AWS estimates an execution's memory as 50 MB + the definition's size + the execution data size
  (times the number of Map/Parallel iterations; this machine has none), so a workflow passing S3
  references bills 64 MB: ``express_memory_mb()``. AWS's own example counts 1 MB = 1000 KB; so does this.

What a local run cannot show, and the knobs for it:

- Durations are this machine's. ``duration_scale`` multiplies every Lambda duration (and the time an
  Express execution spends in its tasks; the orchestration time between tasks is kept as measured).
- On Lambda, CPU is proportional to memory (1769 MB = one vCPU); a local worker always has a whole core.
  ``cpu_scaling=True`` treats each function as CPU-bound: its duration at M MB below 1769 is the local one
  x 1769 / M (no gain above 1769 MB for single-threaded code). Without it, durations are taken as if
  memory did not matter (right for I/O-bound code). The truth for a mixed function lies between the two.
- A handful of local images starts a worker per function and core: half the invocations are cold. At a
  million images they are a small fraction: ``cold_start_rate`` (the CLI's default, 1%, is what AWS's
  operator guide reports for production workloads) replaces the measured one.

Not included: S3 requests and storage, CloudWatch Logs, DynamoDB, SNS, KMS, data transfer, free tiers, and
the cheaper tiers above the first (the report says when the volume leaves the first tier).
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud


# ---------------------------------------------------------------------------------------------- prices


@dataclass(frozen=True)
class Prices:
    """Published on-demand prices, in US dollars, for one region on one date."""

    source: str
    as_of: date
    region: str
    lambda_request: Decimal
    """Per Lambda request (invocation, retries included)."""
    lambda_gb_s_x86: Decimal
    lambda_gb_s_arm64: Decimal
    lambda_first_tier_gb_s_x86: Decimal
    """GB-seconds per month billed at the prices above; cheaper beyond."""
    lambda_first_tier_gb_s_arm64: Decimal
    standard_transition: Decimal
    """Per state transition of a Standard workflow (retries count)."""
    express_request: Decimal
    """Per Express execution started."""
    express_gb_s: Decimal
    express_first_tier_gb_hours: Decimal
    express_duration_increment_ms: int
    express_memory_chunk_mb: int
    express_base_memory_mb: Decimal
    """What AWS adds to the definition and data sizes when it estimates an Express execution's memory."""
    cpu_full_vcpu_mb: int
    """Lambda allocates CPU in proportion to memory; this much memory is one full vCPU."""


PRICES: Final = Prices(
    source=(
        "https://aws.amazon.com/lambda/pricing/ and https://aws.amazon.com/step-functions/pricing/ "
        "(us-east-1), as recorded in design/performance-facts.md"
    ),
    as_of=date(2026, 11, 24),
    region="us-east-1",
    lambda_request=Decimal("0.20") / 1_000_000,
    lambda_gb_s_x86=Decimal("0.0000166667"),
    lambda_gb_s_arm64=Decimal("0.0000133334"),
    lambda_first_tier_gb_s_x86=Decimal(6_000_000_000),
    lambda_first_tier_gb_s_arm64=Decimal(7_500_000_000),
    standard_transition=Decimal("0.025") / 1000,
    express_request=Decimal("1.00") / 1_000_000,
    express_gb_s=Decimal("0.00001667"),
    express_first_tier_gb_hours=Decimal(1000),
    express_duration_increment_ms=100,
    express_memory_chunk_mb=64,
    express_base_memory_mb=Decimal(50),
    cpu_full_vcpu_mb=1769,
)

#: AWS's Lambda operator guide: in production workloads cold starts are under 1% of invocations.
STEADY_COLD_START_RATE: Final = Decimal("0.01")
ARCHITECTURES: Final = ("x86_64", "arm64")
WORKFLOWS: Final = ("STANDARD", "EXPRESS")
_ZERO: Final = Decimal(0)


def _ceil_to(value: Decimal, step: int) -> Decimal:
    """``value`` rounded up to a multiple of ``step`` (at least one step)."""
    steps = (value / step).to_integral_value(rounding=ROUND_CEILING)
    return max(Decimal(1), steps) * step


def express_billed_ms(duration_ms: Decimal, prices: Prices = PRICES) -> Decimal:
    """An Express execution's duration as billed: rounded up to the next 100 ms."""
    return _ceil_to(duration_ms, prices.express_duration_increment_ms)


def express_memory_mb(
    definition_bytes: int, data_bytes: int, map_or_parallel_iterations: int = 1, prices: Prices = PRICES
) -> int:
    """An Express execution's memory as billed: AWS's estimate rounded up to the next 64 MB chunk."""
    used_mb = prices.express_base_memory_mb + (
        Decimal(definition_bytes) + Decimal(data_bytes) * max(1, map_or_parallel_iterations)
    ) / Decimal(1_000_000)
    return int(_ceil_to(used_mb, prices.express_memory_chunk_mb))


# ------------------------------------------------------------------------------------------ measurement


@dataclass(frozen=True)
class FunctionUsage:
    """One function's invocations, as its REPORT lines tell."""

    name: str
    invocations: int
    billed_ms: Decimal
    """Total billed duration (cold starts include their init)."""
    memory_mb: int
    init_ms: Decimal = _ZERO
    """Total init duration of the cold starts, included in billed_ms."""
    cold_starts: int = 0
    max_memory_used_mb: int = 0


@dataclass(frozen=True)
class ExecutionUsage:
    """One execution, as its history tells."""

    transitions: int
    duration_ms: Decimal
    """ExecutionStarted to the execution's last event: what Express bills."""
    task_ms: Decimal = _ZERO
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
    task_ms = _ZERO
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
            name, {"invocations": 0, "billed": _ZERO, "init": _ZERO, "cold": 0, "memory": 0, "peak": 0}
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
    task_ms = sum((f.billed_ms for f in functions), _ZERO)
    total = Decimal(str(execution_ms)) if execution_ms is not None else task_ms
    execution = ExecutionUsage(
        transitions=transitions_per_image if transitions_per_image is not None else happy_path_transitions(),
        duration_ms=total,
        task_ms=min(task_ms, total),
        express_memory_mb=int(_ceil_to(Decimal(express_memory), PRICES.express_memory_chunk_mb)),
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


# ----------------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class FunctionCost:
    name: str
    memory_mb: int
    invocations_per_image: Decimal
    billed_ms_per_invocation: Decimal
    """As modelled: scaled, with the chosen cold-start rate and CPU model."""
    gb_s_per_image: Decimal
    requests_usd: Decimal
    compute_usd_x86: Decimal
    compute_usd_arm64: Decimal
    cold_start_rate: Decimal
    init_ms_per_cold_start: Decimal
    max_memory_used_mb: int


@dataclass(frozen=True)
class ScenarioCost:
    workflow: str
    architecture: str
    lambda_requests_usd: Decimal
    lambda_compute_usd: Decimal
    step_functions_usd: Decimal

    @property
    def name(self) -> str:
        return f"{self.workflow.title()} {self.architecture}"

    @property
    def total_usd(self) -> Decimal:
        return self.lambda_requests_usd + self.lambda_compute_usd + self.step_functions_usd


@dataclass(frozen=True)
class Report:
    images: int
    prices: Prices
    origin: str
    measured_images: int
    duration_scale: Decimal
    cold_start_rate: Decimal | None
    """None: as measured."""
    cpu_scaling: bool
    transitions_per_image: Decimal
    express_billed_ms_per_image: Decimal
    express_gb_s_per_image: Decimal
    functions: tuple[FunctionCost, ...]
    scenarios: tuple[ScenarioCost, ...]
    notes: tuple[str, ...]
    measurement: Measurement
    """What the report was estimated from (estimate it again with other options)."""

    def scenario(self, workflow: str, architecture: str) -> ScenarioCost:
        return next(s for s in self.scenarios if s.workflow == workflow and s.architecture == architecture)


def _decimal(value: float | Decimal | str) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def cpu_factor(memory_mb: int, prices: Prices = PRICES) -> Decimal:
    """How much longer CPU-bound code runs at this memory than on a whole vCPU."""
    return max(Decimal(1), Decimal(prices.cpu_full_vcpu_mb) / Decimal(memory_mb))


def modelled_ms(
    usage: FunctionUsage,
    *,
    duration_scale: Decimal = Decimal(1),
    cold_start_rate: Decimal | None = None,
    cpu_scaling: bool = False,
    prices: Prices = PRICES,
) -> Decimal:
    """Billed ms per invocation: the measured mean, or warm mean + rate x init per cold start; then scaled."""
    if usage.invocations == 0:
        return _ZERO
    if cold_start_rate is None:
        per_invocation = usage.billed_ms / usage.invocations
    else:
        warm = (usage.billed_ms - usage.init_ms) / usage.invocations
        init = usage.init_ms / usage.cold_starts if usage.cold_starts else _ZERO
        per_invocation = warm + cold_start_rate * init
    factor = cpu_factor(usage.memory_mb, prices) if cpu_scaling else Decimal(1)
    return per_invocation * duration_scale * factor


def estimate(
    measurement: Measurement,
    prices: Prices = PRICES,
    images: int = 1_000_000,
    *,
    duration_scale: float | Decimal = 1,
    cold_start_rate: float | Decimal | None = None,
    cpu_scaling: bool = False,
) -> Report:
    """Cost of ``images`` images for Standard/Express x x86_64/arm64, with a breakdown per function."""
    if measurement.images == 0:
        raise ValueError("the measurement has no execution")
    scale = _decimal(duration_scale)
    rate = None if cold_start_rate is None else _decimal(cold_start_rate)
    if scale <= 0:
        raise ValueError("the duration scale must be positive")
    if rate is not None and not 0 <= rate <= 1:
        raise ValueError("the cold-start rate is between 0 and 1")
    n = Decimal(images)
    measured = Decimal(measurement.images)

    functions: list[FunctionCost] = []
    for usage in measurement.functions:
        per_image = Decimal(usage.invocations) / measured
        ms = modelled_ms(usage, duration_scale=scale, cold_start_rate=rate, cpu_scaling=cpu_scaling, prices=prices)
        gb_s = per_image * ms / 1000 * Decimal(usage.memory_mb) / 1024
        functions.append(
            FunctionCost(
                name=usage.name,
                memory_mb=usage.memory_mb,
                invocations_per_image=per_image,
                billed_ms_per_invocation=ms,
                gb_s_per_image=gb_s,
                requests_usd=per_image * n * prices.lambda_request,
                compute_usd_x86=gb_s * n * prices.lambda_gb_s_x86,
                compute_usd_arm64=gb_s * n * prices.lambda_gb_s_arm64,
                cold_start_rate=(Decimal(usage.cold_starts) / usage.invocations if usage.invocations else _ZERO)
                if rate is None
                else rate,
                init_ms_per_cold_start=usage.init_ms / usage.cold_starts if usage.cold_starts else _ZERO,
                max_memory_used_mb=usage.max_memory_used_mb,
            )
        )

    # Express: the time inside tasks follows the Lambda model; the orchestration between them is as measured.
    measured_lambda_ms = sum((u.billed_ms for u in measurement.functions), _ZERO) / measured
    modelled_lambda_ms = sum((f.invocations_per_image * f.billed_ms_per_invocation for f in functions), _ZERO)
    task_factor = modelled_lambda_ms / measured_lambda_ms if measured_lambda_ms else scale
    billed_ms_total = _ZERO
    gb_s_total = _ZERO
    for execution in measurement.executions:
        duration = execution.duration_ms - execution.task_ms + execution.task_ms * task_factor
        billed = express_billed_ms(duration, prices)
        billed_ms_total += billed
        gb_s_total += billed / 1000 * Decimal(execution.express_memory_mb) / 1024
    express_ms = billed_ms_total / measured
    express_gb_s = gb_s_total / measured
    transitions = Decimal(sum(e.transitions for e in measurement.executions)) / measured

    standard_usd = transitions * n * prices.standard_transition
    express_usd = n * prices.express_request + express_gb_s * n * prices.express_gb_s
    requests = sum((f.requests_usd for f in functions), _ZERO)
    scenarios = []
    for workflow in WORKFLOWS:
        for architecture in ARCHITECTURES:
            compute = sum(
                (f.compute_usd_x86 if architecture == "x86_64" else f.compute_usd_arm64 for f in functions), _ZERO
            )
            sfn_usd = standard_usd if workflow == "STANDARD" else express_usd
            scenarios.append(ScenarioCost(workflow, architecture, requests, compute, sfn_usd))

    notes = _notes(
        measurement, prices, n, functions, express_gb_s=express_gb_s, scale=scale, rate=rate, cpu_scaling=cpu_scaling
    )
    return Report(
        images=images,
        prices=prices,
        origin=measurement.origin,
        measured_images=measurement.images,
        duration_scale=scale,
        cold_start_rate=rate,
        cpu_scaling=cpu_scaling,
        transitions_per_image=transitions,
        express_billed_ms_per_image=express_ms,
        express_gb_s_per_image=express_gb_s,
        functions=tuple(functions),
        scenarios=tuple(scenarios),
        notes=tuple(notes),
        measurement=measurement,
    )


def _notes(
    measurement: Measurement,
    prices: Prices,
    n: Decimal,
    functions: Sequence[FunctionCost],
    *,
    express_gb_s: Decimal,
    scale: Decimal,
    rate: Decimal | None,
    cpu_scaling: bool,
) -> list[str]:
    notes = []
    failed = [e.status for e in measurement.executions if e.status != "SUCCEEDED"]
    if failed:
        notes.append(
            f"{len(failed)} of {measurement.images} measured executions did not succeed ({', '.join(failed)})."
        )
    lambda_gb_s = sum((f.gb_s_per_image for f in functions), _ZERO) * n
    for architecture, tier in (
        ("x86_64", prices.lambda_first_tier_gb_s_x86),
        ("arm64", prices.lambda_first_tier_gb_s_arm64),
    ):
        if lambda_gb_s > tier:
            notes.append(f"Lambda {architecture}: GB-s beyond the first monthly price tier; an upper bound.")
    if express_gb_s * n / 3600 > prices.express_first_tier_gb_hours:
        notes.append("Express GB-hours exceed the first monthly price tier: the Express figures are an upper bound.")
    notes.append(
        f"Durations x{scale} ({'this machine' if scale == 1 else 'scaled from this machine'}); "
        + (
            f"CPU modelled: below {prices.cpu_full_vcpu_mb} MB durations x {prices.cpu_full_vcpu_mb}/memory."
            if cpu_scaling
            else f"CPU not modelled: durations as if each function had a whole vCPU ({prices.cpu_full_vcpu_mb} MB)."
        )
    )
    if any(f.init_ms_per_cold_start for f in functions):
        notes.append(
            "Cold starts as measured (init billed)."
            if rate is None
            else f"Cold starts: {rate * 100:g}% of invocations (init billed)."
        )
    notes.append("Not included: S3 requests and storage, CloudWatch Logs, DynamoDB, SNS, KMS, free tiers.")
    return notes


# ----------------------------------------------------------------------------------------------- output


def _usd(value: Decimal) -> str:
    return f"${value:,.2f}" if value >= 1 else f"${value:,.4f}"


def render(report: Report, console: Console) -> None:
    """Rich tables: the four scenarios, then the functions."""
    prices = report.prices
    title = f"imgpipe on AWS: cost per {report.images:,} images ({prices.region}, prices of {prices.as_of:%Y-%m-%d})"
    table = Table(title=title, caption=f"from {report.origin}")
    for column in ("workflow", "Lambda requests", "Lambda GB-s", "Step Functions", "total"):
        table.add_column(column, justify="left" if column == "workflow" else "right")
    cheapest = min(report.scenarios, key=lambda s: s.total_usd)
    for s in report.scenarios:
        style = "bold green" if s is cheapest else ""
        table.add_row(
            s.name,
            _usd(s.lambda_requests_usd),
            _usd(s.lambda_compute_usd),
            _usd(s.step_functions_usd),
            _usd(s.total_usd),
            style=style,
        )
    console.print(table)
    console.print(
        f"Standard: {report.transitions_per_image:g} state transitions per image. "
        f"Express: {report.express_billed_ms_per_image:.0f} ms billed per image, "
        f"{report.express_gb_s_per_image:.4f} GB-s."
    )

    detail = Table(title="Lambda per function (GB-s cost; requests are in the table above)")
    columns = (
        "function",
        "MB",
        "peak MB",
        "calls/image",
        "cold",
        "init ms",
        "ms/call",
        "GB-s/image",
        "x86_64",
        "arm64",
    )
    for column in columns:
        detail.add_column(column, justify="left" if column == "function" else "right")
    for f in report.functions:
        detail.add_row(
            f.name,
            f"{f.memory_mb:,}",
            f"{f.max_memory_used_mb:,}" if f.max_memory_used_mb else "-",
            f"{f.invocations_per_image:.2f}",
            f"{f.cold_start_rate * 100:.0f}%" if f.init_ms_per_cold_start else "-",
            f"{f.init_ms_per_cold_start:,.0f}" if f.init_ms_per_cold_start else "-",
            f"{f.billed_ms_per_invocation:,.1f}",
            f"{f.gb_s_per_image:.4f}",
            _usd(f.compute_usd_x86),
            _usd(f.compute_usd_arm64),
        )
    console.print(detail)
    for note in report.notes:
        console.print(f"- {note}", highlight=False)
    console.print(f"prices: {prices.source}", style="dim", highlight=False)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def to_json(report: Report) -> str:
    """The report as one JSON object (amounts in US dollars as numbers)."""
    prices = {k: _jsonable(v) for k, v in vars(report.prices).items()}
    document = {
        "images": report.images,
        "origin": report.origin,
        "measured_images": report.measured_images,
        "duration_scale": _jsonable(report.duration_scale),
        "cold_start_rate": _jsonable(report.cold_start_rate),
        "cpu_scaling": report.cpu_scaling,
        "transitions_per_image": _jsonable(report.transitions_per_image),
        "express_billed_ms_per_image": _jsonable(report.express_billed_ms_per_image),
        "express_gb_s_per_image": _jsonable(report.express_gb_s_per_image),
        "scenarios": [
            {
                "workflow": s.workflow,
                "architecture": s.architecture,
                "lambda_requests_usd": _jsonable(s.lambda_requests_usd),
                "lambda_compute_usd": _jsonable(s.lambda_compute_usd),
                "step_functions_usd": _jsonable(s.step_functions_usd),
                "total_usd": _jsonable(s.total_usd),
            }
            for s in report.scenarios
        ],
        "functions": [{k: _jsonable(v) for k, v in vars(f).items()} for f in report.functions],
        "notes": list(report.notes),
        "measured": _jsonable(asdict(report.measurement)),
        "prices": prices,
    }
    return json.dumps(document, ensure_ascii=False)


@dataclass(frozen=True)
class MemoryOption:
    """One function at one memory size, under the two CPU models."""

    function: str
    memory_mb: int
    ms_io_bound: Decimal
    ms_cpu_bound: Decimal
    usd_io_bound: Decimal
    usd_cpu_bound: Decimal


def memory_options(
    measurement: Measurement,
    memories: Sequence[int] = (128, 256, 512, 1024, 1536, 1769, 2048, 3008),
    *,
    prices: Prices = PRICES,
    images: int = 1_000_000,
    architecture: str = "arm64",
    duration_scale: float | Decimal = 1,
    cold_start_rate: float | Decimal | None = None,
) -> list[MemoryOption]:
    """Each function's Lambda cost (requests + GB-s) at each memory size: I/O-bound and CPU-bound bounds."""
    options = []
    for usage in measurement.functions:
        for memory in memories:
            priced = with_memory(measurement, {usage.name: memory})
            bounds = []
            for cpu_scaling in (False, True):
                report = estimate(
                    priced,
                    prices,
                    images,
                    duration_scale=duration_scale,
                    cold_start_rate=cold_start_rate,
                    cpu_scaling=cpu_scaling,
                )
                cost = next(f for f in report.functions if f.name == usage.name)
                compute = cost.compute_usd_arm64 if architecture == "arm64" else cost.compute_usd_x86
                bounds.append((cost.billed_ms_per_invocation, cost.requests_usd + compute))
            options.append(MemoryOption(usage.name, memory, bounds[0][0], bounds[1][0], bounds[0][1], bounds[1][1]))
    return options


# ------------------------------------------------------------------------------------------- local run


def sample_images() -> list[Path]:
    from localcloud.sam import ROOT

    return sorted(p for p in (ROOT / "samples").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def _quiet(function_name: str, line: str) -> None:
    """Function output is not part of the measurement."""


def measure_local(
    images: Sequence[Path], parameters: Mapping[str, str] | None = None, *, one_at_a_time: bool = True
) -> Measurement:
    """Deploy the template on a fresh local cloud, process the images, read the REPORT lines and histories.

    One image at a time by default: each invocation then has a core to itself, as a Lambda execution
    environment at 1769 MB has a vCPU; all at once, two cores share four images' work.
    """
    from localcloud.cloud import LocalCloud
    from localcloud.runner import process

    with tempfile.TemporaryDirectory(prefix="imgpipe-cost-") as out, LocalCloud(log_sink=_quiet) as cloud:
        stack = cloud.deploy(dict(parameters or {}))
        batches = [[path] for path in images] if one_at_a_time else [list(images)]
        results = [result for batch in batches for result in process(cloud, stack, batch, Path(out))]
        arns = [r.execution_arn for r in results if r.execution_arn]
        if not arns:
            raise RuntimeError("no execution finished: " + "; ".join(f"{r.file}: {r.cause}" for r in results))
        measurement = from_cloud(cloud, arns)
    return replace(measurement, origin=f"a local run of {len(arns)} image(s) on this machine")


def run_local(
    images: Sequence[Path],
    parameters: Mapping[str, str] | None = None,
    *,
    prices: Prices = PRICES,
    count: int = 1_000_000,
    duration_scale: float | Decimal = 1,
    cold_start_rate: float | Decimal | None = STEADY_COLD_START_RATE,
    cpu_scaling: bool = False,
) -> Report:
    """Process ``images`` on the embedded local cloud and estimate ``count`` images from what they used."""
    return estimate(
        measure_local(images, parameters),
        prices,
        count,
        duration_scale=duration_scale,
        cold_start_rate=cold_start_rate,
        cpu_scaling=cpu_scaling,
    )


# ------------------------------------------------------------------------------------------------- CLI

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    pass


def _pairs(values: Sequence[str], option: str, kind: type[float] | type[int] | type[str]) -> dict[str, Any]:
    pairs: dict[str, Any] = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} takes KEY=VALUE, got {value!r}")
        try:
            pairs[key] = kind(raw)
        except ValueError as exc:
            raise UsageError(f"{option} {value!r}: {exc}") from exc
    return pairs


def _images(paths: Sequence[str]) -> list[Path]:
    from localcloud.runner import input_files

    return input_files(paths) if paths else sample_images()


def _number(value: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from exc
    if not number.is_finite():
        raise argparse.ArgumentTypeError(f"not a finite number: {value!r}")
    return number


def _rate(value: str) -> Decimal | None:
    if value == "measured":
        return None
    rate = _number(value)
    if not 0 <= rate <= 1:
        raise argparse.ArgumentTypeError("between 0 and 1, or 'measured'")
    return rate


def _positive(value: str) -> Decimal:
    number = _number(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return number


#: What ``imgpipe cost`` does, for its help.
DESCRIPTION: Final = "Cost per N images on AWS (Standard/Express x x86_64/arm64), from a local run or given figures."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``imgpipe cost``, on the subparser the command gives."""
    p.add_argument("paths", nargs="*", help="images to run locally (default: samples/*.jpg|png)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--images", type=int, default=1_000_000, help="images to price (default 1,000,000)")
    p.add_argument("--duration-scale", type=_positive, default=Decimal(1), help="multiply local durations")
    p.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE", help="template parameter")
    p.add_argument(
        "--cold-start-rate",
        type=_rate,
        default=STEADY_COLD_START_RATE,
        metavar="RATE|measured",
        help="share of invocations that are cold (default 0.01)",
    )
    p.add_argument("--cpu-scaling", action="store_true", help="CPU-bound model: durations x 1769/MB below 1769 MB")
    p.add_argument("--memory", action="append", default=[], metavar="FUNCTION=MB", help="price at this memory")
    given = p.add_argument_group("given figures instead of a local run")
    given.add_argument("--ms", action="append", default=[], metavar="FUNCTION=MS", help="billed ms per invocation")
    given.add_argument("--transitions-per-image", type=int, help="default: the state machine's happy path")
    given.add_argument("--execution-ms", type=float, help="Express execution duration (default: sum of --ms)")


def run(args: argparse.Namespace, out: Console) -> int:
    """``imgpipe cost ...``: measure or take the figures, print the report. Exit 0, 1 (failures) or 2."""
    err = Console(stderr=True)
    try:
        memory = _pairs(args.memory, "--memory", int)
        figures = _pairs(args.ms, "--ms", float)
        if figures and args.paths:
            raise UsageError("give PATHs (a local run) or --ms figures, not both")
        if not figures and (args.transitions_per_image is not None or args.execution_ms is not None):
            raise UsageError("--transitions-per-image and --execution-ms go with --ms figures")
        if args.images < 1:
            raise UsageError("--images must be at least 1")
        if figures:
            measurement = from_figures(
                ms=figures,
                memory_mb=memory,
                transitions_per_image=args.transitions_per_image,
                execution_ms=args.execution_ms,
            )
        else:
            files = _images(args.paths)
            if not args.json:
                err.print(f"processing {len(files)} image(s) on the embedded local cloud...")
            measurement = with_memory(measure_local(files, _pairs(args.parameter, "--parameter", str)), memory)
        report = estimate(
            measurement,
            PRICES,
            args.images,
            duration_scale=args.duration_scale,
            cold_start_rate=args.cold_start_rate,
            cpu_scaling=args.cpu_scaling,
        )
    except (UsageError, ValueError) as exc:  # TemplateError is a ValueError
        err.print(f"[red]imgpipe cost: {exc}[/]")
        return EXIT_USAGE
    except RuntimeError as exc:  # LocalCloudError, or no execution finished
        err.print(f"[red]imgpipe cost: the local run failed: {exc}[/]")
        return EXIT_USAGE
    if args.json:
        print(to_json(report))
    else:
        render(report, out)
    return EXIT_FAILED if any(e.status != "SUCCEEDED" for e in measurement.executions) else EXIT_OK


_PHYSICAL: Final = re.compile(r"^(?P<stack>[^-]+)-(?P<logical>.+)-[A-Z0-9]{8,}$")


def display_name(physical: str) -> str:
    """``imgpipe-ResizeFunction-1BDTBXFM8OBO`` -> ``Resize`` (when the stack's resource map is not at hand)."""
    match = _PHYSICAL.match(physical)
    return _logical_name(match["logical"]) if match else physical
