"""Lambda functions in warm worker processes, under AWS's own runtime interface client.

Each worker is ``python -m awslambdaric <handler>`` (the same bootstrap the managed ``python3.12`` runtime runs),
started in the function's code directory and pointed, through ``AWS_LAMBDA_RUNTIME_API``, at a Runtime API endpoint
of its own (runtime_api.py).

The client imports the handler module *before* its first ``GET /next``, so the time from process start to that first
request is the init duration, as on AWS.

How failures are reported, following what AWS returns to a synchronous caller:

* The deadline passes: the worker is killed (SIGKILL to its process group) and the invocation fails with
  ``errorType`` ``Sandbox.Timedout`` and ``errorMessage`` ``"RequestId: <id> Error: Task timed out after 3.00
  seconds"``.
* The worker process dies mid-invocation (killed, ``os._exit``, segfault...): ``Runtime.ExitError`` with
  ``"RequestId: <id> Error: Runtime exited with error: signal: killed"`` (or ``exit status N``).
* Init fails: the body awslambdaric posted to ``/init/error`` is returned as is (``Runtime.ImportModuleError``,
  ``Runtime.HandlerNotFound``, ``Runtime.UserCodeSyntaxError``, or the exception's class name for any other
  exception raised at import).  If the process exits during init without posting one, ``Runtime.ExitError``.

A worker that timed out, died or failed init is discarded; the next invocation cold-starts a fresh one.

The init phase gets max(10 s, function timeout): AWS gives init 10 s and, past that, retries it inside the invoke
phase under the function timeout.  Memory is measured (peak RSS, ``VmHWM``) but not limited.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from localcloud.services.lambda_.logs import LogPump, LogSink
from localcloud.services.lambda_.runtime_api import RuntimeAPIHandler, RuntimeAPIServer, error_json

__all__ = ["FunctionSpec", "Invocation", "Worker", "WorkerStoppingError"]

INIT_TIMEOUT_S = 10.0
"""AWS's limit on the init phase of an on-demand function."""
STOP_GRACE_S = 2.0
"""How long close() waits after SIGTERM before SIGKILL."""
DEFAULT_ACCOUNT = "123456789012"

ERROR_TIMEOUT = "Sandbox.Timedout"
ERROR_EXIT = "Runtime.ExitError"


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function: its code, its configuration and its own environment variables."""

    name: str
    handler: str
    """``module.function``, e.g. ``app.lambda_handler``."""
    code_dir: Path
    layer_dirs: list[Path] = field(default_factory=list)
    """Put on PYTHONPATH after code_dir, in order (for a Python layer, its ``python/`` directory)."""
    environment: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 3.0
    memory_mb: int = 128
    arn: str = ""
    """The invoked function ARN; empty means ``arn:aws:lambda:<region>:123456789012:function:<name>``."""


@dataclass(frozen=True)
class Invocation:
    """The outcome of one invocation, with what AWS puts in the REPORT line."""

    request_id: str
    payload: bytes
    """The JSON the handler returned, or the error JSON when error_type is set."""
    error_type: str | None
    duration_ms: float
    billed_ms: int
    init_ms: float | None
    """The init duration, on a cold start only."""
    max_memory_mb: int
    memory_mb: int
    """The function's configured memory size."""

    @property
    def report_line(self) -> str:
        line = (
            f"REPORT RequestId: {self.request_id}\tDuration: {self.duration_ms:.2f} ms\t"
            f"Billed Duration: {self.billed_ms} ms\tMemory Size: {self.memory_mb} MB\t"
            f"Max Memory Used: {self.max_memory_mb} MB"
        )
        if self.init_ms is not None:
            line += f"\tInit Duration: {self.init_ms:.2f} ms"
        return line


def _billed_ms(duration_ms: float, init_ms: float | None) -> int:
    """Rounded up to the next millisecond, at least 1 ms.

    Since August 2025 AWS bills the init phase of on-demand ZIP functions on managed runtimes too, so on a cold
    start the billed duration covers init + invoke.
    """
    return max(1, math.ceil(round(duration_ms + (init_ms or 0.0), 6)))


def _peak_rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _exit_reason(returncode: int) -> str:
    """How the Lambda service words a runtime exit (Go's ProcessState.String())."""
    if returncode < 0:
        try:
            name = signal.strsignal(-returncode) or f"signal {-returncode}"
        except ValueError:
            name = f"signal {-returncode}"
        return f"Runtime exited with error: signal: {name.lower()}"
    if returncode > 0:
        return f"Runtime exited with error: exit status {returncode}"
    return "Runtime exited without providing a reason"


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"


def _region(spec: FunctionSpec, env: Mapping[str, str]) -> str:
    parts = spec.arn.split(":")
    if len(parts) >= 4 and parts[0] == "arn" and parts[3]:
        return parts[3]
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"


def _worker_env(spec: FunctionSpec, base_env: Mapping[str, str], runtime_api: str) -> dict[str, str]:
    """os.environ (less the Lambda runtime's own variables) + base_env + the function's variables + the runtime's."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_LAMBDA_", "_LAMBDA_", "_X_AMZN_"))
        and key not in {"_HANDLER", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "AWS_EXECUTION_ENV"}
    }
    env = {**inherited, **base_env, **spec.environment}
    region = _region(spec, env)
    paths = [str(spec.code_dir.resolve()), *(str(p.resolve()) for p in spec.layer_dirs)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env.update(
        {
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            # Makes awslambdaric poll /next from a thread (so the main thread handles signals) and emit non-ASCII
            # JSON as the managed runtime does.
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "_HANDLER": spec.handler,
            "LAMBDA_TASK_ROOT": str(spec.code_dir.resolve()),
            "TZ": ":UTC",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(paths),
        }
    )
    return env


@dataclass
class _Pending:
    request_id: str
    event: bytes
    deadline_ms: int
    trace_id: str
    delivered: bool = False
    result: bytes | None = None
    error_type: str | None = None
    finished_at: float = 0.0


class WorkerStoppingError(RuntimeError):
    """start() on a Worker that is being stopped."""


class Worker:
    """One execution environment: an awslambdaric process and its Runtime API endpoint."""

    def __init__(self, spec: FunctionSpec, base_env: Mapping[str, str], python: str, log_sink: LogSink) -> None:
        self.fault: str | None = None
        self._spec = spec
        self._base_env = base_env
        self._python = python
        self._logs = LogPump(spec.name, log_sink)
        self._arn = spec.arn
        self._cond = threading.Condition()
        self._life_lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._server: RuntimeAPIServer | None = None
        self._threads: list[threading.Thread] = []
        self._started_at = 0.0
        self._ready_at: float | None = None
        self._init_error: tuple[bytes, str] | None = None
        self._exit_code: int | None = None
        self._pending: _Pending | None = None
        self._closing = False
        self._broken = False
        self._peak_kb = 0

    @property
    def started(self) -> bool:
        return self._proc is not None

    @property
    def reusable(self) -> bool:
        with self._cond:
            if self._broken or self._closing or self._exit_code is not None:
                return False
        return self._proc is not None and self._proc.poll() is None

    # -- life cycle ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        with self._life_lock:
            if self._closing:
                raise WorkerStoppingError(f"function {self._spec.name}: the worker is stopping")
            server = RuntimeAPIServer(self)
            server_thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"lambda-api-{self._spec.name}",
                daemon=True,
            )
            server_thread.start()
            env = _worker_env(self._spec, self._base_env, f"127.0.0.1:{server.server_port}")
            if not self._arn:
                self._arn = f"arn:aws:lambda:{env['AWS_REGION']}:{DEFAULT_ACCOUNT}:function:{self._spec.name}"
            self._started_at = time.perf_counter()
            try:
                proc = subprocess.Popen(  # noqa: S603 (the interpreter and handler the caller configured)
                    [self._python, "-m", "awslambdaric", self._spec.handler],
                    cwd=self._spec.code_dir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,  # its own process group, so that stop() also reaches its children
                )
            except BaseException:
                server.shutdown()
                server.server_close()
                raise
            self._server = server
            self._proc = proc
            assert proc.stdout is not None
            assert proc.stderr is not None
            self._threads = [server_thread]
            for stream in (proc.stdout, proc.stderr):
                self._logs.add(stream)
                self._threads.append(
                    threading.Thread(target=self._logs.pump, args=(stream,), name=f"lambda-log-{proc.pid}", daemon=True)
                )
            self._threads.append(
                threading.Thread(target=self._wait_exit, args=(proc,), name=f"lambda-wait-{proc.pid}", daemon=True)
            )
            for thread in self._threads[1:]:
                thread.start()

    def _wait_exit(self, proc: subprocess.Popen[bytes]) -> None:
        returncode = proc.wait()
        with self._cond:
            self._exit_code = returncode
            self._cond.notify_all()

    def _signal_group(self, signum: int) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signum)

    def kill(self) -> None:
        with self._cond:
            self._broken = True
        self._signal_group(signal.SIGKILL)

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after a grace period) and everything serving it; idempotent."""
        with self._life_lock:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            proc = self._proc
            if proc is not None:
                if proc.poll() is None:
                    self._signal_group(signal.SIGTERM)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(STOP_GRACE_S)
                # Whatever is left of the process group (children the handler started), and the process itself.
                self._signal_group(signal.SIGKILL)
                proc.wait()
            for thread in self._threads[1:]:
                thread.join(timeout=5)
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
                self._server = None
            if self._threads:
                self._threads[0].join(timeout=5)
            self._threads = []

    # -- the Runtime API side (called from the HTTP server's threads) -------------------------------------------

    def _sample_memory(self) -> None:
        if self._proc is not None:
            kb = _peak_rss_kb(self._proc.pid)
            if kb is not None:
                self._peak_kb = max(self._peak_kb, kb)

    def serve_next(self, handler: RuntimeAPIHandler) -> None:
        first = False
        with self._cond:
            if self._ready_at is None:
                self._ready_at = time.perf_counter()
                first = True
                self._cond.notify_all()
        if first:
            self._sample_memory()
        with self._cond:
            while True:
                pending = self._pending
                if self._closing:
                    pending = None
                    break
                if pending is not None and not pending.delivered:
                    pending.delivered = True
                    break
                self._cond.wait()
        if pending is None:
            handler.close_connection = True
            handler.send(503, error_json("ServiceUnavailable", "the execution environment is shutting down"))
            return
        handler.send(
            200,
            pending.event,
            {
                "Lambda-Runtime-Aws-Request-Id": pending.request_id,
                "Lambda-Runtime-Deadline-Ms": str(pending.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": self._arn,
                "Lambda-Runtime-Trace-Id": pending.trace_id,
                "Content-Type": "application/json",
            },
        )
        if self.fault == "kill":
            # Fault injection: the process dies while the handler runs (as an out-of-memory kill would).
            self.kill()
        elif self.fault == "hang":
            # Fault injection: the process stops answering (a deadlock, a stuck network call).
            self._signal_group(signal.SIGSTOP)

    def on_result(self, request_id: str, body: bytes, is_error: bool, header_type: str | None) -> bool:
        error_type: str | None = None
        if is_error:
            error_type = header_type or "Unhandled"
            with contextlib.suppress(ValueError, AttributeError):
                error_type = str(json.loads(body).get("errorType") or error_type)
        self._sample_memory()  # the worker is alive, waiting for this request's answer
        with self._cond:
            pending = self._pending
            if pending is None or pending.request_id != request_id or pending.result is not None:
                return False
            pending.result = body
            pending.error_type = error_type
            pending.finished_at = time.perf_counter()
            self._cond.notify_all()
        return True

    def on_init_error(self, body: bytes, header_type: str | None) -> None:
        error_type = header_type or "Runtime.Unknown"
        with contextlib.suppress(ValueError, AttributeError):
            error_type = str(json.loads(body).get("errorType") or error_type)
        self._sample_memory()
        with self._cond:
            if self._init_error is None:
                self._init_error = (body, error_type)
            self._cond.notify_all()

    # -- invoking -----------------------------------------------------------------------------------------------

    def _outcome(
        self, request_id: str, payload: bytes, error_type: str | None, duration_ms: float, init_ms: float | None
    ) -> Invocation:
        if self._proc is not None and self._proc.poll() is None:
            self._sample_memory()
        return Invocation(
            request_id=request_id,
            payload=payload,
            error_type=error_type,
            duration_ms=duration_ms,
            billed_ms=_billed_ms(duration_ms, init_ms),
            init_ms=init_ms,
            max_memory_mb=math.ceil(self._peak_kb / 1024),
            memory_mb=self._spec.memory_mb,
        )

    def _exit_error(self, request_id: str) -> tuple[bytes, str]:
        with self._cond:
            returncode = self._exit_code
        reason = _exit_reason(returncode) if returncode is not None else "Runtime exited without providing a reason"
        self._broken = True
        return error_json(ERROR_EXIT, f"RequestId: {request_id} Error: {reason}"), ERROR_EXIT

    def _timed_out(self, request_id: str, timeout_s: float) -> tuple[bytes, str]:
        self._sample_memory()
        self.kill()
        message = f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds"
        return error_json(ERROR_TIMEOUT, message), ERROR_TIMEOUT

    def invoke(self, event: bytes, timeout_s: float) -> Invocation:
        request_id = str(uuid.uuid4())
        init_ms: float | None = None
        if not self.started:
            self.start()
            with self._cond:
                self._cond.wait_for(
                    lambda: self._ready_at is not None or self._init_error is not None or self._exit_code is not None,
                    timeout=max(INIT_TIMEOUT_S, timeout_s),
                )
                ready_at, init_error, exited = self._ready_at, self._init_error, self._exit_code is not None
            if ready_at is None:
                init_ms = (time.perf_counter() - self._started_at) * 1000
                if init_error is not None:
                    self._broken = True
                    self._logs.drain()
                    return self._outcome(request_id, init_error[0], init_error[1], 0.0, init_ms)
                if exited:
                    self._logs.drain()
                    return self._outcome(request_id, *self._exit_error(request_id), 0.0, init_ms)
                return self._outcome(request_id, *self._timed_out(request_id, timeout_s), 0.0, init_ms)
            init_ms = (ready_at - self._started_at) * 1000

        pending = _Pending(
            request_id=request_id,
            event=event,
            deadline_ms=int(time.time() * 1000 + timeout_s * 1000),
            trace_id=_trace_id(),
        )
        with self._cond:
            self._pending = pending
            started = time.perf_counter()
            self._cond.notify_all()
            self._cond.wait_for(lambda: pending.result is not None or self._exit_code is not None, timeout=timeout_s)
            self._pending = None
        if pending.result is not None:
            self._logs.drain()
            duration_ms = (pending.finished_at - started) * 1000
            return self._outcome(request_id, pending.result, pending.error_type, duration_ms, init_ms)
        duration_ms = (time.perf_counter() - started) * 1000
        if self._exit_code is not None:
            self._logs.drain()
            return self._outcome(request_id, *self._exit_error(request_id), duration_ms, init_ms)
        return self._outcome(request_id, *self._timed_out(request_id, timeout_s), duration_ms, init_ms)
