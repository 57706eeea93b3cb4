"""The imgpipe command, as users run it: subprocesses, exit codes, the AWS CLI against `imgpipe serve`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from localcloud.cloud import aws_client, free_port
from localcloud.sam import ROOT
from tests.integration.conftest import jpeg

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def imgpipe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "imgpipe"), *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def test_process_json_reports_each_input_and_exits_1_on_any_failure(tmp_path: Path) -> None:
    good = tmp_path / "sunset at sea+1.jpg"
    good.write_bytes(jpeg(700, 400))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image at all")
    out = tmp_path / "renditions"

    done = imgpipe("process", str(good), str(bad), "--out", str(out), "--json", cwd=tmp_path)

    assert done.returncode == 1, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    by_file = {Path(r["file"]).name: r for r in lines}
    assert set(by_file) == {"sunset at sea+1.jpg", "broken.jpg"}
    ok = by_file["sunset at sea+1.jpg"]
    assert ok["status"] == "SUCCEEDED"
    assert ok["key"] == "uploads/sunset at sea+1.jpg"
    assert ok["execution_arn"].startswith("arn:aws:states:")
    assert {(o["width"], o["format"]) for o in ok["outputs"]} == {(700, "jpeg"), (320, "jpeg")}
    for output in ok["outputs"]:
        assert Path(output["path"]).stat().st_size == output["bytes"]
    assert ok["notification"]["Message"]["status"] == "SUCCEEDED"
    failed = by_file["broken.jpg"]
    assert failed["status"] == "FAILED"
    assert failed["error"] == "UnsupportedFormat"
    assert failed["outputs"] == []
    assert failed["notification"]["Message"]["error"] == "UnsupportedFormat"
    assert not list(out.rglob("*.partial"))


def test_process_exits_0_when_all_succeed_and_prints_a_table(tmp_path: Path) -> None:
    name = "a photo with a long name, whole in the table.jpg"
    image = tmp_path / name
    image.write_bytes(jpeg(400, 300))
    done = imgpipe("process", str(image), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "SUCCEEDED" in done.stdout
    assert name in done.stdout, "the table cuts no value, also when stdout is not a terminal"
    assert "400w.jpg, 320w.jpg" in done.stdout
    assert (tmp_path / "o" / name / "400w.jpg").is_file()


@pytest.mark.parametrize(
    "args",
    [
        ["process", "does-not-exist.jpg"],
        ["process", "x.jpg", "--parameter", "NoEquals"],
        ["frobnicate"],
        [],
        ["bench", "--only", "everything"],
        ["bench", "--repeats", "2"],
        ["bench", "--executions", "many"],
    ],
)
def test_bad_usage_exits_2_with_a_message(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "x.jpg").write_bytes(jpeg(50, 50))
    done = imgpipe(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip()


def test_unknown_parameter_is_a_start_failure(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(jpeg(50, 50))
    done = imgpipe("process", "x.jpg", "--parameter", "Nope=1", cwd=tmp_path)
    assert done.returncode == 2
    assert "Nope" in done.stderr


def _wait_for(url: str, proc: subprocess.Popen[str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        try:
            with urllib.request.urlopen(url + "/moto-api/", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


def test_aws_cli_against_imgpipe_serve(tmp_path: Path) -> None:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "imgpipe"), "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        _wait_for(endpoint, server)

        def aws(*args: str) -> dict:
            done = subprocess.run(
                [str(BIN / "aws"), "--endpoint-url", endpoint, "--output", "json", *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
                check=True,
            )
            return json.loads(done.stdout) if done.stdout.strip() else {}

        deadline = time.monotonic() + 60
        while not (stacks := aws("cloudformation", "describe-stacks").get("Stacks")):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0]["Outputs"]}
        queue_url = aws("sqs", "create-queue", "--queue-name", "cli-subscriber")["QueueUrl"]
        queue_arn = aws("sqs", "get-queue-attributes", "--queue-url", queue_url, "--attribute-names", "QueueArn")[
            "Attributes"
        ]["QueueArn"]
        aws(
            "sns",
            "subscribe",
            "--topic-arn",
            outputs["TopicArn"],
            "--protocol",
            "sqs",
            "--notification-endpoint",
            queue_arn,
        )
        photo = tmp_path / "photo.jpg"
        photo.write_bytes(jpeg(600, 400))

        copied = subprocess.run(
            [
                str(BIN / "aws"),
                *("--endpoint-url", endpoint, "s3", "cp", str(photo)),
                f"s3://{outputs['SourceBucketName']}/{outputs['UploadPrefix']}",
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        assert "upload:" in copied.stdout

        deadline = time.monotonic() + 60
        while True:
            executions = aws("stepfunctions", "list-executions", "--state-machine-arn", outputs["StateMachineArn"])
            finished = [e for e in executions["executions"] if e["status"] != "RUNNING"]
            if finished:
                break
            assert time.monotonic() < deadline, (executions, (tmp_path / "serve.log").read_text()[-4000:])
            time.sleep(0.2)
        arn = finished[0]["executionArn"]
        assert aws("stepfunctions", "describe-execution", "--execution-arn", arn)["status"] == "SUCCEEDED"
        history = aws("stepfunctions", "get-execution-history", "--execution-arn", arn)["events"]
        assert history[-1]["type"] == "ExecutionSucceeded"
        received = aws("sqs", "receive-message", "--queue-url", queue_url, "--wait-time-seconds", "2")["Messages"]
        message = json.loads(json.loads(received[0]["Body"])["Message"])
        assert message["status"] == "SUCCEEDED"
        assert message["source"]["key"] == "uploads/photo.jpg"
        listed = subprocess.run(
            [
                str(BIN / "aws"),
                "--endpoint-url",
                endpoint,
                "s3",
                "ls",
                "--recursive",
                f"s3://{outputs['DestinationBucketName']}/photo.jpg/",
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
        assert re.search(r"photo\.jpg/[0-9a-f]{16}/600w\.jpg", listed), listed
        assert "photo.jpg/manifest.json" in listed
    finally:
        server.send_signal(signal.SIGINT)
        try:
            code = server.wait(timeout=30)
        finally:
            if server.poll() is None:
                server.kill()
    assert code == 0, "Ctrl-C stops the server cleanly"


# -- imgpipe serve: what it prints once ready, and how it stops -------------------------------------

#: What must never reach the terminal when serve stops: Python's own reports of errors (a function's
#: log lines, tracebacks included, are prefixed with its name and are not matched).
UNCLEAN = re.compile(r"^(Traceback|Exception ignored|Exception in thread)|RuntimeError", re.MULTILINE)


@dataclass
class Served:
    proc: subprocess.Popen[str]
    endpoint: str
    ready: str  # stdout up to the moment it was ready
    stderr_path: Path

    def stop(self, signum: int = signal.SIGINT) -> tuple[int, str, str]:
        """Send the signal; the exit code, the rest of stdout and all of stderr."""
        self.proc.send_signal(signum)
        rest, _ = self.proc.communicate(timeout=90)
        return self.proc.returncode, self.ready + rest, self.stderr_path.read_text()


@contextmanager
def serve(tmp_path: Path, *args: str, ready: Callable[[str], bool]) -> Iterator[Served]:
    """`imgpipe serve` on a free port, stdout a pipe (not a terminal), until ``ready(stdout so far)``."""
    port = free_port()
    stderr_path = tmp_path / "serve.stderr"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [str(BIN / "imgpipe"), "serve", "--port", str(port), "--api-port", str(free_port()), *args],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert proc.stdout is not None
        lines: list[str] = []

        def read() -> None:
            assert proc.stdout is not None
            while not ready("".join(lines)) and (line := proc.stdout.readline()):
                lines.append(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(180)
        assert ready("".join(lines)), f"not ready: {''.join(lines)!r}\n{stderr_path.read_text()[-3000:]}"
        yield Served(proc, f"http://127.0.0.1:{port}", "".join(lines), stderr_path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _one_json_line(stdout: str) -> bool:
    return stdout.endswith("\n")


def test_serve_json_prints_one_object_once_ready(tmp_path: Path) -> None:
    with serve(tmp_path, "--json", ready=_one_json_line) as served:
        ready = json.loads(served.ready)
        stacks = aws_client("cloudformation", served.endpoint).describe_stacks(StackName="imgpipe")["Stacks"]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0]["Outputs"]}
        dashboard = f"{served.endpoint}/moto-api/"
        with urllib.request.urlopen(dashboard, timeout=10) as reply:
            assert reply.status == 200
            assert "html" in reply.headers["Content-Type"]
        with urllib.request.urlopen(f"{json.loads(served.ready)['apiUrl']}/uploads", timeout=30) as reply:
            listed = json.loads(reply.read())
        with urllib.request.urlopen(f"{ready['consoleUrl']}/executions", timeout=30) as reply:
            console_page = reply.read().decode()
        code, stdout, stderr = served.stop(signal.SIGTERM)

    assert set(ready) == {"endpointUrl", "apiUrl", "consoleUrl", "region", "outputs", "urls"}
    assert ready["endpointUrl"] == served.endpoint
    assert ready["region"] == "us-east-1"
    assert ready["outputs"] == outputs
    assert {"SourceBucketName", "StateMachineArn", "TopicArn"} <= set(outputs)
    assert ready["apiUrl"].startswith("http://127.0.0.1:")
    assert outputs["ApiUrl"] == ready["apiUrl"], "the stack's ApiUrl is where the API is served"
    assert listed == {"uploads": [], "next": None}
    assert ready["consoleUrl"].startswith("http://127.0.0.1:")
    assert console_page.startswith("<!doctype html>")
    assert ready["urls"] == {
        "endpoint": served.endpoint,
        "dashboard": dashboard,
        "api": ready["apiUrl"],
        "console": ready["consoleUrl"],
    }
    assert code == 0, stderr[-3000:]
    assert stdout == served.ready, "nothing else on stdout"
    assert "stopped" in stderr


def test_upload_goes_through_the_api_and_prints_each_rendition(tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_bytes(jpeg(1200, 800))
    (tmp_path / "notes.jpg").write_bytes(b"not an image at all" * 10)
    done = imgpipe("upload", "photo.jpg", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SUCCEEDED" in done.stdout
    assert sorted(int(w) for w in re.findall(r"(\d+)w jpeg", done.stdout)) == [320, 1024, 1200]
    assert "http://127.0.0.1:" in done.stdout
    refused = imgpipe("upload", "notes.jpg", "photo.jpg", cwd=tmp_path)
    assert refused.returncode == 1, "one of the two was refused"
    assert "REFUSED" in refused.stdout
    assert "not an image the pipeline reads" in refused.stdout
    assert "SUCCEEDED" in refused.stdout, "the other one still went through"


def test_serve_table_shows_every_value_whole_when_stdout_is_not_a_terminal(tmp_path: Path) -> None:
    with serve(tmp_path, ready=lambda out: "Ctrl-C stops it." in out) as served:
        stacks = aws_client("cloudformation", served.endpoint).describe_stacks(StackName="imgpipe")["Stacks"]
        code, stdout, stderr = served.stop()

    values = [o["OutputValue"] for o in stacks[0]["Outputs"]]
    values += [served.endpoint, f"{served.endpoint}/moto-api/"]
    assert any(len(value) > 80 for value in values), "a value wider than rich's default of 80 columns"
    lines = stdout.splitlines()
    for value in values:
        assert any(value in line for line in lines), f"{value} not whole on one line of:\n{stdout}"
    assert "…" not in stdout
    assert code == 0, stderr[-3000:]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_stops_cleanly_during_a_burst_of_uploads(tmp_path: Path, signum: int) -> None:
    """Ctrl-C (or SIGTERM) while executions run: exit 0, and nothing from Python's error reporting,
    atexit callbacks included."""
    image = jpeg(800, 600)
    with serve(tmp_path, "--json", ready=_one_json_line) as served:
        outputs = json.loads(served.ready)["outputs"]
        s3 = aws_client("s3", served.endpoint)
        sfn = aws_client("stepfunctions", served.endpoint)
        for n in range(10):
            s3.put_object(Bucket=outputs["SourceBucketName"], Key=f"{outputs['UploadPrefix']}burst-{n}.jpg", Body=image)
        deadline = time.monotonic() + 60
        while not sfn.list_executions(stateMachineArn=outputs["StateMachineArn"], statusFilter="RUNNING")["executions"]:
            assert time.monotonic() < deadline, "no execution started"
            time.sleep(0.05)
        started = time.monotonic()
        code, stdout, stderr = served.stop(signum)
        took = time.monotonic() - started

    assert code == 0, stderr[-3000:]
    assert not UNCLEAN.search(stdout), stdout[-3000:]
    assert not UNCLEAN.search(stderr), stderr[-3000:]
    assert stderr.rstrip().endswith("stopped")
    assert took < 60


def test_start_execution_prints_the_path_through_the_states(tmp_path: Path) -> None:
    done = imgpipe("start-execution", "--input", str(ROOT / "events" / "failure-empty-object.json"), cwd=tmp_path)
    assert done.returncode == 1
    for state in ("Validate", "Route", "Cleanup", "Publish Failure", "Failed"):
        assert state in done.stdout
    assert "EmptyObject" in done.stdout


def test_bench_json_has_cold_starts_and_orchestration_with_verdicts(tmp_path: Path) -> None:
    done = imgpipe(
        "bench", "--only", "cold-start", "--only", "orchestration", "--cold-start-repeats", "1", "--executions", "2",
        "--json", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert set(figures) == {"machine", "cold_start", "orchestration"}
    functions = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))
    assert sorted(figures["cold_start"]) == functions
    for name, values in figures["cold_start"].items():
        assert values["floor_ms"] > 0, name
        assert values["difference_ms"] == pytest.approx(values["ours_ms"] - values["floor_ms"])
        pixel = name in ("resize", "watermark")
        assert values["target_ms"] == (250 if pixel else pytest.approx(values["floor_ms"] + 25))
        assert values["met"] is (values["ours_ms"] <= values["target_ms"])
    orchestration = figures["orchestration"]
    assert orchestration["executions"] == 2
    assert 0 < orchestration["median_ms"] < orchestration["execution_median_ms"]
    assert orchestration["met"] is (orchestration["median_ms"] <= 30)


def test_bench_prints_tables(tmp_path: Path) -> None:
    done = imgpipe("bench", "--only", "orchestration", "--executions", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "orchestration overhead per execution" in done.stdout
    assert "<= 30 ms" in done.stdout
