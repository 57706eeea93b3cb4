"""Lambda: functions from CloudFormation keep their layers, and every invocation runs in a warm
awslambdaric worker of this machine (``Functions``), one pool of workers per function configuration.

Patches: ``lambda_runs_locally``, ``cfn_function_layers``.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import threading
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from moto.awslambda.models import LambdaFunction

from localcloud.faults import FAULTS, InvocationFault
from localcloud.patching import Patch, Slot, original
from localcloud.services.lambda_.pool import PoolClosedError, WorkerPool
from localcloud.services.lambda_.worker import FunctionSpec, Invocation

#: The error of an invocation that arrives while the local cloud stops (no Retry of the template names it).
STOPPING_ERROR = "LocalCloud.Stopping"


class Invoker(Protocol):
    """What the invoke patch hands invocations to."""

    def invoke(self, function: Any, payload: bytes) -> tuple[bytes, str | None]:
        """Run a function; return the response payload and the error type (None on success)."""


INVOKER: Slot[Invoker] = Slot("the local cloud's Lambda workers")


# -- lambda_runs_locally -------------------------------------------------------------------------------------


def _lambda_invoke(self: LambdaFunction, body: str, request_headers: Any, response_headers: Any) -> bytes:
    """moto 5.2.5 runs functions with ``docker run`` only (or echoes the payload without Docker)."""
    payload = body.encode() if isinstance(body, str) else (body or b"{}")
    result, error_type = INVOKER.get().invoke(self, payload or b"{}")
    if error_type is not None:
        response_headers["x-amz-function-error"] = "Unhandled"
    return result


# -- cfn_function_layers -----------------------------------------------------------------------------------------


def _function_from_cfn(
    cls: Any,
    /,
    resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> LambdaFunction:
    """moto 5.2.5 drops a CloudFormation function's Layers (and resolves a Ref to a layer
    version to the model object rather than its ARN)."""
    from moto.awslambda.models import lambda_backends

    create = original(LambdaFunction, "create_from_cloudformation_json").__func__
    function: LambdaFunction = create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    storage = lambda_backends[account_id][region_name]._layers
    arns: list[str] = []
    for value in cloudformation_json.get("Properties", {}).get("Layers") or []:
        ref = str(getattr(value, "arn", value))  # a Ref to a LayerVersion resolves to the model object
        if not ref.startswith("arn:"):
            versions = storage.get_layer_versions(ref)
            if not versions:
                raise ValueError(f"{resource_name}: layer {ref!r} does not exist")
            ref = max(versions, key=lambda v: v.version).arn
        arns.append(ref)
    if arns and not function.layers:
        function.layers = function._get_layers_data(arns)
    return function


PATCHES = (
    Patch(("lambda_runs_locally",), LambdaFunction, "invoke", _lambda_invoke),
    Patch(("cfn_function_layers",), LambdaFunction, "create_from_cloudformation_json", classmethod(_function_from_cfn)),
)


def reset() -> None:
    INVOKER.attach(None)


# -- the workers ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerOptions:
    """``concurrency``: workers per function at most; ``environment``: what every worker's environment
    starts from (the endpoint, credentials, region); ``workdir``: where code and layers are unpacked."""

    concurrency: int
    environment: Mapping[str, str]
    workdir: Path


class Functions:
    """The local cloud's Lambda functions: a pool of warm workers per function configuration.

    A new configuration (code, timeout, memory, environment, layers) gets new execution environments,
    as on AWS: the old pool is retired and closed with the others. Once ``stopping`` is set, no pool is
    made and invocations are answered with STOPPING_ERROR.
    """

    def __init__(
        self,
        options: WorkerOptions,
        *,
        stopping: threading.Event,
        on_report: Callable[[str, Invocation], None],
        log_sink: Callable[[str, str], None] | None = None,
    ) -> None:
        self._options = options
        self._stopping = stopping
        self._on_report = on_report
        self._log_sink = log_sink
        self._lock = threading.Lock()
        self._pools: dict[str, WorkerPool] = {}
        self._retired: list[WorkerPool] = []

    def invoke(self, function: Any, payload: bytes) -> tuple[bytes, str | None]:
        fault = FAULTS.take(InvocationFault, lambda f: f.function in function.function_name)
        try:
            invocation = self._pool_for(function).invoke(payload, fault=fault.effect if fault else None)
        except PoolClosedError:
            if not self._stopping.is_set():
                raise
            error = {
                "errorType": STOPPING_ERROR,
                "errorMessage": f"{function.function_name}: the local cloud is stopping",
            }
            return json.dumps(error).encode(), STOPPING_ERROR
        return invocation.payload, invocation.error_type

    def close(self) -> None:
        """Stop every worker: invocations in flight end; later ones are answered STOPPING_ERROR."""
        with self._lock:
            pools, self._pools = [*self._pools.values(), *self._retired], {}
            self._retired = []
        for pool in pools:
            pool.close()

    def _pool_for(self, function: Any) -> WorkerPool:
        config = json.dumps(
            [function.code_sha_256, function.timeout, function.memory_size, function.environment_vars, function.layers],
            sort_keys=True,
            default=str,
        )
        key = f"{function.function_arn}@{config}"
        with self._lock:
            if self._stopping.is_set():
                raise PoolClosedError(f"function {function.function_name}: the local cloud is stopping")
            pool = self._pools.get(key)
            for old_key in [k for k in self._pools if k.startswith(f"{function.function_arn}@") and k != key]:
                self._retired.append(self._pools.pop(old_key))
            if pool is None:
                pool = self._pools[key] = WorkerPool(
                    self._spec_for(function),
                    max_workers=self._options.concurrency,
                    base_env=dict(self._options.environment),
                    python=sys.executable,
                    on_report=lambda invocation: self._on_report(function.function_name, invocation),
                    log_sink=self._log_sink,
                )
            return pool

    def _extract(self, name: str, sha: str, body: bytes) -> Path:
        target = self._options.workdir / f"{name}-{sha[:16]}"
        if not target.exists():
            partial = target.with_suffix(".partial")
            shutil.rmtree(partial, ignore_errors=True)
            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                archive.extractall(partial)
            partial.rename(target)
        return target

    def _spec_for(self, function: Any) -> FunctionSpec:
        from moto.awslambda.models import lambda_backends

        parts = function.function_arn.split(":")
        backend = lambda_backends[parts[4]][parts[3]]
        code_dir = self._extract(function.function_name, function.code_sha_256, function.code_bytes)
        layer_dirs: list[Path] = []
        for layer in function.layers:
            version = backend.layers_versions_by_arn(layer["Arn"])
            if version is None:
                raise RuntimeError(f"{function.function_name}: layer {layer['Arn']} does not exist")
            root = self._extract(version.name, version.code_sha_256, version.code_bytes)
            layer_dirs.append(root / "python")
        return FunctionSpec(
            name=function.function_name,
            handler=function.handler,
            code_dir=code_dir,
            layer_dirs=layer_dirs,
            environment={k: str(v) for k, v in (function.environment_vars or {}).items()},
            timeout_s=float(function.timeout),
            memory_mb=int(function.memory_size),
            arn=function.function_arn,
        )
