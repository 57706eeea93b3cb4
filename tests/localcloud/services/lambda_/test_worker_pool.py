"""WorkerPool against real awslambdaric worker processes, with handler modules written at test time."""

from __future__ import annotations

import json
import re
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.services.lambda_ import worker
from localcloud.services.lambda_.pool import PoolClosedError, WorkerPool
from localcloud.services.lambda_.worker import FunctionSpec, Invocation, Worker

ARN = "arn:aws:lambda:eu-west-3:123456789012:function:thumbnailer"

APP = """
import os
import signal
import subprocess
import sys
import time

import shared_helper  # from the layer

STARTED = time.time()


class ImageBroken(Exception):
    pass


def lambda_handler(event, context):
    action = event.get("action", "echo")
    print(f"handling {action} in {os.getpid()}")
    if action == "raise":
        raise ImageBroken(f"cannot decode {event['key']}")
    if action == "sleep":
        start = time.time()
        time.sleep(event["seconds"])
        return {"pid": os.getpid(), "start": start, "end": time.time()}
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "spawn":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        return {"pid": os.getpid(), "child": child.pid}
    if action == "env":
        return {
            "pid": os.getpid(),
            "own": os.environ.get("THUMBNAIL_SIZE"),
            "base": os.environ.get("AWS_ENDPOINT_URL"),
            "region": os.environ.get("AWS_REGION"),
            "function_name": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
            "memory": os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
            "task_root": os.environ.get("LAMBDA_TASK_ROOT"),
            "cwd": os.getcwd(),
            "layer": shared_helper.VALUE,
            "layer_file": shared_helper.__file__,
        }
    return {
        "pid": os.getpid(),
        "event": event,
        "context": {
            "remaining_ms": context.get_remaining_time_in_millis(),
            "function_name": context.function_name,
            "aws_request_id": context.aws_request_id,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "log_group_name": context.log_group_name,
        },
    }
"""

BROKEN_AT_IMPORT = """
class ConfigMissing(Exception):
    pass


raise ConfigMissing("THUMBNAIL_SIZE is not set")


def lambda_handler(event, context):
    return event
"""

MISSING_DEPENDENCY = """
import not_a_module_anywhere


def lambda_handler(event, context):
    return event
"""

SLOW_INIT = """
import time

time.sleep(30)


def lambda_handler(event, context):
    return event
"""

REPORT_RE = re.compile(
    r"^REPORT RequestId: [0-9a-f-]{36}\tDuration: \d+\.\d{2} ms\tBilled Duration: \d+ ms\t"
    r"Memory Size: 256 MB\tMax Memory Used: \d+ MB(?P<init>\tInit Duration: \d+\.\d{2} ms)?$"
)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def _wait_gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _body(invocation: Invocation) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(invocation.payload)
    return result


def _event(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


class Logs:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, function_name: str, line: str) -> None:
        with self._lock:
            self.lines.append((function_name, line))

    def text(self) -> str:
        with self._lock:
            return "\n".join(line for _, line in self.lines)


@pytest.fixture(scope="module")
def code_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("lambda")
    code = root / "code"
    code.mkdir()
    (code / "app.py").write_text(textwrap.dedent(APP))
    (code / "broken_at_import.py").write_text(textwrap.dedent(BROKEN_AT_IMPORT))
    (code / "missing_dependency.py").write_text(textwrap.dedent(MISSING_DEPENDENCY))
    (code / "slow_init.py").write_text(textwrap.dedent(SLOW_INIT))
    layer = root / "layer" / "python"
    layer.mkdir(parents=True)
    (layer / "shared_helper.py").write_text('VALUE = "from-layer"\n')
    return code, layer


@pytest.fixture
def make_pool(code_dirs: tuple[Path, Path]) -> Iterator[Callable[..., WorkerPool]]:
    pools: list[WorkerPool] = []

    def make(
        handler: str = "app.lambda_handler",
        *,
        timeout_s: float = 5.0,
        max_workers: int = 1,
        **kwargs: Any,
    ) -> WorkerPool:
        code, layer = code_dirs
        spec = FunctionSpec(
            name="thumbnailer",
            handler=handler,
            code_dir=code,
            layer_dirs=[layer],
            environment={"THUMBNAIL_SIZE": "128"},
            timeout_s=timeout_s,
            memory_mb=256,
            arn=ARN,
        )
        pool = WorkerPool(spec, max_workers=max_workers, **kwargs)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()


def test_payload_round_trip_context_and_logs(make_pool: Callable[..., WorkerPool]) -> None:
    logs = Logs()
    pool = make_pool(log_sink=logs, timeout_s=4.0)
    event = {"bucket": "uploads", "key": "cat.jpg", "sizes": [64, 128], "caption": "chat noir é"}

    invocation = pool.invoke(json.dumps(event).encode())

    assert invocation.error_type is None
    body = _body(invocation)
    assert body["event"] == event
    context = body["context"]
    assert 3000 < context["remaining_ms"] <= 4000
    assert context["function_name"] == "thumbnailer"
    assert context["aws_request_id"] == invocation.request_id
    assert context["invoked_function_arn"] == ARN
    assert context["memory_limit_in_mb"] == "256"
    assert context["log_group_name"] == "/aws/lambda/thumbnailer"
    # What the handler printed has reached the sink by the time invoke() returns.
    assert ("thumbnailer", f"handling echo in {body['pid']}") in logs.lines


def test_warm_reuse_and_report_line(make_pool: Callable[..., WorkerPool]) -> None:
    reports: list[Invocation] = []
    pool = make_pool(on_report=reports.append)

    cold = pool.invoke(_event(n=1))
    warm = pool.invoke(_event(n=2))

    assert _body(warm)["pid"] == _body(cold)["pid"]
    assert cold.init_ms is not None
    assert cold.init_ms > 0
    assert warm.init_ms is None
    assert reports == [cold, warm]
    cold_match = REPORT_RE.match(cold.report_line)
    warm_match = REPORT_RE.match(warm.report_line)
    assert cold_match is not None
    assert cold_match["init"] is not None
    assert warm_match is not None
    assert warm_match["init"] is None
    assert cold.max_memory_mb > 5
    assert warm.billed_ms >= warm.duration_ms
    assert warm.billed_ms - warm.duration_ms < 1 or warm.billed_ms == 1
    # Since August 2025 the init phase is billed too on a cold start.
    assert cold.billed_ms >= cold.duration_ms + cold.init_ms


def test_report_line_exact_format() -> None:
    invocation = Invocation(
        request_id="8f5e2b1c-0d1e-4f2a-9b3c-4d5e6f708192",
        payload=b"{}",
        error_type=None,
        duration_ms=12.344,
        billed_ms=13,
        init_ms=210.549,
        max_memory_mb=80,
        memory_mb=256,
    )
    assert invocation.report_line == (
        "REPORT RequestId: 8f5e2b1c-0d1e-4f2a-9b3c-4d5e6f708192\tDuration: 12.34 ms\tBilled Duration: 13 ms\t"
        "Memory Size: 256 MB\tMax Memory Used: 80 MB\tInit Duration: 210.55 ms"
    )


def test_handler_exception_keeps_the_worker_warm(make_pool: Callable[..., WorkerPool]) -> None:
    pool = make_pool()
    first = pool.invoke(_event())

    failed = pool.invoke(_event(action="raise", key="cat.jpg"))

    assert failed.error_type == "ImageBroken"
    error = _body(failed)
    assert error["errorType"] == "ImageBroken"
    assert error["errorMessage"] == "cannot decode cat.jpg"
    assert error["requestId"] == failed.request_id
    assert any("raise ImageBroken" in frame for frame in error["stackTrace"])
    after = pool.invoke(_event())
    assert after.init_ms is None
    assert _body(after)["pid"] == _body(first)["pid"]


def test_environment_and_layer(make_pool: Callable[..., WorkerPool], code_dirs: tuple[Path, Path]) -> None:
    code, layer = code_dirs
    pool = make_pool(base_env={"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"})

    body = _body(pool.invoke(_event(action="env")))

    assert body["own"] == "128"
    assert body["base"] == "http://127.0.0.1:5000"
    assert body["region"] == "eu-west-3"  # from the ARN
    assert body["function_name"] == "thumbnailer"
    assert body["memory"] == "256"
    assert body["task_root"] == str(code.resolve())
    assert body["cwd"] == str(code.resolve())
    assert body["layer"] == "from-layer"
    assert Path(body["layer_file"]).parent == layer.resolve()


def test_timeout_kills_the_worker_and_the_next_one_starts_cold(make_pool: Callable[..., WorkerPool]) -> None:
    pool = make_pool(timeout_s=0.5)
    before = _body(pool.invoke(_event()))["pid"]

    started = time.monotonic()
    timed_out = pool.invoke(_event(action="sleep", seconds=10))
    elapsed = time.monotonic() - started

    assert timed_out.error_type == "Sandbox.Timedout"
    error = _body(timed_out)
    assert error["errorType"] == "Sandbox.Timedout"
    assert error["errorMessage"] == f"RequestId: {timed_out.request_id} Error: Task timed out after 0.50 seconds"
    # Cut at the timeout, not after the handler's 10 s (the margins are for a loaded machine).
    assert 500 <= timed_out.duration_ms < 8000
    assert elapsed < 8
    assert _wait_gone(before)
    after = pool.invoke(_event())
    assert after.error_type is None
    assert _body(after)["pid"] != before
    assert after.init_ms is not None


def test_timeout_argument_overrides_the_spec(make_pool: Callable[..., WorkerPool]) -> None:
    pool = make_pool(timeout_s=5.0)
    timed_out = pool.invoke(_event(action="sleep", seconds=10), timeout_s=0.3)
    assert timed_out.error_type == "Sandbox.Timedout"
    assert "Task timed out after 0.30 seconds" in _body(timed_out)["errorMessage"]


def test_killed_worker_is_an_exit_error_and_is_replaced(make_pool: Callable[..., WorkerPool]) -> None:
    pool = make_pool()
    before = _body(pool.invoke(_event()))["pid"]

    killed = pool.invoke(_event(action="kill"))

    assert killed.error_type == "Runtime.ExitError"
    error = _body(killed)
    assert error["errorMessage"] == f"RequestId: {killed.request_id} Error: Runtime exited with error: signal: killed"
    assert not _alive(before)
    after = pool.invoke(_event())
    assert after.error_type is None
    assert _body(after)["pid"] != before
    assert after.init_ms is not None


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        ("broken_at_import.lambda_handler", "ConfigMissing", "THUMBNAIL_SIZE is not set"),
        (
            "missing_dependency.lambda_handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'missing_dependency': No module named 'not_a_module_anywhere'",
        ),
        ("app.no_such_handler", "Runtime.HandlerNotFound", "Handler 'no_such_handler' missing on module 'app'"),
    ],
)
def test_init_error(make_pool: Callable[..., WorkerPool], handler: str, error_type: str, message: str) -> None:
    logs = Logs()
    pool = make_pool(handler, log_sink=logs)

    first = pool.invoke(_event())

    assert first.error_type == error_type
    error = _body(first)
    assert error["errorType"] == error_type
    assert error["errorMessage"] == message
    assert first.init_ms is not None
    assert REPORT_RE.match(first.report_line)
    assert f"[ERROR] {error_type}: {message}" in logs.text()
    # The environment is gone: the next invocation tries init again.
    second = pool.invoke(_event())
    assert second.error_type == error_type
    assert second.init_ms is not None


def test_init_past_its_time_limit_times_out(
    make_pool: Callable[..., WorkerPool], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Init gets max(10 s, the function timeout); shorten the 10 s to keep the test fast.
    monkeypatch.setattr(worker, "INIT_TIMEOUT_S", 0.3)
    pool = make_pool("slow_init.lambda_handler", timeout_s=0.3)

    started = time.monotonic()
    invocation = pool.invoke(_event())

    assert time.monotonic() - started < 15  # cut at the init limit, not after the module's 30 s sleep
    assert invocation.error_type == "Sandbox.Timedout"
    assert "Task timed out after 0.30 seconds" in _body(invocation)["errorMessage"]
    assert invocation.init_ms is not None
    assert invocation.init_ms >= 300


def test_two_workers_serve_four_parallel_invocations_in_two_rounds(make_pool: Callable[..., WorkerPool]) -> None:
    pool = make_pool(max_workers=2)
    results: list[Invocation] = []
    lock = threading.Lock()

    def call() -> None:
        invocation = pool.invoke(_event(action="sleep", seconds=0.8))
        with lock:
            results.append(invocation)

    threads = [threading.Thread(target=call) for _ in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started

    assert len(results) == 4
    assert all(invocation.error_type is None for invocation in results)
    bodies = [_body(invocation) for invocation in results]
    assert len({body["pid"] for body in bodies}) == 2
    assert elapsed >= 1.6, elapsed  # two rounds of 0.8 s, whatever the machine's load
    assert sum(invocation.init_ms is not None for invocation in results) == 2
    # Never more than two handlers running at once.
    for body in bodies:
        running = [other for other in bodies if other["start"] <= body["start"] < other["end"]]
        assert len(running) <= 2
    # Two rounds: the third starts once one of the first two has ended, the fourth once two of the first three.
    first, second, third, fourth = sorted(bodies, key=lambda body: body["start"])
    assert sum(other["end"] <= third["start"] for other in (first, second)) >= 1
    assert sum(other["end"] <= fourth["start"] for other in (first, second, third)) >= 2


def test_close_leaves_no_processes(make_pool: Callable[..., WorkerPool]) -> None:
    pool = make_pool(max_workers=2)
    bodies: list[dict[str, Any]] = []

    def call() -> None:
        bodies.append(_body(pool.invoke(_event(action="spawn"))))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pids = {body["pid"] for body in bodies} | {body["child"] for body in bodies}
    assert len(pids) == 4
    assert all(_alive(pid) for pid in pids)

    pool.close()

    assert not any(_alive(pid) for pid in {body["pid"] for body in bodies})
    assert all(_wait_gone(body["child"]) for body in bodies)
    with pytest.raises(PoolClosedError):
        pool.invoke(_event())
    pool.close()  # idempotent


def test_close_during_an_invocation(make_pool: Callable[..., WorkerPool]) -> None:
    logs = Logs()
    pool = make_pool(log_sink=logs)
    results: list[Invocation] = []
    caller = threading.Thread(target=lambda: results.append(pool.invoke(_event(action="sleep", seconds=30))))
    caller.start()
    deadline = time.monotonic() + 5
    while "handling sleep" not in logs.text() and time.monotonic() < deadline:
        time.sleep(0.02)

    with pool:  # the context manager closes it
        pass
    caller.join(timeout=5)

    assert not caller.is_alive()
    assert results[0].error_type == "Runtime.ExitError"
    assert "Runtime exited with error: signal: terminated" in _body(results[0])["errorMessage"]


def test_close_before_the_worker_starts(make_pool: Callable[..., WorkerPool], monkeypatch: pytest.MonkeyPatch) -> None:
    pool = make_pool()
    start = Worker.start

    def close_then_start(self: Worker) -> None:
        pool.close()  # lands between the pool handing out the worker and the worker starting its process
        start(self)

    monkeypatch.setattr(Worker, "start", close_then_start)

    with pytest.raises(PoolClosedError, match=r"^function thumbnailer: the pool is closing$"):
        pool.invoke(_event())
