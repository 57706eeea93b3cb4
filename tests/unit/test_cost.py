"""The cost model: exact arithmetic on hand-made measurements and histories, no cloud and no network."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from rich.console import Console

from imgpipe import cli
from imgpipe_bench import cost
from imgpipe_bench.cost import PRICES, ExecutionUsage, FunctionUsage, Measurement
from localcloud.services.lambda_.worker import Invocation

T0 = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


def measurement(
    *functions: FunctionUsage, executions: int = 1, transitions: int = 8, duration_ms: int = 100
) -> Measurement:
    run = ExecutionUsage(transitions=transitions, duration_ms=Decimal(duration_ms), task_ms=Decimal(duration_ms))
    return Measurement(functions, (run,) * executions)


def history(*kinds: str, step_ms: int = 10, with_previous: bool = True) -> list[dict[str, Any]]:
    """Events of the given types, one every step_ms, each following the one before (as a sequential history)."""
    events: list[dict[str, Any]] = []
    for index, kind in enumerate(kinds, start=1):
        event: dict[str, Any] = {"id": index, "type": kind, "timestamp": T0 + timedelta(milliseconds=step_ms * index)}
        if with_previous:
            event["previousEventId"] = index - 1
        if kind.endswith("StateEntered"):
            event["stateEnteredEventDetails"] = {"name": f"state {index}", "input": "{}"}
        events.append(event)
    return events


RETRIED_TASK = (
    "ExecutionStarted",
    "ChoiceStateEntered",
    "ChoiceStateExited",
    "TaskStateEntered",
    "TaskScheduled",
    "TaskStarted",
    "TaskFailed",
    "TaskScheduled",  # the retry
    "TaskStarted",
    "TaskSucceeded",
    "TaskStateExited",
    "SucceedStateEntered",
    "SucceedStateExited",
    "ExecutionSucceeded",
)


# ------------------------------------------------------------------------------------------ the price table


def test_the_price_table_is_dated_and_names_its_source() -> None:
    assert isinstance(PRICES.as_of, date)
    assert PRICES.as_of <= date.today()
    assert "aws.amazon.com/lambda/pricing" in PRICES.source
    assert "aws.amazon.com/step-functions/pricing" in PRICES.source
    assert PRICES.region == "us-east-1"


def test_the_price_table_holds_the_published_figures() -> None:
    assert PRICES.lambda_request * 1_000_000 == Decimal("0.20")
    assert PRICES.lambda_gb_s_x86 == Decimal("0.0000166667")
    assert PRICES.lambda_gb_s_arm64 == Decimal("0.0000133334")
    assert PRICES.standard_transition * 1000 == Decimal("0.025")
    assert PRICES.express_request * 1_000_000 == Decimal("1.00")
    assert PRICES.express_gb_s == Decimal("0.00001667")
    assert (PRICES.express_duration_increment_ms, PRICES.express_memory_chunk_mb) == (100, 64)


def test_the_price_table_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRICES.lambda_gb_s_x86 = Decimal(0)  # type: ignore[misc]


# ------------------------------------------------------------------------------------------------ Lambda


def test_five_invocations_of_100_ms_at_1024_mb_are_half_a_gb_second() -> None:
    resize = FunctionUsage("Resize", invocations=5, billed_ms=Decimal(500), memory_mb=1024)
    report = cost.estimate(measurement(resize, executions=5), images=5)
    (line,) = report.functions
    assert line.gb_s_per_image * 5 == Decimal("0.5")
    assert line.billed_ms_per_invocation == 100
    assert line.compute_usd_x86 == Decimal("0.5") * Decimal("0.0000166667")
    assert line.compute_usd_arm64 == Decimal("0.5") * Decimal("0.0000133334")
    assert line.requests_usd == 5 * Decimal("0.20") / 1_000_000


def test_a_million_images_price_requests_and_gb_seconds() -> None:
    functions = (
        FunctionUsage("Validate", 1, Decimal(50), 256),
        FunctionUsage("Resize", 1, Decimal(400), 2048),
    )
    report = cost.estimate(measurement(*functions))
    standard_x86 = report.scenario("STANDARD", "x86_64")
    # 50 ms x 0.25 GB + 400 ms x 2 GB = 0.0125 + 0.8 GB-s per image
    assert standard_x86.lambda_compute_usd == Decimal("0.8125") * 1_000_000 * Decimal("0.0000166667")
    assert standard_x86.lambda_requests_usd == Decimal("0.40")
    assert standard_x86.step_functions_usd == Decimal(200)  # 8 transitions x $0.025 / 1000 x 1M
    assert standard_x86.total_usd == standard_x86.lambda_compute_usd + Decimal("200.40")


def test_arm64_is_cheaper_than_x86_by_the_price_ratio() -> None:
    functions = (FunctionUsage("Resize", 3, Decimal(913), 1536), FunctionUsage("Store", 2, Decimal(77), 256))
    report = cost.estimate(measurement(*functions, executions=2))
    ratio = PRICES.lambda_gb_s_arm64 / PRICES.lambda_gb_s_x86
    for line in report.functions:
        assert line.compute_usd_arm64 == line.compute_usd_x86 / PRICES.lambda_gb_s_x86 * PRICES.lambda_gb_s_arm64
    for workflow in cost.WORKFLOWS:
        x86, arm = report.scenario(workflow, "x86_64"), report.scenario(workflow, "arm64")
        assert arm.lambda_compute_usd / x86.lambda_compute_usd == pytest.approx(ratio, rel=Decimal("1e-20"))
        assert arm.total_usd < x86.total_usd
        assert (arm.lambda_requests_usd, arm.step_functions_usd) == (x86.lambda_requests_usd, x86.step_functions_usd)


def test_the_duration_scale_multiplies_gb_seconds() -> None:
    resize = FunctionUsage("Resize", 1, Decimal(300), 1024)
    base = cost.estimate(measurement(resize))
    scaled = cost.estimate(measurement(resize), duration_scale=Decimal("1.5"))
    assert scaled.functions[0].gb_s_per_image == base.functions[0].gb_s_per_image * Decimal("1.5")


def test_the_cold_start_rate_replaces_the_measured_one() -> None:
    # One cold invocation (500 ms init + 100 ms) and one warm (100 ms): half cold, as measured.
    usage = FunctionUsage("Notify", 2, Decimal(700), 256, init_ms=Decimal(500), cold_starts=1)
    assert cost.modelled_ms(usage) == 350
    assert cost.modelled_ms(usage, cold_start_rate=Decimal("0.5")) == 350
    assert cost.modelled_ms(usage, cold_start_rate=Decimal(0)) == 100
    assert cost.modelled_ms(usage, cold_start_rate=Decimal("0.01")) == 105
    report = cost.estimate(measurement(usage, executions=2), cold_start_rate=0)
    assert report.functions[0].gb_s_per_image == Decimal("0.1") * Decimal("0.25")


def test_cpu_scaling_stretches_durations_below_one_vcpu_only() -> None:
    assert cost.cpu_factor(1769) == 1
    assert cost.cpu_factor(3008) == 1
    assert cost.cpu_factor(256) == Decimal(1769) / 256
    small = FunctionUsage("Validate", 1, Decimal(100), 256)
    assert cost.modelled_ms(small, cpu_scaling=True) == Decimal(100) * 1769 / 256
    # CPU-bound at or below 1769 MB, every memory size costs the same GB-s.
    at = {
        mb: cost.estimate(cost.with_memory(measurement(small), {"Validate": mb}), cpu_scaling=True)
        for mb in (256, 1024)
    }
    assert at[256].functions[0].gb_s_per_image == pytest.approx(at[1024].functions[0].gb_s_per_image)


def test_memory_options_give_both_cpu_models() -> None:
    options = cost.memory_options(measurement(FunctionUsage("Resize", 1, Decimal(200), 1536)), (512, 1769, 3008))
    by_memory = {o.memory_mb: o for o in options}
    assert by_memory[3008].ms_io_bound == by_memory[3008].ms_cpu_bound == 200
    assert by_memory[512].ms_cpu_bound == Decimal(200) * 1769 / 512
    assert by_memory[512].usd_io_bound < by_memory[1769].usd_io_bound < by_memory[3008].usd_io_bound
    assert by_memory[512].usd_cpu_bound == pytest.approx(by_memory[1769].usd_cpu_bound)


# --------------------------------------------------------------------------------------- Step Functions


def test_transitions_count_states_entered_and_retries() -> None:
    assert cost.count_transitions(history(*RETRIED_TASK)) == 4  # Choice, Task, Succeed + one retry
    assert cost.count_transitions(history(*RETRIED_TASK, with_previous=False)) == 4


def test_a_task_without_retries_adds_no_transition() -> None:
    events = history(
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    )
    assert cost.count_transitions(events) == 1


def test_retries_are_billed_as_transitions_of_a_standard_workflow() -> None:
    run = cost.execution_usage(history(*RETRIED_TASK))
    report = cost.estimate(Measurement((), (run,)), images=1000)
    assert report.transitions_per_image == 4
    assert report.scenario("STANDARD", "arm64").step_functions_usd == 4 * Decimal("0.025")


def test_an_execution_s_duration_task_time_and_status_come_from_its_history() -> None:
    run = cost.execution_usage(history(*RETRIED_TASK, step_ms=10), definition_bytes=18_000)
    assert run.duration_ms == 130  # 14 events, 10 ms apart
    assert run.task_ms == 20  # two attempts, TaskStarted to TaskFailed/TaskSucceeded, 10 ms each
    assert run.status == "SUCCEEDED"
    assert run.express_memory_mb == 64


def test_express_duration_is_billed_in_100_ms_increments() -> None:
    assert cost.express_billed_ms(Decimal(0)) == 100
    assert cost.express_billed_ms(Decimal(1)) == 100
    assert cost.express_billed_ms(Decimal(100)) == 100
    assert cost.express_billed_ms(Decimal("100.001")) == 200
    assert cost.express_billed_ms(Decimal(2345)) == 2400


def test_express_memory_is_billed_in_64_mb_chunks() -> None:
    assert cost.express_memory_mb(definition_bytes=18_225, data_bytes=4_000) == 64
    assert cost.express_memory_mb(definition_bytes=0, data_bytes=14_000_000) == 64  # 50 + 14 MB
    assert cost.express_memory_mb(definition_bytes=1, data_bytes=14_000_000) == 128
    # AWS's own example: 50 KB definition, 400 map steps of 32 KB: 62.85 MB billed as 64 MB.
    assert cost.express_memory_mb(definition_bytes=50_000, data_bytes=32_000, map_or_parallel_iterations=400) == 64


def test_express_price_is_requests_plus_rounded_gb_seconds() -> None:
    run = ExecutionUsage(transitions=8, duration_ms=Decimal(250), task_ms=Decimal(200), express_memory_mb=64)
    report = cost.estimate(Measurement((FunctionUsage("Resize", 1, Decimal(200), 1024),), (run,)))
    assert report.express_billed_ms_per_image == 300
    assert report.express_gb_s_per_image == Decimal("0.3") * 64 / 1024
    expected = Decimal("1.00") + Decimal("0.01875") * 1_000_000 * Decimal("0.00001667")
    assert report.scenario("EXPRESS", "x86_64").step_functions_usd == expected


def test_express_duration_scales_the_task_time_and_keeps_the_orchestration() -> None:
    run = ExecutionUsage(transitions=8, duration_ms=Decimal(250), task_ms=Decimal(200), express_memory_mb=64)
    resize = FunctionUsage("Resize", 1, Decimal(200), 1024)
    report = cost.estimate(Measurement((resize,), (run,)), duration_scale=2)
    assert report.express_billed_ms_per_image == 500  # 50 ms orchestration + 2 x 200 ms


# ----------------------------------------------------------------------------------- measurement inputs


def invocation(billed_ms: int, memory_mb: int, init_ms: float | None = None, peak: int = 80) -> Invocation:
    return Invocation("id", b"{}", None, billed_ms - (init_ms or 0), billed_ms, init_ms, peak, memory_mb)


def test_report_lines_are_summed_per_function() -> None:
    reports = [
        ("imgpipe-ResizeFunction-1BDTBXFM8OBO", invocation(600, 1536, init_ms=500.0, peak=90)),
        ("imgpipe-ResizeFunction-1BDTBXFM8OBO", invocation(110, 1536)),
        ("imgpipe-StoreFunction-S5S56JW2UYYI", invocation(57, 256)),
    ]
    resize, store = cost.function_usages(reports)
    assert resize == FunctionUsage("Resize", 2, Decimal(710), 1536, Decimal(500), 1, 90)
    assert (store.name, store.invocations, store.billed_ms, store.cold_starts) == ("Store", 1, Decimal(57), 0)


def test_template_memory_reads_each_function_or_the_globals() -> None:
    memory = cost.template_memory()
    assert set(memory) >= {"Validate", "Resize", "Watermark", "Store", "Notify", "Cleanup"}
    assert all(128 <= mb <= 10_240 for mb in memory.values())


def test_given_figures_default_to_the_template_s_memory_and_happy_path() -> None:
    figures = cost.from_figures(ms={"Resize": 300, "notify": 40}, memory_mb={"NotifyFunction": 128})
    assert figures.function("Resize").memory_mb == cost.template_memory()["Resize"]
    assert figures.function("Notify").memory_mb == 128
    assert cost.happy_path_transitions() == 6  # Validate, Route, Resize, Watermark, Store, Notify
    assert figures.executions[0].transitions == 6
    assert figures.executions[0].duration_ms == 340


# ------------------------------------------------------------------------------------------------ output


def given_report() -> cost.Report:
    return cost.estimate(cost.from_figures(ms={"Validate": 50, "Resize": 300}, transitions_per_image=8))


def test_render_shows_the_four_scenarios_and_the_date() -> None:
    console = Console(record=True, width=160)
    cost.render(given_report(), console)
    text = console.export_text()
    for name in ("Standard x86_64", "Standard arm64", "Express x86_64", "Express arm64", "2026-11-24", "Resize"):
        assert name in text


def test_to_json_is_one_object_with_numbers() -> None:
    document = json.loads(cost.to_json(given_report()))
    assert [(s["workflow"], s["architecture"]) for s in document["scenarios"]] == [
        ("STANDARD", "x86_64"),
        ("STANDARD", "arm64"),
        ("EXPRESS", "x86_64"),
        ("EXPRESS", "arm64"),
    ]
    assert document["scenarios"][0]["step_functions_usd"] == 200.0
    assert document["prices"]["as_of"] == PRICES.as_of.isoformat()


def test_the_command_prices_given_figures(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["cost", "--ms", "Resize=300", "--transitions-per-image", "10", "--images", "1000", "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == cost.EXIT_OK
    assert document["images"] == 1000
    assert document["scenarios"][0]["step_functions_usd"] == 0.25


@pytest.mark.parametrize(
    "argv",
    [
        ["samples", "--ms", "Resize=300"],
        ["--transitions-per-image", "8"],
        ["--ms", "Resize"],
        ["--ms", "Resize=300", "--duration-scale", "0"],
        ["--ms", "Resize=300", "--cold-start-rate", "often"],
        ["--ms", "Resize=300", "--images", "0"],
    ],
)
def test_the_command_rejects_bad_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["cost", *argv]) == cost.EXIT_USAGE
    assert capsys.readouterr().out == ""


def test_the_report_cuts_no_value_when_stdout_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["cost", "--ms", "Resize=300", "--ms", "Watermark=100"]) == cost.EXIT_OK
    printed = capsys.readouterr().out
    assert "…" not in printed
    for whole in ("GB-s/image", "calls/image", "Standard x86_64", "Express arm64", "Watermark"):
        assert whole in printed
