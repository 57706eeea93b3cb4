"""The reconciler's AWS I/O: the upload listing and the pipeline's executions.

Like ``storage`` (whose error translation and botocore session it shares), this is a thin adapter:
the decisions are in ``reconcile``, which reaches these classes through its protocols.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from botocore.config import Config
from botocore.exceptions import ClientError

from pipeline.reconcile import Upload
from pipeline.storage import client, translated

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_stepfunctions import SFNClient

_CONFIG: Final = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class UploadListing:
    """Objects under the upload prefix, with their ETags and ages."""

    def __init__(self, client: S3Client) -> None:
        self.client = client

    @classmethod
    def create(cls) -> UploadListing:
        return cls(client("s3", _CONFIG))

    def uploads(self, bucket: str, prefix: str) -> Iterator[Upload]:
        with translated(f"LIST s3://{bucket}/{prefix}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield Upload.from_listing(item)


class PipelineExecutions:
    """Executions of the image pipeline's state machine."""

    def __init__(self, client: SFNClient, state_machine_arn: str) -> None:
        self.client = client
        self.state_machine_arn = state_machine_arn

    @classmethod
    def create(cls, state_machine_arn: str) -> PipelineExecutions:
        return cls(client("stepfunctions", _CONFIG), state_machine_arn)

    def running_inputs(self) -> Iterator[Any]:
        pages = self.client.get_paginator("list_executions").paginate(
            stateMachineArn=self.state_machine_arn, statusFilter="RUNNING"
        )
        try:
            with translated(f"LIST RUNNING executions of {self.state_machine_arn}"):
                for page in pages:
                    for summary in page["executions"]:
                        document = self._input_of(summary["executionArn"])
                        if document is not None:
                            yield document
        except ClientError as exc:
            if _code(exc) != "ValidationException":
                raise
            # EXPRESS workflows cannot be listed. They run at most five minutes, which the grace
            # period (RECONCILE_MIN_AGE_SECONDS, 300 by default) already waits for.
            from pipeline.observability import logger

            logger.warning("running executions cannot be listed", extra={"error": str(exc)})

    def _input_of(self, execution_arn: str) -> Any | None:
        try:
            described = self.client.describe_execution(executionArn=execution_arn)
        except ClientError as exc:
            if _code(exc) == "ExecutionDoesNotExist":
                return None  # gone between the listing and now
            raise
        return json.loads(described.get("input") or "null")

    def start(self, name: str, document: Mapping[str, Any]) -> bool:
        try:
            with translated(f"START {name} of {self.state_machine_arn}"):
                self.client.start_execution(
                    stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(document, ensure_ascii=False)
                )
        except ClientError as exc:
            if _code(exc) == "ExecutionAlreadyExists":
                return False
            raise
        return True
