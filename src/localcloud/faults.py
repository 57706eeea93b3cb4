"""Failures on purpose, one mechanism for every service: arm a fault, and the next matching calls fail.

A ``RequestFault`` answers HTTP requests to a service with an error, as an overloaded service would
(``localcloud.services.server`` consults it at the server's front door). An ``InvocationFault`` kills
or stops a Lambda worker while it runs an invocation (``localcloud.services.lambda_.service``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal


@dataclass(kw_only=True)
class Fault:
    """Fail the next ``count`` matching calls; ``hits`` counts the calls failed so far."""

    count: int = 1
    hits: int = field(default=0, init=False)

    @property
    def spent(self) -> bool:
        return self.hits >= self.count


@dataclass(kw_only=True)
class RequestFault(Fault):
    """Answer matching requests with ``status`` and ``code``.

    ``service`` is read from the request's SigV4 credential scope (s3, sns, dynamodb, ...); ``method``
    and ``path_prefix`` narrow it (for S3, the path is ``/<bucket>/<key>``).
    """

    service: str
    method: str | None = None
    path_prefix: str = "/"
    status: int = 503
    code: str = "SlowDown"

    def matches(self, service: str, method: str, path: str) -> bool:
        return (
            self.service == service
            and (self.method is None or self.method == method)
            and path.startswith(self.path_prefix)
        )


@dataclass(kw_only=True)
class InvocationFault(Fault):
    """Kill the worker process (``kill``) or stop it until the invocation times out (``hang``) during the
    invocations of functions whose name contains ``function``."""

    function: str
    effect: Literal["kill", "hang"] = "kill"


class Faults:
    """The armed faults, oldest first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[Fault] = []

    def arm[F: Fault](self, fault: F) -> F:
        """Arm a fault; returned so the caller can read its ``hits``."""
        with self._lock:
            self._armed.append(fault)
        return fault

    def __bool__(self) -> bool:
        """Whether any fault was armed (spent ones included): without one, callers skip their matching."""
        return bool(self._armed)

    def take[F: Fault](self, kind: type[F], matches: Callable[[F], bool]) -> F | None:
        """The oldest unspent fault of this kind that matches, counted as hit; None when there is none."""
        with self._lock:
            for fault in self._armed:
                if isinstance(fault, kind) and not fault.spent and matches(fault):
                    fault.hits += 1
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()


#: The faults of the local cloud in this process.
FAULTS = Faults()
