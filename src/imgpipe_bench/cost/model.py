"""The cost model: a ``Measurement`` priced as a ``Report`` for Standard and Express workflows on x86_64
and arm64, with a breakdown per function, and each function's cost at other memory sizes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from imgpipe_bench.cost.prices import ARCHITECTURES, PRICES, WORKFLOWS, ZERO, Prices, cpu_factor, express_billed_ms
from imgpipe_bench.cost.usage import FunctionUsage, Measurement, with_memory


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
        return ZERO
    if cold_start_rate is None:
        per_invocation = usage.billed_ms / usage.invocations
    else:
        warm = (usage.billed_ms - usage.init_ms) / usage.invocations
        init = usage.init_ms / usage.cold_starts if usage.cold_starts else ZERO
        per_invocation = warm + cold_start_rate * init
    factor = cpu_factor(usage.memory_mb, prices) if cpu_scaling else Decimal(1)
    return per_invocation * duration_scale * factor


def _function_cost(
    usage: FunctionUsage,
    measured: Decimal,
    n: Decimal,
    prices: Prices,
    *,
    scale: Decimal,
    rate: Decimal | None,
    cpu_scaling: bool,
) -> FunctionCost:
    """One function's cost for ``n`` images, from its usage over ``measured`` images."""
    per_image = Decimal(usage.invocations) / measured
    ms = modelled_ms(usage, duration_scale=scale, cold_start_rate=rate, cpu_scaling=cpu_scaling, prices=prices)
    gb_s = per_image * ms / 1000 * Decimal(usage.memory_mb) / 1024
    return FunctionCost(
        name=usage.name,
        memory_mb=usage.memory_mb,
        invocations_per_image=per_image,
        billed_ms_per_invocation=ms,
        gb_s_per_image=gb_s,
        requests_usd=per_image * n * prices.lambda_request,
        compute_usd_x86=gb_s * n * prices.lambda_gb_s_x86,
        compute_usd_arm64=gb_s * n * prices.lambda_gb_s_arm64,
        cold_start_rate=(Decimal(usage.cold_starts) / usage.invocations if usage.invocations else ZERO)
        if rate is None
        else rate,
        init_ms_per_cold_start=usage.init_ms / usage.cold_starts if usage.cold_starts else ZERO,
        max_memory_used_mb=usage.max_memory_used_mb,
    )


def _express_per_image(
    measurement: Measurement, functions: Sequence[FunctionCost], scale: Decimal, prices: Prices
) -> tuple[Decimal, Decimal]:
    """Billed ms and GB-s of an Express execution per image. The time inside tasks follows the Lambda
    model; the orchestration between them is as measured."""
    measured = Decimal(measurement.images)
    measured_lambda_ms = sum((u.billed_ms for u in measurement.functions), ZERO) / measured
    modelled_lambda_ms = sum((f.invocations_per_image * f.billed_ms_per_invocation for f in functions), ZERO)
    task_factor = modelled_lambda_ms / measured_lambda_ms if measured_lambda_ms else scale
    billed_ms_total = ZERO
    gb_s_total = ZERO
    for execution in measurement.executions:
        duration = execution.duration_ms - execution.task_ms + execution.task_ms * task_factor
        billed = express_billed_ms(duration, prices)
        billed_ms_total += billed
        gb_s_total += billed / 1000 * Decimal(execution.express_memory_mb) / 1024
    return billed_ms_total / measured, gb_s_total / measured


def _scenarios(functions: Sequence[FunctionCost], standard_usd: Decimal, express_usd: Decimal) -> list[ScenarioCost]:
    """Standard and Express, each on x86_64 and arm64."""
    requests = sum((f.requests_usd for f in functions), ZERO)
    scenarios = []
    for workflow in WORKFLOWS:
        for architecture in ARCHITECTURES:
            compute = sum(
                (f.compute_usd_x86 if architecture == "x86_64" else f.compute_usd_arm64 for f in functions), ZERO
            )
            sfn_usd = standard_usd if workflow == "STANDARD" else express_usd
            scenarios.append(ScenarioCost(workflow, architecture, requests, compute, sfn_usd))
    return scenarios


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
    functions = [
        _function_cost(usage, measured, n, prices, scale=scale, rate=rate, cpu_scaling=cpu_scaling)
        for usage in measurement.functions
    ]
    express_ms, express_gb_s = _express_per_image(measurement, functions, scale, prices)
    transitions = Decimal(sum(e.transitions for e in measurement.executions)) / measured
    standard_usd = transitions * n * prices.standard_transition
    express_usd = n * prices.express_request + express_gb_s * n * prices.express_gb_s
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
        scenarios=tuple(_scenarios(functions, standard_usd, express_usd)),
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
    lambda_gb_s = sum((f.gb_s_per_image for f in functions), ZERO) * n
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


#: The memory sizes ``memory_options()`` prices each function at, in MB.
MEMORY_SIZES: Final = (128, 256, 512, 1024, 1536, 1769, 2048, 3008)


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
    memories: Sequence[int] = MEMORY_SIZES,
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
