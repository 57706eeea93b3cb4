"""The only module that talks to AWS: S3 reads and writes, SNS publishes.

botocore errors are translated into the pipeline's error names so that the state
machine can tell a retryable failure (TransientError) from a permanent one.

Clients come straight from botocore, all from one session per process (``session()``):
importing boto3 would add s3transfer and boto3's resource layer to every cold start for
nothing the pipeline calls, and a second session would load the endpoint data again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any, Final

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pipeline.errors import SourceChanged, SourceMissing, TransientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient

#: S3 payloads are not SHA-256 signed: over HTTPS botocore already leaves PutObject bodies unsigned (TLS
#: and the CRC32 checksum protect them); the setting extends that to every request and to plain-HTTP
#: endpoints such as the local cloud, where hashing a 10 MB intermediate cost more than sending it.
_CONFIG: Final = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=30,
    s3={"payload_signing_enabled": False},
)
_TRANSIENT_CODES: Final = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "500",
        "502",
        "503",
        "504",
    }
)
_MISSING_CODES: Final = frozenset({"NoSuchKey", "404", "NotFound"})
_CHANGED_CODES: Final = frozenset({"PreconditionFailed", "412"})


@cache
def session() -> botocore.session.Session:
    """The process's botocore session: one credential chain and one model loader for all its clients."""
    return botocore.session.get_session()


def client(service: str, config: Config | None = _CONFIG) -> Any:
    """A client of the shared session, configured as boto3.client(service, config=config) would be."""
    return session().create_client(service, config=config)


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Re-raise AWS failures as pipeline errors, naming what was being done."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _MISSING_CODES:
            raise SourceMissing(f"{what}: the object does not exist") from exc
        if code in _CHANGED_CODES:
            raise SourceChanged(f"{what}: the object was replaced since it was validated") from exc
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            raise TransientError(f"{what}: {code or status}") from exc
        raise
    except BotoCoreError as exc:  # connection errors, timeouts after botocore's own retries
        raise TransientError(f"{what}: {exc}") from exc


class S3Store:
    def __init__(self, client: S3Client) -> None:
        self.client = client

    @classmethod
    def create(cls) -> S3Store:
        return cls(client("s3"))

    def head(self, bucket: str, key: str) -> dict[str, Any]:
        with translated(f"HEAD s3://{bucket}/{key}"):
            return dict(self.client.head_object(Bucket=bucket, Key=key))

    def read_range(self, bucket: str, key: str, etag: str, byte_range: str) -> bytes:
        with translated(f"GET s3://{bucket}/{key} ({byte_range})"):
            return self.client.get_object(Bucket=bucket, Key=key, IfMatch=etag, Range=byte_range)["Body"].read()

    def read(self, bucket: str, key: str, etag: str | None = None) -> bytes:
        with translated(f"GET s3://{bucket}/{key}"):
            if etag:
                return self.client.get_object(Bucket=bucket, Key=key, IfMatch=etag)["Body"].read()
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def read_json(self, bucket: str, key: str) -> Any | None:
        """The JSON document at a key, or None when there is none."""
        try:
            return json.loads(self.read(bucket, key))
        except SourceMissing:
            return None

    def write(self, bucket: str, key: str, body: bytes, content_type: str, **extra: Any) -> None:
        with translated(f"PUT s3://{bucket}/{key}"):
            self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, **extra)

    def copy(self, source_bucket: str, source_key: str, bucket: str, key: str, content_type: str, **extra: Any) -> None:
        with translated(f"COPY s3://{source_bucket}/{source_key} to s3://{bucket}/{key}"):
            self.client.copy_object(
                CopySource={"Bucket": source_bucket, "Key": source_key},
                Bucket=bucket,
                Key=key,
                ContentType=content_type,
                MetadataDirective="REPLACE",
                **extra,
            )

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        with translated(f"LIST s3://{bucket}/{prefix}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    def delete(self, bucket: str, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            with translated(f"DELETE {len(batch)} objects in s3://{bucket}"):
                response = self.client.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                )
            if errors := response.get("Errors"):
                first = errors[0]
                raise TransientError(
                    f"DELETE s3://{bucket}/{first.get('Key')}: {first.get('Code')} ({len(errors)} failed)"
                )


class Topic:
    def __init__(self, client: SNSClient, arn: str) -> None:
        self.client = client
        self.arn = arn

    @classmethod
    def create(cls, arn: str) -> Topic:
        return cls(client("sns"), arn)

    def publish(self, message: dict[str, Any], attributes: dict[str, Any], subject: str) -> str:
        with translated(f"PUBLISH {self.arn}"):
            response = self.client.publish(
                TopicArn=self.arn,
                Message=json.dumps(message, ensure_ascii=False),
                Subject=subject[:100],
                MessageAttributes=attributes,
            )
        return response["MessageId"]
