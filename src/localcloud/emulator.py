"""Every emulated service at once: their patches applied and undone together, their callbacks attached.

A service module (``localcloud.services``) declares ``PATCHES`` (each ``Patch`` names the gaps it
closes) and ``reset()`` (what it forgets when the local cloud stops). A new emulated service is a new
module here, listed in SERVICES.
"""

from __future__ import annotations

import threading
from types import ModuleType
from typing import Any

from localcloud import patching
from localcloud.services import cloudformation, eventbridge, s3, s3_cors, s3_post, server
from localcloud.services.lambda_ import service as lambda_service
from localcloud.services.stepfunctions import executions, interpreter

SERVICES: tuple[ModuleType, ...] = (
    server,
    cloudformation,
    s3,
    s3_post,
    s3_cors,
    eventbridge,
    executions,
    interpreter,
    lambda_service,
)

_lock = threading.Lock()


def patches() -> tuple[patching.Patch, ...]:
    return tuple(patch for service in SERVICES for patch in service.PATCHES)


def gaps() -> dict[str, ModuleType]:
    """Every gap the patches close, and the service that closes it."""
    return {gap: service for service in SERVICES for patch in service.PATCHES for gap in patch.closes}


def apply(
    *,
    invoker: lambda_service.Invoker,
    deliverer: eventbridge.Deliverer,
    time_scale: float = 1.0,
    mock_config: dict[str, Any] | None = None,
    execute_state_machines: bool = True,
) -> None:
    """Install every patch and attach the callbacks. Applying again keeps the patches and sets the rest."""
    with _lock:
        patching.apply(patches())
        lambda_service.INVOKER.attach(invoker)
        eventbridge.DELIVERY.attach(deliverer)
        executions.configure(execute_state_machines=execute_state_machines, mock_config=mock_config)
        interpreter.configure(time_scale=time_scale)


def remove() -> None:
    """Restore moto as it was; every service forgets what it kept. Harmless when nothing is applied."""
    with _lock:
        patching.undo()
        for service in SERVICES:
            service.reset()
