"""Where the console's data comes from: a stack's outputs and the AWS clients that read it.

On the local cloud the clients talk to its endpoint with the local cloud's fake credentials; against
a deployed stack they take the user's own credentials from boto3's default chain (environment,
shared config and SSO, instance or container role), in the region asked for or the configured one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from localcloud.cloud import StackOutputs

#: The outputs the console reads. ApiUrl, TopicArn and DeadLetterQueueUrl are optional: their pages say
#: what is missing. StateMachineArn and the two buckets are required.
OUTPUT_KEYS: Final = (
    "StateMachineArn",
    "ApiUrl",
    "SourceBucketName",
    "DestinationBucketName",
    "TopicArn",
    "DeadLetterQueueUrl",
)
REQUIRED: Final = ("StateMachineArn", "SourceBucketName", "DestinationBucketName")
SERVICES: Final = ("stepfunctions", "s3", "sqs", "sns")
_CONFIG: Final = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10, read_timeout=60)


class ConsoleError(RuntimeError):
    """The console cannot reach the stack it was asked for; the message says why and what to do."""


@dataclass
class Backend(StackOutputs):
    """A stack as the console sees it: its outputs and one client per service (boto3 clients are
    thread-safe once made; they are all made here, since making them is not)."""

    stack_name: str
    region: str
    outputs: dict[str, str]
    local: bool
    endpoint: str | None = None
    clients: dict[str, Any] = field(default_factory=dict)

    @property
    def sfn(self) -> Any:
        return self.clients["stepfunctions"]

    @property
    def s3(self) -> Any:
        return self.clients["s3"]

    @property
    def sqs(self) -> Any:
        return self.clients["sqs"]

    @property
    def sns(self) -> Any:
        return self.clients["sns"]


def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    """The stack's outputs by key; ConsoleError when the stack is missing or lacks a required one."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        raise ConsoleError(f"stack {stack_name}: {exc.response['Error'].get('Message', exc)}") from exc
    except BotoCoreError as exc:  # no credentials, no region, no connection
        raise ConsoleError(f"stack {stack_name}: {exc}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    missing = [key for key in REQUIRED if key not in outputs]
    if missing:
        raise ConsoleError(
            f"stack {stack_name} ({stacks[0].get('StackStatus')}) has no output {', '.join(missing)}: "
            "is it this project's template, and finished deploying?"
        )
    return outputs


def _backend(
    stack_name: str, region: str, make: Callable[[str], Any], *, local: bool, endpoint: str | None = None
) -> Backend:
    outputs = stack_outputs(make("cloudformation"), stack_name)
    return Backend(stack_name, region, outputs, local, endpoint, {name: make(name) for name in SERVICES})


def local_backend(endpoint: str, stack_name: str = "imgpipe") -> Backend:
    """The stack the local cloud at ``endpoint`` deployed (``imgpipe serve``, in this process or not)."""
    from localcloud.cloud import REGION, aws_client

    return _backend(stack_name, REGION, lambda service: aws_client(service, endpoint), local=True, endpoint=endpoint)


def deployed_backend(stack_name: str, region: str | None = None) -> Backend:
    """A stack deployed on AWS, read with the user's own credentials (boto3's default chain)."""
    session = boto3.session.Session(region_name=region)
    if not session.region_name:
        raise ConsoleError("no region: pass --region, or set AWS_REGION or a region in the AWS config")
    if session.get_credentials() is None:
        raise ConsoleError("no AWS credentials found (boto3's default chain: environment, ~/.aws, SSO, role)")
    found_region = str(session.region_name)
    make: Any = session.client
    return _backend(stack_name, found_region, lambda service: make(service, config=_CONFIG), local=False)
