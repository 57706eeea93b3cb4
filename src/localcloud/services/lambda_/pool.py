"""Warm Lambda workers, one pool per function; the pools still open when the interpreter exits get closed."""

from __future__ import annotations

import atexit
import os
import sys
import threading
import weakref
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Self

from localcloud.services.lambda_.logs import LogSink, default_log_sink
from localcloud.services.lambda_.worker import FunctionSpec, Invocation, Worker, WorkerStoppingError

__all__ = ["PoolClosedError", "WorkerPool"]


class PoolClosedError(RuntimeError):
    """invoke() on a WorkerPool that has been closed."""


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
        self._log_sink = log_sink or default_log_sink
        self._cond = threading.Condition()
        self._workers: set[Worker] = set()
        self._idle: list[Worker] = []
        self._closed = False
        _live_pools.add(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _acquire(self) -> Worker:
        while True:
            dead: list[Worker] = []
            worker: Worker | None = None
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
                        worker = Worker(self.spec, self._base_env, self._python, self._log_sink)
                        self._workers.add(worker)
                    else:
                        self._cond.wait()
            for candidate in dead:
                candidate.stop()
            if worker is not None:
                return worker

    def _release(self, worker: Worker) -> None:
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
        except WorkerStoppingError as exc:  # close() stopped the worker before it could start
            raise PoolClosedError(f"function {self.spec.name}: the pool is closing") from exc
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
