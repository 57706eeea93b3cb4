"""The embedded local cloud: moto's server (executing state machines) with every emulated service in
``localcloud.services``, and template.yaml deployed into it.

``LocalCloud`` is a facade: it starts the server (applying the services' patches), deploys the template
as a CloudFormation stack (packaged and transformed offline by ``sam``) and hands out clients. Clients
talk to it with ``endpoint_url=cloud.endpoint``, exactly as they would talk to AWS.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, cast

import boto3
from botocore.config import Config

from localcloud import emulator, sam
from localcloud.faults import FAULTS, Fault
from localcloud.services.apigateway import HttpApi
from localcloud.services.eventbridge import Delivery, DeliveryFailure, DeliveryOptions
from localcloud.services.lambda_.service import STOPPING_ERROR, Functions, WorkerOptions
from localcloud.services.lambda_.worker import Invocation
from localcloud.services.stepfunctions import executions, interpreter
from localcloud.services.stepfunctions import mock_config as mock_configuration

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


class StackOutputs:
    """What a deployed template's outputs name (a stack here, or one on AWS: ``outputs`` is its Outputs)."""

    outputs: dict[str, str]

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

    @property
    def api_url(self) -> str | None:
        url = self.outputs.get("ApiUrl")
        return url.rstrip("/") if url else None


@dataclass(frozen=True)
class Stack(StackOutputs):
    """What a deployment produced: the stack's outputs and its physical resources."""

    name: str
    outputs: dict[str, str]
    resources: dict[str, str]


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
        api_port: int | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port()
        #: Where the template's HTTP API is served (a free port by default).
        self.api_port = api_port
        #: The template's HTTP APIs, by logical id, once deployed.
        self.apis: dict[str, HttpApi] = {}
        self.concurrency = concurrency or os.cpu_count() or 2
        self.time_scale = time_scale
        self._report = report
        # Like Step Functions Local, SFN_MOCK_CONFIG names the mock configuration file.
        mock_path = mock_config or (Path(os.environ["SFN_MOCK_CONFIG"]) if os.environ.get("SFN_MOCK_CONFIG") else None)
        self.mock_config = mock_configuration.load(mock_path) if mock_path else None
        self.stats = Stats()
        self.stack: Stack | None = None
        #: Set once stop() begins: no event is delivered, no execution started and no worker pool made after it.
        self._stopping = threading.Event()
        self._workdir = Path(tempfile.mkdtemp(prefix="imgpipe-cloud-"))
        self._functions = Functions(
            WorkerOptions(self.concurrency, self._worker_env(), self._workdir),
            stopping=self._stopping,
            on_report=self._on_report,
            log_sink=log_sink,
        )
        # Executions started by events at once (0: no limit): see Delivery._wait_for_capacity.
        running = max_running if max_running is not None else 2 * self.concurrency
        self._delivery = Delivery(
            DeliveryOptions(retry_base_s=event_retry_base_s, time_scale=time_scale, max_running=running),
            client=self.client,
            on_failure=self._on_delivery_failure,
            stopping=self._stopping,
        )
        self._server: Any = None
        self._threads_from = 0  # where this cloud's threads start in moto's list of the interpreter's threads
        self._saved_env: dict[str, str | None] = {}

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

        with LocalCloud._running_lock:
            if LocalCloud._running is not None:
                raise LocalCloudError(
                    f"a local cloud is already running in this process on {LocalCloud._running.endpoint}"
                )
            LocalCloud._running = self
        self._set_environment()
        emulator.apply(
            invoker=self._functions, deliverer=self._delivery, time_scale=self.time_scale, mock_config=self.mock_config
        )
        self._threads_from = executions.threads_started()
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

    def _set_environment(self) -> None:
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

    def stop(self) -> None:
        """Stop delivering events, starting executions and making workers; abort the running executions
        (each ends after the state it is in; its functions get STOP_GRACE_S to finish), stop the workers and
        the server, and wait for every execution thread to end: nothing of the cloud runs after this."""
        self._stopping.set()
        for api in self.apis.values():
            api.stop()
        self.apis = {}
        self._delivery.close()
        interpreter.end_waits()  # an aborted execution's task that failed does not sleep out its Retry interval
        executions.end_all(STOPPING_ERROR, self._threads_from, time.monotonic() + STOP_GRACE_S, report=False)
        self._functions.close()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        executions.end_all(STOPPING_ERROR, self._threads_from, deadline)
        if self._server is not None:
            self._server.stop()
            self._server = None
        executions.end_all(STOPPING_ERROR, self._threads_from, deadline)  # any started by a request meanwhile
        emulator.remove()
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
        self._serve_apis(cfn_template, description["StackId"])
        description = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])}
        resources = {
            r.get("LogicalResourceId", ""): r.get("PhysicalResourceId", "")
            for r in cfn.describe_stack_resources(StackName=STACK)["StackResources"]
        }
        self.stack = Stack(STACK, outputs, resources)
        return self.stack

    @property
    def api_url(self) -> str | None:
        """The URL of the template's HTTP API (the first, when it has several), once deployed."""
        return next(iter(self.apis.values())).url if self.apis else None

    def _serve_apis(self, cfn_template: Mapping[str, Any], stack_id: str) -> None:
        """Serve every AWS::ApiGatewayV2::Api of the stack (moto does not model them): its OpenAPI body
        and its stage's route settings, with the stack's own values resolved by moto's CloudFormation."""
        from moto.awslambda.models import lambda_backends
        from moto.cloudformation.models import cloudformation_backends
        from moto.cloudformation.parsing import clean_json

        resource_map = cloudformation_backends[ACCOUNT][REGION].stacks[stack_id].resource_map
        functions = lambda_backends[ACCOUNT][REGION]

        def invoke(arn: str, payload: bytes) -> tuple[bytes, str | None]:
            return self._functions.invoke(functions.get_function(arn), payload)

        resources = cfn_template.get("Resources", {})
        for name, resource in resources.items():
            if resource.get("Type") != "AWS::ApiGatewayV2::Api":
                continue
            body = _present(clean_json(copy.deepcopy(resource["Properties"]["Body"]), resource_map))
            stages = [
                r["Properties"]
                for r in resources.values()
                if r.get("Type") == "AWS::ApiGatewayV2::Stage" and r["Properties"].get("ApiId") == {"Ref": name}
            ]
            settings = _present(clean_json(copy.deepcopy(stages[0].get("DefaultRouteSettings", {})), resource_map))
            try:
                api = HttpApi(
                    body, invoke=invoke, route_settings=settings or None, api_id=name.lower(), account_id=ACCOUNT
                )
            except ValueError as exc:
                raise LocalCloudError(f"the HTTP API {name} cannot be served: {exc}") from exc
            port = self.api_port if self.api_port is not None and not self.apis else 0
            try:
                self.apis[name] = api.start(self.host, port)
            except OSError as exc:
                raise LocalCloudError(f"cannot serve the HTTP API {name} on {self.host}:{port}: {exc}") from exc
            # The stack's outputs name the API by its id (https://<id>.execute-api...), which moto cannot
            # resolve for a resource it does not model: here the API is where it is served.
            outputs = cloudformation_backends[ACCOUNT][REGION].stacks[stack_id].output_map
            for key in list(outputs):
                output = outputs[key]
                if output is not None and "${" + name + "}" in str(output.value):
                    output.value = api.url

    # -- faults and executions -----------------------------------------------------------------

    def inject_fault[F: Fault](self, fault: F) -> F:
        """Arm a fault (``localcloud.faults``): the next matching requests or invocations fail."""
        return FAULTS.arm(fault)

    def clear_faults(self) -> None:
        """Disarm every fault."""
        FAULTS.clear()

    def wait_for_execution(self, arn: str, timeout_s: float = 300.0) -> dict[str, Any]:
        """Wait until the execution has ended; what DescribeExecution then says of it."""
        sfn = self.client("stepfunctions")
        return executions.wait_until_ended(
            arn, timeout_s, lambda a: cast(dict[str, Any], sfn.describe_execution(executionArn=a))
        )

    # -- what the services report ------------------------------------------------------------------

    def _worker_env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            **local_checksums(),
        }

    def _on_report(self, function_name: str, invocation: Invocation) -> None:
        with self.stats.lock:
            self.stats.reports.append((function_name, invocation))
        if self._report is not None:
            self._report(f"[{function_name}] {invocation.report_line}")

    def _on_delivery_failure(self, failure: DeliveryFailure) -> None:
        with self.stats.lock:
            self.stats.delivery_failures.append(failure)


@contextmanager
def running(**kwargs: Any) -> Iterator[LocalCloud]:
    cloud = LocalCloud(**kwargs)
    with cloud:
        yield cloud


def _present(value: Any) -> Any:
    """``value`` without what ``Ref: AWS::NoValue`` left (moto's ``clean_json`` resolves it to None)."""
    if isinstance(value, dict):
        return {k: _present(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_present(v) for v in value if v is not None]
    return value
