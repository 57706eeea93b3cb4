"""Lambda functions in warm worker processes, under AWS's own runtime interface client.

Each worker is ``python -m awslambdaric <handler>`` (the same bootstrap the managed ``python3.12`` runtime runs),
started in the function's code directory and pointed, through ``AWS_LAMBDA_RUNTIME_API``, at a Runtime API endpoint
of its own: a small threaded HTTP server on 127.0.0.1 that this module implements.  Because every worker has its own
endpoint, the server always knows which invocation a request belongs to.

The protocol, as awslambdaric 4.2.2 speaks it:

* ``GET /2018-06-01/runtime/invocation/next`` long-polls for the next event.  The response carries the event as the
  body and the headers ``Lambda-Runtime-Aws-Request-Id``, ``Lambda-Runtime-Deadline-Ms`` (epoch milliseconds, from
  which ``context.get_remaining_time_in_millis()`` is computed), ``Lambda-Runtime-Invoked-Function-Arn``,
  ``Lambda-Runtime-Trace-Id`` and ``Content-Type: application/json`` (without it the event reaches the handler as
  raw bytes instead of parsed JSON).
* ``POST /2018-06-01/runtime/invocation/<id>/response`` with the handler's result.
* ``POST /2018-06-01/runtime/invocation/<id>/error`` with ``{"errorMessage", "errorType", "requestId",
  "stackTrace"}``; ``errorType`` is the exception's class name.
* ``POST /2018-06-01/runtime/init/error`` when the handler cannot be loaded (the module raises at import, the handler
  is missing...); the client then exits with status 1.

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

import array
import atexit
import contextlib
import fcntl
import json
import math
import os
import select
import signal
import subprocess
import sys
import termios
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = ["FunctionSpec", "Invocation", "PoolClosedError", "WorkerPool"]

RUNTIME_API_PREFIX = "/2018-06-01/runtime"
INIT_TIMEOUT_S = 10.0
"""AWS's limit on the init phase of an on-demand function."""
STOP_GRACE_S = 2.0
"""How long close() waits after SIGTERM before SIGKILL."""
LOG_DRAIN_TIMEOUT_S = 1.0
"""How long an invocation waits for the log readers to pass on what the handler wrote before it returned."""
DEFAULT_ACCOUNT = "123456789012"

ERROR_TIMEOUT = "Sandbox.Timedout"
ERROR_EXIT = "Runtime.ExitError"

LogSink = Callable[[str, str], None]


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


class PoolClosedError(RuntimeError):
    """invoke() on a WorkerPool that has been closed."""


def _default_log_sink(function_name: str, line: str) -> None:
    # awslambdaric joins the lines of one error record with "\r" (one CloudWatch event); show them as lines.
    for part in line.split("\r"):
        sys.stderr.write(f"[{function_name}] {part}\n")


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


def _error_json(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"


def _region(spec: FunctionSpec, env: Mapping[str, str]) -> str:
    parts = spec.arn.split(":")
    if len(parts) >= 4 and parts[0] == "arn" and parts[3]:
        return parts[3]
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"


def _pending_bytes(fd: int) -> int:
    buf = array.array("i", [0])
    try:
        fcntl.ioctl(fd, termios.FIONREAD, buf)
    except OSError:
        return 0
    return buf[0]


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


class _RuntimeAPIServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, worker: _Worker) -> None:
        self.worker = worker
        super().__init__(("127.0.0.1", 0), _RuntimeAPIHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A worker killed mid-request leaves a broken connection behind; that is expected.
        pass


class _RuntimeAPIHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm against the client's delayed ACKs, each
    # exchange would stall for ~40 ms.
    disable_nagle_algorithm = True
    server: _RuntimeAPIServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send(self, code: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if not headers or "Content-Type" not in headers:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.split("?")[0] == f"{RUNTIME_API_PREFIX}/invocation/next":
            self.server.worker.serve_next(self)
        else:
            self.send(404, _error_json("InvalidRequest", f"no route for GET {self.path}"))

    def do_POST(self) -> None:
        body = self._read_body()
        parts = self.path.split("?")[0].removeprefix(RUNTIME_API_PREFIX).strip("/").split("/")
        header_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
        worker = self.server.worker
        if parts == ["init", "error"]:
            worker.on_init_error(body, header_type)
            self.send(202, b'{"status":"OK"}')
        elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            if worker.on_result(parts[1], body, parts[2] == "error", header_type):
                self.send(202, b'{"status":"OK"}')
            else:
                self.send(400, _error_json("InvalidRequestID", f"Invalid request ID: {parts[1]}"))
        else:
            self.send(404, _error_json("InvalidRequest", f"no route for POST {self.path}"))


class _Worker:
    """One execution environment: an awslambdaric process and its Runtime API endpoint."""

    def __init__(self, spec: FunctionSpec, base_env: Mapping[str, str], python: str, log_sink: LogSink) -> None:
        self.fault: str | None = None
        self._spec = spec
        self._base_env = base_env
        self._python = python
        self._log_sink = log_sink
        self._arn = spec.arn
        self._cond = threading.Condition()
        self._life_lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._server: _RuntimeAPIServer | None = None
        self._threads: list[threading.Thread] = []
        self._started_at = 0.0
        self._ready_at: float | None = None
        self._init_error: tuple[bytes, str] | None = None
        self._exit_code: int | None = None
        self._pending: _Pending | None = None
        self._closing = False
        self._broken = False
        self._peak_kb = 0
        # Log readers: which are inside a read, which have reached EOF.
        self._io_cond = threading.Condition()
        self._io_busy: dict[int, bool] = {}
        self._io_eof: dict[int, bool] = {}

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
                raise PoolClosedError(f"function {self._spec.name}: the pool is closing")
            server = _RuntimeAPIServer(self)
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
                fd = stream.fileno()
                self._io_busy[fd] = False
                self._io_eof[fd] = False
                self._threads.append(
                    threading.Thread(target=self._pump, args=(stream,), name=f"lambda-log-{proc.pid}", daemon=True)
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

    # -- logs ---------------------------------------------------------------------------------------------------

    def _pump(self, stream: Any) -> None:
        """Pass the worker's output to the log sink line by line.

        Reads happen only while ``_io_busy[fd]`` is set (under ``_io_cond``), so that _drain_logs() can tell, from
        the bytes still in the pipe, whether everything the worker wrote so far has reached the sink.
        """
        fd: int = stream.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        partial = b""
        try:
            while True:
                poller.poll()
                with self._io_cond:
                    self._io_busy[fd] = True
                data = os.read(fd, 65536)
                if not data:
                    break
                *lines, partial = (partial + data).split(b"\n")
                for raw in lines:
                    self._emit(raw)
                with self._io_cond:
                    self._io_busy[fd] = False
                    self._io_cond.notify_all()
        finally:
            if partial:
                self._emit(partial)
            with self._io_cond:
                self._io_busy[fd] = False
                self._io_eof[fd] = True
                self._io_cond.notify_all()
            stream.close()

    def _emit(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        # A failing sink must never stop the reader: the worker would block on a full pipe.
        with contextlib.suppress(Exception):
            self._log_sink(self._spec.name, line)

    def _drain_logs(self) -> None:
        """Wait (briefly) until the lines the worker wrote so far have been passed to the sink."""

        def drained() -> bool:
            return all(self._io_eof[fd] or (not self._io_busy[fd] and _pending_bytes(fd) == 0) for fd in self._io_busy)

        deadline = time.monotonic() + LOG_DRAIN_TIMEOUT_S
        with self._io_cond:
            while not drained():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._io_cond.wait(min(remaining, 0.05))

    # -- the Runtime API side (called from the HTTP server's threads) -------------------------------------------

    def _sample_memory(self) -> None:
        if self._proc is not None:
            kb = _peak_rss_kb(self._proc.pid)
            if kb is not None:
                self._peak_kb = max(self._peak_kb, kb)

    def serve_next(self, handler: _RuntimeAPIHandler) -> None:
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
            handler.send(503, _error_json("ServiceUnavailable", "the execution environment is shutting down"))
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
        return _error_json(ERROR_EXIT, f"RequestId: {request_id} Error: {reason}"), ERROR_EXIT

    def _timed_out(self, request_id: str, timeout_s: float) -> tuple[bytes, str]:
        self._sample_memory()
        self.kill()
        message = f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds"
        return _error_json(ERROR_TIMEOUT, message), ERROR_TIMEOUT

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
                    self._drain_logs()
                    return self._outcome(request_id, init_error[0], init_error[1], 0.0, init_ms)
                if exited:
                    self._drain_logs()
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
            self._drain_logs()
            duration_ms = (pending.finished_at - started) * 1000
            return self._outcome(request_id, pending.result, pending.error_type, duration_ms, init_ms)
        duration_ms = (time.perf_counter() - started) * 1000
        if self._exit_code is not None:
            self._drain_logs()
            return self._outcome(request_id, *self._exit_error(request_id), duration_ms, init_ms)
        return self._outcome(request_id, *self._timed_out(request_id, timeout_s), duration_ms, init_ms)


_live_pools: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


@atexit.register
def _close_live_pools() -> None:
    for pool in list(_live_pools):
        pool.close()


class WorkerPool:
    """Warm execution environments for one function, at most max_workers of them (its concurrency limit).

    invoke() is thread-safe.  Each worker serves one invocation at a time; workers start lazily, up to max_workers,
    and are then reused warm; callers queue when all are busy.  A worker that timed out, died or failed init is
    discarded, and the next invocation cold-starts a new one.
    """

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        max_workers: int | None = None,
        base_env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        on_report: Callable[[Invocation], None] | None = None,
        log_sink: LogSink | None = None,
    ) -> None:
        self.spec = spec
        self.max_workers = max_workers if max_workers is not None else (os.cpu_count() or 1)
        if self.max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {self.max_workers}")
        self._base_env = dict(base_env or {})
        self._python = python
        self._on_report = on_report
        self._log_sink = log_sink or _default_log_sink
        self._cond = threading.Condition()
        self._workers: set[_Worker] = set()
        self._idle: list[_Worker] = []
        self._closed = False
        _live_pools.add(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _acquire(self) -> _Worker:
        while True:
            dead: list[_Worker] = []
            worker: _Worker | None = None
            with self._cond:
                while worker is None and not dead:
                    if self._closed:
                        raise PoolClosedError(f"function {self.spec.name}: the pool is closed")
                    if self._idle:
                        candidate = self._idle.pop()  # the most recently used: the warmest
                        if candidate.reusable:
                            worker = candidate
                        else:
                            self._workers.discard(candidate)
                            dead.append(candidate)
                    elif len(self._workers) < self.max_workers:
                        worker = _Worker(self.spec, self._base_env, self._python, self._log_sink)
                        self._workers.add(worker)
                    else:
                        self._cond.wait()
            for candidate in dead:
                candidate.stop()
            if worker is not None:
                return worker

    def _release(self, worker: _Worker) -> None:
        with self._cond:
            keep = not self._closed and worker.reusable
            if keep:
                self._idle.append(worker)
            else:
                self._workers.discard(worker)
            self._cond.notify_all()
        if not keep:
            worker.stop()

    def invoke(self, payload: bytes, timeout_s: float | None = None, *, fault: str | None = None) -> Invocation:
        """Run the handler on ``payload`` (a JSON document) and wait for the outcome.

        Errors of the function (handler exceptions, timeouts, crashes, init failures) come back as an Invocation
        with error_type set; PoolClosedError if the pool is closed. ``fault`` injects one: "kill" kills the
        worker process while the handler runs, "hang" stops it until the timeout.
        """
        timeout = self.spec.timeout_s if timeout_s is None else timeout_s
        worker = self._acquire()
        worker.fault = fault
        try:
            invocation = worker.invoke(payload, timeout)
        finally:
            self._release(worker)
        if self._on_report is not None:
            self._on_report(invocation)
        return invocation

    def close(self) -> None:
        """Stop every worker (invocations in flight end with Runtime.ExitError); idempotent."""
        with self._cond:
            self._closed = True
            workers = list(self._workers)
            self._workers.clear()
            self._idle.clear()
            self._cond.notify_all()
        stoppers = [threading.Thread(target=worker.stop, name="lambda-stop") for worker in workers]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()
        _live_pools.discard(self)
