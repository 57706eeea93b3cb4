"""Logger and Metrics singletons, and the wrapper every handler runs its step in."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from pipeline.errors import InternalError, PipelineError

logger = Logger()
metrics = Metrics()

T = TypeVar("T", bound=Mapping[str, Any])


def _object_key(event: Mapping[str, Any]) -> str | None:
    for field in ("source", "upload"):
        ref = event.get(field)
        if isinstance(ref, Mapping) and isinstance(ref.get("key"), str):
            return str(ref["key"])
    return None


def run_step[T: Mapping[str, Any]](name: str, event: Mapping[str, Any], work: Callable[[], T]) -> dict[str, Any]:
    """Run one step: log with the object key, time it, emit metrics, keep errors named.

    An exception that is not one of the pipeline's own is logged with its stack trace and raised again
    as InternalError (a defect, never retried), so every error the state machine sees has a documented name.

    The returned result carries ``elapsed_ms`` so the notification can report per-step durations.
    """
    logger.append_keys(step=name, object_key=_object_key(event))
    started = time.perf_counter()
    try:
        result = work()
    except PipelineError as exc:
        logger.warning("step failed", extra={"error": type(exc).__name__, "cause": str(exc)})
        metrics.add_metric(name="StepFailures", unit=MetricUnit.Count, value=1)
        raise
    except Exception as exc:  # re-raised under a documented name; the stack trace goes to the log
        logger.exception("step failed unexpectedly", extra={"error": type(exc).__name__})
        metrics.add_metric(name="StepFailures", unit=MetricUnit.Count, value=1)
        raise InternalError(f"{type(exc).__name__}: {exc}"[:300]) from exc
    elapsed_ms = round((time.perf_counter() - started) * 1000)
    metrics.add_metric(name="StepDuration", unit=MetricUnit.Milliseconds, value=elapsed_ms)
    logger.info("step done", extra={"elapsed_ms": elapsed_ms})
    return {**result, "elapsed_ms": elapsed_ms}
