"""The embedded local cloud: moto (server mode, executing state machines) plus local Lambda workers.

``LocalCloud`` starts moto's server on loopback, installs the patches in ``moto_patches``,
deploys template.yaml as a CloudFormation stack (packaged and transformed offline by
``sam``) and runs each Lambda function in warm awslambdaric workers. Clients talk to it
with ``endpoint_url=cloud.endpoint``, exactly as they would talk to AWS.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, cast

import boto3
from botocore.config import Config

from localcloud import mock_config as mock_configuration
from localcloud import moto_patches, sam
from localcloud.lambda_runtime import FunctionSpec, Invocation, PoolClosedError, WorkerPool

ACCOUNT: Final = "123456789012"
REGION: Final = "us-east-1"
STACK: Final = "imgpipe"
ARTIFACTS_BUCKET: Final = "imgpipe-artifacts"
_CLIENT_CONFIG: Final = Config(
    retries={"mode": "standard", "max_attempts": 3}, read_timeout=900, s3={"payload_signing_enabled": False}
)
#: How long stop() lets the functions running for aborted executions finish before it stops the workers.
STOP_GRACE_S: Final = 5.0
#: How long stop() waits for the executions it aborted to end.
STOP_TIMEOUT_S: Final = 30.0
#: The error of an invocation that arrives while the local cloud stops (no Retry of the template names it).
STOPPING_ERROR: Final = "LocalCloud.Stopping"


#: The SDKs' flexible checksums (a CRC32 over every S3 body, sent and verified) guard data crossing a
#: network; between processes on one machine they only cost CPU, about 5% of the local throughput with
#: 10 MB intermediates. The local cloud asks the SDKs for them only where an API requires them, unless
#: these variables are set (``when_supported`` is the SDKs' default, as on AWS).
CHECKSUM_SETTINGS: Final = ("AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION")


ChecksumMode = Literal["when_supported", "when_required"]


def local_checksums() -> dict[str, ChecksumMode]:
    found: dict[str, ChecksumMode] = {}
    for name in CHECKSUM_SETTINGS:
        value = os.environ.get(name, "when_required")
        if value not in ("when_supported", "when_required"):
            raise ValueError(f"{name}={value!r}: the SDKs take when_supported or when_required")
        found[name] = cast(ChecksumMode, value)
    return found


def aws_client(service: str, endpoint: str) -> Any:
    """A boto3 client for the local cloud at ``endpoint`` (fake credentials, fixed region, ``local_checksums``)."""
    checksums = local_checksums()
    make: Any = boto3.client
    return make(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=_CLIENT_CONFIG.merge(
            Config(
                request_checksum_calculation=checksums[CHECKSUM_SETTINGS[0]],
                response_checksum_validation=checksums[CHECKSUM_SETTINGS[1]],
            )
        ),
    )


class LocalCloudError(RuntimeError):
    """The local cloud could not start or deploy."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Stack:
    """What a deployment produced: the stack's outputs and its physical resources."""

    name: str
    outputs: dict[str, str]
    resources: dict[str, str]

    @property
    def source_bucket(self) -> str:
        return self.outputs["SourceBucketName"]

    @property
    def destination_bucket(self) -> str:
        return self.outputs["DestinationBucketName"]

    @property
    def staging_bucket(self) -> str:
        return self.outputs["StagingBucketName"]

    @property
    def upload_prefix(self) -> str:
        return self.outputs.get("UploadPrefix", "")

    @property
    def topic_arn(self) -> str:
        return self.outputs["TopicArn"]

    @property
    def state_machine_arn(self) -> str:
        return self.outputs["StateMachineArn"]

    @property
    def dead_letter_queue_url(self) -> str:
        return self.outputs["DeadLetterQueueUrl"]


@dataclass
class DeliveryFailure:
    rule: str
    target: str
    error: str
    attempts: int
    dead_lettered: bool


@dataclass
class Stats:
    """What the runtime saw: REPORT lines per function, event deliveries."""

    reports: list[tuple[str, Invocation]] = field(default_factory=list)
    delivery_failures: list[DeliveryFailure] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class LocalCloud:
    """A running local cloud. Use as a context manager; ``deploy()`` the template once started.

    moto keeps its state per process, so one process runs one local cloud at a time.
    """

    _running: LocalCloud | None = None
    _running_lock = threading.Lock()

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        concurrency: int | None = None,
        report: Callable[[str], None] | None = None,
        log_sink: Callable[[str, str], None] | None = None,
        event_retry_base_s: float = 1.0,
        time_scale: float = 1.0,
        mock_config: Path | None = None,
        max_running: int | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.concurrency = concurrency or os.cpu_count() or 2
        self._report = report
        self._log_sink = log_sink
        self._event_retry_base_s = event_retry_base_s
        self.time_scale = time_scale
        #: Executions started by events at once (0: no limit); see _wait_for_capacity.
        self._max_running = max_running if max_running is not None else 2 * self.concurrency
        #: Set once stop() begins: no event is delivered, no execution started and no worker pool made after it.
        self._stopping = threading.Event()
        #: Where this cloud's threads start in moto's list of the interpreter's threads (it only grows).
        self._threads_from = 0
        # Like Step Functions Local, SFN_MOCK_CONFIG names the mock configuration file.
        mock_path = mock_config or (Path(os.environ["SFN_MOCK_CONFIG"]) if os.environ.get("SFN_MOCK_CONFIG") else None)
        self.mock_config = mock_configuration.load(mock_path) if mock_path else None
        self._server: Any = None
        self._pools: dict[str, WorkerPool] = {}
        self._pools_lock = threading.Lock()
        self._faults: list[tuple[str, str]] = []
        self._retired: list[WorkerPool] = []
        self._workdir = Path(tempfile.mkdtemp(prefix="imgpipe-cloud-"))
        self._deliveries = ThreadPoolExecutor(max_workers=8, thread_name_prefix="eventbridge")
        self._saved_env: dict[str, str | None] = {}
        self.stats = Stats()
        self.stack: Stack | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def urls(self) -> dict[str, str]:
        """Every URL the running server offers, by name: the service endpoint and moto's dashboard."""
        found = {"endpoint": self.endpoint}
        dashboard = f"{self.endpoint}/moto-api/"
        try:
            with urllib.request.urlopen(dashboard, timeout=5) as reply:  # noqa: S310 - our own http endpoint
                if reply.status == 200:
                    found["dashboard"] = dashboard
        except OSError:
            pass
        return found

    def start(self) -> LocalCloud:
        from moto.server import ThreadedMotoServer
        from moto.stepfunctions.parser.utils import TMP_THREADS

        with LocalCloud._running_lock:
            if LocalCloud._running is not None:
                raise LocalCloudError(
                    f"a local cloud is already running in this process on {LocalCloud._running.endpoint}"
                )
            LocalCloud._running = self

        # The state machine interpreter's task clients find the server through MOTO_PORT. Objects up to
        # 64 MiB (the largest upload the template accepts is 50 MiB) stay in memory: moto's default
        # spools anything above 5 MiB, such as every 2048 px intermediate, to a temporary file.
        for name, value in (
            ("MOTO_PORT", str(self.port)),
            ("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(64 * 1024 * 1024)),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", "local"),
            ("AWS_SECRET_ACCESS_KEY", "local"),
        ):
            self._saved_env[name] = os.environ.get(name)
            os.environ[name] = value
        moto_patches.apply(self, time_scale=self.time_scale, mock_config=self.mock_config)
        self._threads_from = len(TMP_THREADS)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        try:
            self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
            self._server.start()
        except OSError as exc:
            self.stop()
            raise LocalCloudError(f"cannot listen on {self.endpoint}: {exc}") from exc
        # A fresh cloud: nothing from an earlier one in this process survives (moto's public reset API).
        reset = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")  # noqa: S310 - our own http endpoint
        with urllib.request.urlopen(reset) as reply:  # noqa: S310 - idem
            reply.read()
        return self

    def stop(self) -> None:
        """Stop delivering events, starting executions and making workers; abort the running executions
        (each ends after the state it is in; its functions get STOP_GRACE_S to finish), stop the workers and
        the server, and wait for every execution thread to end: nothing of the cloud runs after this."""
        self._stopping.set()
        self._deliveries.shutdown(wait=True, cancel_futures=True)
        moto_patches.end_waits()  # an aborted execution's task that failed does not sleep out its Retry interval
        self._end_executions(time.monotonic() + STOP_GRACE_S, report=False)
        with self._pools_lock:
            pools, self._pools = [*self._pools.values(), *self._retired], {}
            self._retired = []
        for pool in pools:
            pool.close()  # invocations in flight end; later ones are answered STOPPING_ERROR
        deadline = time.monotonic() + STOP_TIMEOUT_S
        self._end_executions(deadline)
        if self._server is not None:
            self._server.stop()
            self._server = None
        self._end_executions(deadline)  # any started by a request that arrived meanwhile
        moto_patches.remove()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(self._workdir, ignore_errors=True)
        with LocalCloud._running_lock:
            if LocalCloud._running is self:
                LocalCloud._running = None

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, service: str) -> Any:
        return aws_client(service, self.endpoint)

    # -- deploy -----------------------------------------------------------------------------

    def deploy(self, parameters: Mapping[str, str] | None = None, template_path: Path = sam.TEMPLATE) -> Stack:
        """Package, transform and create template.yaml as a stack; like ``sam deploy``."""
        template = sam.load(template_path)
        known = set(template.get("Parameters", {}))
        unknown = sorted(set(parameters or {}) - known)
        if unknown:
            raise LocalCloudError(
                f"unknown parameter(s): {', '.join(unknown)}; the template has {', '.join(sorted(known))}"
            )
        packaged, artifacts = sam.package(template, ARTIFACTS_BUCKET, base=template_path.parent)
        s3 = self.client("s3")
        s3.create_bucket(Bucket=ARTIFACTS_BUCKET)
        for artifact in artifacts:
            s3.put_object(Bucket=ARTIFACTS_BUCKET, Key=artifact.key, Body=artifact.body)
        cfn_template = sam.to_cloudformation(packaged, parameters, region=REGION)
        cfn = self.client("cloudformation")
        cfn.create_stack(
            StackName=STACK,
            TemplateBody=json.dumps(cfn_template),
            Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in (parameters or {}).items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        description = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
        if description["StackStatus"] != "CREATE_COMPLETE":
            raise LocalCloudError(
                f"stack {STACK} is {description['StackStatus']}: {description.get('StackStatusReason')}"
            )
        outputs = {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])}
        resources = {
            r.get("LogicalResourceId", ""): r.get("PhysicalResourceId", "")
            for r in cfn.describe_stack_resources(StackName=STACK)["StackResources"]
        }
        self.stack = Stack(STACK, outputs, resources)
        return self.stack

    # -- moto_patches.Runtime ----------------------------------------------------------------

    def invoke(self, function: Any, payload: bytes) -> tuple[bytes, str | None]:
        try:
            pool = self._pool_for(function)
            invocation = pool.invoke(payload, fault=self._take_fault(function.function_name))
        except PoolClosedError:
            if not self._stopping.is_set():
                raise
            error = {
                "errorType": STOPPING_ERROR,
                "errorMessage": f"{function.function_name}: the local cloud is stopping",
            }
            return json.dumps(error).encode(), STOPPING_ERROR
        return invocation.payload, invocation.error_type

    # -- fault injection -------------------------------------------------------------------------

    def inject_fault(self, fault: moto_patches.Fault) -> moto_patches.Fault:
        """Make the local services fail the next matching requests (see moto_patches.Fault)."""
        return moto_patches.inject(fault)

    def crash_next_invocations(self, function_name_part: str, count: int = 1) -> None:
        """Kill the worker process during the next ``count`` invocations of functions whose name contains this."""
        self._arm(function_name_part, "kill", count)

    def hang_next_invocations(self, function_name_part: str, count: int = 1) -> None:
        """Stop the worker process during the next ``count`` invocations, so they run into their timeout."""
        self._arm(function_name_part, "hang", count)

    def _arm(self, function_name_part: str, fault: str, count: int) -> None:
        with self._pools_lock:
            self._faults.extend([(function_name_part, fault)] * count)

    def _take_fault(self, function_name: str) -> str | None:
        with self._pools_lock:
            for index, (part, fault) in enumerate(self._faults):
                if part in function_name:
                    del self._faults[index]
                    return fault
        return None

    def deliver(self, rule: Any, target: dict[str, Any], event: dict[str, Any]) -> None:
        """Queue the event for the target; once the cloud stops, events are dropped (none will be delivered)."""
        if self._stopping.is_set():
            return
        try:
            self._deliveries.submit(self._deliver, rule, target, event)
        except RuntimeError:  # the executor shut down since the check: the cloud is stopping
            if not self._stopping.is_set():
                raise

    # -- Lambda ---------------------------------------------------------------------------------

    def _pool_for(self, function: Any) -> WorkerPool:
        # A new configuration gets new execution environments, as on AWS.
        config = json.dumps(
            [function.code_sha_256, function.timeout, function.memory_size, function.environment_vars, function.layers],
            sort_keys=True,
            default=str,
        )
        key = f"{function.function_arn}@{config}"
        with self._pools_lock:
            if self._stopping.is_set():
                raise PoolClosedError(f"function {function.function_name}: the local cloud is stopping")
            pool = self._pools.get(key)
            stale = [k for k in self._pools if k.startswith(f"{function.function_arn}@") and k != key]
            for old_key in stale:
                self._retired.append(self._pools.pop(old_key))
            if pool is None:
                pool = WorkerPool(
                    self._spec_for(function),
                    max_workers=self.concurrency,
                    base_env=self._worker_env(),
                    python=sys.executable,
                    on_report=functools.partial(self._on_report, function.function_name),
                    log_sink=self._log_sink,
                )
                self._pools[key] = pool
            return pool

    def _worker_env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            **local_checksums(),
        }

    def _extract(self, name: str, sha: str, body: bytes) -> Path:
        target = self._workdir / f"{name}-{sha[:16]}"
        if not target.exists():
            partial = target.with_suffix(".partial")
            shutil.rmtree(partial, ignore_errors=True)
            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                archive.extractall(partial)
            partial.rename(target)
        return target

    def _spec_for(self, function: Any) -> FunctionSpec:
        from moto.awslambda.models import lambda_backends

        backend = lambda_backends[ACCOUNT][REGION]
        code_dir = self._extract(function.function_name, function.code_sha_256, function.code_bytes)
        layer_dirs: list[Path] = []
        for layer in function.layers:
            version = backend.layers_versions_by_arn(layer["Arn"])
            if version is None:
                raise LocalCloudError(f"{function.function_name}: layer {layer['Arn']} does not exist")
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

    def _on_report(self, function_name: str, invocation: Invocation) -> None:
        with self.stats.lock:
            self.stats.reports.append((function_name, invocation))
        if self._report is not None:
            self._report(f"[{function_name}] {invocation.report_line}")

    # -- EventBridge → Step Functions ----------------------------------------------------------

    def _deliver(self, rule: Any, target: dict[str, Any], event: dict[str, Any]) -> None:
        """Start the target state machine, honouring the target's RetryPolicy and DeadLetterConfig."""
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        policy = target.get("RetryPolicy") or {}
        max_retries = int(policy.get("MaximumRetryAttempts", 185))
        max_age = float(policy.get("MaximumEventAgeInSeconds", 86400))
        started = time.monotonic()
        payload = json.dumps(_target_input(target, event))
        attempts = 0
        error = ""
        while True:
            attempts += 1
            try:
                arn = target["Arn"]
                backend = stepfunctions_parser_backends[arn.split(":")[4]][arn.split(":")[3]]
                self._wait_for_capacity(backend, arn)
                if self._stopping.is_set():
                    return  # dropped: the cloud stops
                # EventBridge names the executions it starts with a UUID.
                backend.start_execution(arn, str(uuid.uuid4()), execution_input=payload)
                return
            except Exception as exc:  # noqa: BLE001 - every failure goes to retry, then to the DLQ
                error = f"{type(exc).__name__}: {exc}"
            delay = min(self._event_retry_base_s * 2 ** (attempts - 1), 60.0)
            # The event's age is counted in the cloud's (scaled) time, like its sleeps.
            if attempts > max_retries or (time.monotonic() - started) / self.time_scale + delay > max_age:
                break
            if self._stopping.wait(delay * self.time_scale):
                return  # dropped: the cloud stops
        self._dead_letter(rule, target, payload, error, attempts)

    def _wait_for_capacity(self, backend: Any, arn: str) -> None:
        """Back-pressure: hold a delivery while the machine's workers are saturated.

        On AWS a burst of uploads meets a thousand concurrent Lambda environments; here it meets a
        worker pool per function sized to the cores. Starting every execution at once would queue
        their tasks behind each other until their TimeoutSeconds (measured from the task's start)
        expire: an artefact of the machine, not of the workflow. So deliveries wait while more than
        ``max_running`` executions run; the delay shows up as event-to-start latency instead.
        """
        while self._max_running and not self._stopping.is_set():
            try:
                machine = backend.describe_state_machine(arn)
            except Exception:  # noqa: BLE001 - a missing target fails in start_execution, with its own error
                return
            running = sum(1 for e in list(machine.executions) if getattr(e, "exec_status", None) == "RUNNING")
            if running < self._max_running:
                return
            time.sleep(0.02)

    def _running_executions(self) -> list[Any]:
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        running: list[Any] = []
        for regions in list(stepfunctions_parser_backends.values()):
            for backend in list(regions.values()):
                for machine in list(backend.state_machines):
                    executions: list[Any] = list(machine.executions)  # the executing backend's, with exec_status
                    running += [e for e in executions if getattr(e.exec_status, "value", e.exec_status) == "RUNNING"]
        return running

    def _abort_executions(self) -> int:
        """Abort every running execution (it ends after the state it is in); how many still run."""
        running = self._running_executions()
        for execution in running:
            worker = execution.exec_worker
            if worker is not None and getattr(worker, "env", None) is not None:  # env: made on the worker's thread
                worker.stop(stop_date=datetime.now(UTC), error=STOPPING_ERROR, cause="the local cloud stopped")
        return len(running)

    def _end_executions(self, deadline: float, *, report: bool = True) -> bool:
        """Abort the running executions and wait, until ``deadline``, for them and their threads to end.
        Whether they did (if not and ``report``, a line on stderr says so)."""
        from moto.stepfunctions.parser.utils import TMP_THREADS

        while self._abort_executions() or any(thread.is_alive() for thread in TMP_THREADS[self._threads_from :]):
            if time.monotonic() > deadline:
                if report:
                    print("local cloud: executions still running after stop; abandoned", file=sys.stderr)
                return False
            time.sleep(0.02)
        return True

    def _dead_letter(self, rule: Any, target: dict[str, Any], payload: str, error: str, attempts: int) -> None:
        dlq_arn = (target.get("DeadLetterConfig") or {}).get("Arn")
        failure = DeliveryFailure(rule.arn, target["Arn"], error, attempts, dead_lettered=bool(dlq_arn))
        with self.stats.lock:
            self.stats.delivery_failures.append(failure)
        if not dlq_arn:
            print(f"EventBridge: event for {target['Arn']} dropped after {attempts} attempts: {error}", file=sys.stderr)
            return
        sqs = self.client("sqs")
        queue_url = sqs.get_queue_url(QueueName=dlq_arn.split(":")[-1])["QueueUrl"]
        sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=payload,
            MessageAttributes={
                "RULE_ARN": {"DataType": "String", "StringValue": rule.arn},
                "TARGET_ARN": {"DataType": "String", "StringValue": target["Arn"]},
                "ERROR_CODE": {"DataType": "String", "StringValue": error.split(":", 1)[0]},
                "ERROR_MESSAGE": {"DataType": "String", "StringValue": error[:1000] or "unknown"},
            },
        )

    # -- helpers for callers -------------------------------------------------------------------

    def wait_for_execution(self, arn: str, timeout_s: float = 300.0) -> dict[str, Any]:
        """Wait until the execution has ended; what DescribeExecution then says of it.

        The execution runs in this process, so its status is watched here: polling DescribeExecution over
        HTTP would take CPU (and the GIL) from the very interpreter it waits for.
        """
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout_s
        parts = arn.split(":")
        try:
            execution: Any = stepfunctions_parser_backends[parts[4]][parts[3]].describe_execution(arn)
        except Exception:  # noqa: BLE001 - not one of ours: DescribeExecution answers with the service's error
            return cast(dict[str, Any], sfn.describe_execution(executionArn=arn))
        while getattr(execution.exec_status, "value", "RUNNING") == "RUNNING":
            if time.monotonic() > deadline:
                raise TimeoutError(f"{arn} still RUNNING after {timeout_s} s")
            time.sleep(0.005)
        return cast(dict[str, Any], sfn.describe_execution(executionArn=arn))


def _target_input(target: Mapping[str, Any], event: dict[str, Any]) -> Any:
    """What EventBridge sends a target: Input, InputPath or InputTransformer, else the event."""
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        value: Any = event
        for part in str(target["InputPath"]).removeprefix("$").strip(".").split("."):
            if part:
                value = value[part]
        return value
    transformer = target.get("InputTransformer")
    if transformer:
        from moto.events.utils import EventTemplateParser

        return EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event=cast(Any, event),
        )
    return event


@contextmanager
def running(**kwargs: Any) -> Iterator[LocalCloud]:
    cloud = LocalCloud(**kwargs)
    with cloud:
        yield cloud
