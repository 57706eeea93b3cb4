"""A worker's output, passed on to a log sink line by line."""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import select
import sys
import termios
import threading
import time
from collections.abc import Callable
from typing import IO

__all__ = ["LOG_DRAIN_TIMEOUT_S", "LogPump", "LogSink", "default_log_sink"]

LOG_DRAIN_TIMEOUT_S = 1.0
"""How long an invocation waits for the log readers to pass on what the handler wrote before it returned."""

LogSink = Callable[[str, str], None]


def default_log_sink(function_name: str, line: str) -> None:
    # awslambdaric joins the lines of one error record with "\r" (one CloudWatch event); show them as lines.
    for part in line.split("\r"):
        sys.stderr.write(f"[{function_name}] {part}\n")


def _pending_bytes(fd: int) -> int:
    buf = array.array("i", [0])
    try:
        fcntl.ioctl(fd, termios.FIONREAD, buf)
    except OSError:
        return 0
    return buf[0]


class LogPump:
    """The log readers of one worker process: one pump() thread per output stream."""

    def __init__(self, function_name: str, log_sink: LogSink) -> None:
        self._function_name = function_name
        self._log_sink = log_sink
        # Log readers: which are inside a read, which have reached EOF.
        self._io_cond = threading.Condition()
        self._io_busy: dict[int, bool] = {}
        self._io_eof: dict[int, bool] = {}

    def add(self, stream: IO[bytes]) -> None:
        """Register a stream, before its pump() thread starts."""
        fd = stream.fileno()
        self._io_busy[fd] = False
        self._io_eof[fd] = False

    def pump(self, stream: IO[bytes]) -> None:
        """Pass the worker's output to the log sink line by line.

        Reads happen only while ``_io_busy[fd]`` is set (under ``_io_cond``), so that drain() can tell, from
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
            self._log_sink(self._function_name, line)

    def drain(self) -> None:
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
