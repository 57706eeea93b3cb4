"""The measurement subcommands: ``imgpipe bench PART`` and ``imgpipe cost --alternatives`` are wired into
the one parser, and the load and throughput figures come out as their tables say (no local cloud here)."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from imgpipe import cli
from imgpipe_bench import arguments, bench, local_cloud, throughput
from imgpipe_bench.cost import command as cost_command
from imgpipe_bench.imaging import command as imaging_command
from imgpipe_bench.load import command as load_command
from imgpipe_bench.load.observe import Run, Upload
from imgpipe_bench.load.summary import summarise, table


@pytest.mark.parametrize(
    ("argv", "module", "expected"),
    [
        (
            ["bench", "imaging", "--repeats", "5", "--json"],
            imaging_command,
            {"repeats": 5, "json": True, "plot": None, "photos": None},
        ),
        (["bench", "imaging", "--images", "tests"], imaging_command, {"photos": Path("tests")}),
        (["bench", "--photos", "tests", "--images", "3"], bench, {"photos": Path("tests"), "images": 3}),
        (["bench", "load", "--images", "3", "--threads", "2"], load_command, {"images": 3, "threads": 2}),
        (["bench", "local", "--executions", "2"], local_cloud, {"executions": 2}),
        (["bench", "throughput", "--size", "800x600"], throughput, {"size": (800, 600), "images": 40}),
        (["cost", "--alternatives"], cost_command, {"alternatives": True}),
    ],
)
def test_each_measurement_is_a_subcommand(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], module: ModuleType, expected: dict[str, Any]
) -> None:
    seen: dict[str, Any] = {}

    def fake_run(args: argparse.Namespace, out: Console) -> int:
        seen.update(vars(args), out=out)
        return 0

    monkeypatch.setattr(module, "run", fake_run)
    assert cli.main(argv) == 0
    assert {key: seen[key] for key in expected} == expected
    assert seen["out"].width == cli.whole_console().width


def test_bench_imaging_prints_the_figures_as_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command passes its options to measure_all and prints what it returns, as JSON."""
    from imgpipe_bench.imaging import measure

    seen: dict[str, Any] = {}

    def fake_measure_all(plot: Path | None, repeats: int, images: Path | None) -> dict[str, Any]:
        seen.update(plot=plot, repeats=repeats, images=images)
        return {"cases": [{"case": "photo", "ratios": {"time_ours_vs_pyvips_chained": 0.9}}]}

    monkeypatch.setattr(measure, "measure_all", fake_measure_all)
    assert cli.main(["bench", "imaging", "--json", "--repeats", "6", "--images", "tests"]) == 0
    assert seen == {"plot": None, "repeats": 6, "images": Path("tests")}
    printed = json.loads(capsys.readouterr().out)
    assert printed["cases"][0]["ratios"]["time_ours_vs_pyvips_chained"] == 0.9


def test_bench_without_a_part_keeps_its_own_options() -> None:
    args = cli.parser().parse_args(["bench", "--only", "orchestration", "--executions", "2"])
    assert args.part is None
    assert args.only == ["orchestration"]
    assert args.executions == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "imaging", "--repeats", "4"],
        ["bench", "imaging", "--images", "no/such/directory"],
        ["bench", "--photos", "no/such/directory"],
        ["bench", "load", "--images", "0"],
        ["bench", "throughput", "--size", "800"],
        ["bench", "nothing"],
        ["cost", "--ms", "Resize=300", "--alternatives", "--json"],
    ],
)
def test_bad_usage_of_a_measurement_exits_2(argv: list[str]) -> None:
    assert cli.main(argv) == 2


def test_cost_alternatives_print_the_assumptions_the_memory_sizes_and_the_break_even(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["cost", "--ms", "Resize=300", "--ms", "Watermark=100", "--alternatives"]) == 0
    out = capsys.readouterr().out
    assert "the same measurement, other assumptions (total per 1,000,000 images)" in out
    assert "1% cold, CPU not modelled (above)" in out
    assert "Resize CPU-bound" in out
    assert "Resize I/O-bound [now " in out, "the row names the memory size the template gives the function"
    assert "3008 MB" in out
    assert "arm64 stays cheaper while its durations are under 1.250 x the x86 ones." in out


def test_size_reads_width_x_height() -> None:
    assert arguments.size("4000x3000") == (4000, 3000)


def _run(
    uploads: list[Upload],
    arrivals: list[tuple[float, dict[str, Any]]],
    executions: dict[str, dict[str, Any]],
    written: list[str],
) -> Run:
    return Run(
        uploads={u.key: u for u in uploads},
        executions=executions,
        arrivals=arrivals,
        written=written,
        dlq_depth=0,
        reports=[("Resize", SimpleNamespace(error_type=None)), ("Store", SimpleNamespace(error_type="Throttled"))],
        delivery_failures=0,
        invocations_after_end=0,
        failed_in={},
        deploy_s=1.234,
        first_upload=100.0,
        uploads_done=100.5,
        threads=2,
        upload_prefix="uploads/",
    )


def test_load_summary_counts_outputs_notifications_and_the_lost() -> None:
    done = Upload("uploads/load/00000-1200x800.jpg", (1200, 800), b"", started=100.0)
    lost = Upload("uploads/load/00001-640x480.jpg", (640, 480), b"", started=100.2)
    executions = {
        "arn:0": {"key": done.key, "status": "SUCCEEDED", "error": None, "cause": None},
        "arn:1": {"key": lost.key, "status": "RUNNING", "error": None, "cause": None},
    }
    arrivals = [(104.0, {"Message": {"status": "SUCCEEDED", "source": {"key": done.key}}})]
    written = [f"load/00000-1200x800.jpg/{w}.jpg" for w in (1200, 1024, 320)] + [
        "load/00000-1200x800.jpg/manifest.json"
    ]
    figures = summarise(_run([done, lost], arrivals, executions, written))
    assert figures["executions_started"] == 2
    assert figures["executions_succeeded"] == 1
    assert figures["executions_other"] == {"RUNNING": 1}
    assert (figures["renditions_written"], figures["renditions_expected"]) == (3, 5)  # 640 px: 640 and 320
    assert figures["renditions_expected_for_succeeded"] == 3
    assert (figures["manifests_written"], figures["manifests_expected"]) == (1, 2)
    assert figures["notifications_received"] == 1
    assert figures["lambda_invocation_errors"] == {"Store: Throttled": 1}
    assert figures["latency_max_s"] == 4.0
    assert figures["seconds_first_upload_to_last_notification"] == 4.0
    assert (figures["lost"], figures["lost_keys"]) == (1, [lost.key])
    assert list(figures)[:4] == ["images", "upload_threads", "deploy_s", "upload_phase_s"]
    assert list(figures)[-2:] == ["lost", "lost_keys"]
    console = Console(file=io.StringIO(), width=200)
    console.print(table(figures))
    lines = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert any("renditions written / expected" in line and "3 / 5" in line for line in lines)


def test_throughput_table_shows_where_the_time_went() -> None:
    figures = {
        "images": 2.0,
        "width": 800.0,
        "height": 600.0,
        "seconds": 2.0,
        "images_per_s": 1.0,
        "p50_s": 1.0,
        "p95_s": 1.5,
        "cores": 2.0,
        "handler_s": 1.0,
        "handler_s:Resize": 0.6,
        "executions_s": 3.0,
        "worker_cpu_s": 1.0,
        "cloud_cpu_s": 1.0,
        "idle_cpu_s": 2.0,
        "invocation_errors": 0.0,
    }
    judged = throughput.judged(figures)
    # 2 cores, 0.5 s of the workers' CPU per image: 4 images/s at best; 1 image/s is a quarter of it.
    assert judged["ideal_images_per_s"] == pytest.approx(4.0)
    assert judged["throughput_vs_ideal"] == pytest.approx(0.25)
    assert judged["cpu_utilisation"] == pytest.approx(0.5)
    assert not judged["met"]
    assert throughput.judged({**figures, "images_per_s": 3.2})["met"]
    console = Console(file=io.StringIO(), width=200)
    console.print(throughput.table(judged))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "pipeline throughput: 2 photos of 800x600 at once" in text
    assert "0.6 (300 ms/image)" in text
    assert "1.0 (25% of 2 cores)" in text
    assert "0.25 not met" in text
    assert "CPU utilisation (workers + local cloud)" in text
