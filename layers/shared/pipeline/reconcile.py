"""Reconciliation: which uploads need the pipeline started again. Decisions only, no AWS.

An upload's S3 event can be lost (a disabled rule, retries exhausted into the dead-letter queue,
an outage). The reconciler runs on a schedule and restarts the pipeline for every upload that

* has no manifest in the destination bucket, or a manifest written for another ETag (the object
  was replaced and the new version was never processed),
* has no RUNNING execution of the pipeline naming its key, and
* is older than a grace period (a fresh upload's own execution may not have started yet).

Each execution it starts is named after the content (bucket, key, ETag), so two runs of the
reconciler can never start two executions for the same content: the second StartExecution with
that name is either idempotent (same input, still running) or refused with ExecutionAlreadyExists,
which means an earlier run already started it (and, if the manifest is still missing, that
execution failed and published its failure: it is not retried forever).

The AWS side (listings, executions) lives in ``recovery_io``; here it is reached through the
small protocols below, so the decisions are tested with in-memory fakes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from pipeline import keys
from pipeline.settings import ReconcileSettings

#: Step Functions execution names: 1 to 80 characters, no whitespace, brackets, wildcards or controls.
MAX_NAME_LENGTH: Final = 80
VALID_NAME: Final = re.compile(r"^[0-9A-Za-z_-]{1,80}$")


# -- what the reconciler reads and does (implemented by recovery_io and by test fakes) ----------


@dataclass(frozen=True, slots=True)
class Upload:
    """One object under the upload prefix, as a listing shows it."""

    key: str
    etag: str
    last_modified: datetime

    @classmethod
    def from_listing(cls, item: Mapping[str, Any]) -> Upload:
        """An entry of ListObjectsV2's ``Contents``."""
        return cls(key=str(item["Key"]), etag=normal_etag(str(item["ETag"])), last_modified=item["LastModified"])


class UploadSource(Protocol):
    def uploads(self, bucket: str, prefix: str) -> Iterable[Upload]: ...


class ManifestStore(Protocol):
    def read_json(self, bucket: str, key: str) -> Any | None: ...


class Executions(Protocol):
    def running_inputs(self) -> Iterable[Any]:
        """The input documents of the pipeline's RUNNING executions."""
        ...

    def start(self, name: str, document: Mapping[str, Any]) -> bool:
        """Start an execution; False when an execution of that name already exists."""
        ...


@dataclass
class Counts:
    """What one reconciler run saw and did."""

    scanned: int = 0  # objects under the upload prefix (folder markers aside)
    recent: int = 0  # younger than the grace period: left to their own event
    missing: int = 0  # old enough, with no manifest for their current ETag
    running: int = 0  # of the missing: an execution naming the key is RUNNING
    started: int = 0  # of the missing: executions started by this run
    already_started: int = 0  # of the missing: an earlier run started this content (it ended without a manifest)


# -- decisions ------------------------------------------------------------------------------------


def normal_etag(etag: str) -> str:
    """S3 listings quote ETags; the manifest stores them bare (as the validate step records them)."""
    return etag.strip().strip('"')


def execution_name(bucket: str, key: str, etag: str) -> str:
    """A valid execution name that is the same for the same content, and only for it."""
    digest = hashlib.sha256(f"{bucket}\0{key}\0{normal_etag(etag)}".encode()).hexdigest()
    return digest[:MAX_NAME_LENGTH]


def execution_input(bucket: str, key: str) -> dict[str, str]:
    """The pipeline's manual input shape: the key verbatim."""
    return {"bucket": bucket, "key": key}


def keys_named_by(document: Any, bucket: str) -> set[str]:
    """The upload keys an execution input names, in either input shape of the pipeline.

    An S3 event's key may be form-urlencoded (see the validate step), so both its readings count.
    """
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return set()
    if not isinstance(document, Mapping):
        return set()
    detail = document.get("detail")
    if isinstance(detail, Mapping):
        named_bucket = (detail.get("bucket") or {}).get("name") if isinstance(detail.get("bucket"), Mapping) else None
        key = detail.get("object", {}).get("key") if isinstance(detail.get("object"), Mapping) else None
        if isinstance(key, str) and named_bucket == bucket:
            return {key, keys.decode_event_key(key)}
        return set()
    key = document.get("key")
    if isinstance(key, str) and document.get("bucket") == bucket:
        return {key}
    return set()


def running_keys(documents: Iterable[Any], bucket: str) -> set[str]:
    found: set[str] = set()
    for document in documents:
        found |= keys_named_by(document, bucket)
    return found


def is_current(manifest: Any, etag: str) -> bool:
    """True when ``manifest`` was written for exactly this content."""
    source = manifest.get("source") if isinstance(manifest, Mapping) else None
    return isinstance(source, Mapping) and normal_etag(str(source.get("etag", ""))) == normal_etag(etag)


def old_enough(upload: Upload, now: datetime, min_age_seconds: int) -> bool:
    return now - upload.last_modified >= timedelta(seconds=min_age_seconds)


def manifest_key_for(key: str, upload_prefix: str) -> str:
    return keys.manifest_key(keys.stem(key, upload_prefix))


def missing_uploads(
    settings: ReconcileSettings, uploads: Iterable[Upload], manifests: ManifestStore, now: datetime, counts: Counts
) -> Iterator[Upload]:
    """The uploads old enough to judge whose manifest is absent or names another ETag."""
    for upload in uploads:
        if upload.key.endswith("/"):
            continue  # a folder marker, not an upload
        counts.scanned += 1
        if not old_enough(upload, now, settings.min_age_seconds):
            counts.recent += 1
            continue
        manifest = manifests.read_json(
            settings.destination_bucket, manifest_key_for(upload.key, settings.upload_prefix)
        )
        if not is_current(manifest, upload.etag):
            counts.missing += 1
            yield upload


def run(
    settings: ReconcileSettings,
    uploads: UploadSource,
    manifests: ManifestStore,
    executions: Executions,
    now: datetime | None = None,
) -> dict[str, int]:
    """One reconciler run: start the pipeline for every upload that needs it; return the counts."""
    # Imported here, not at the top: the decisions above stay importable without Powertools' singletons
    # (whose namespace and service are read from the environment when they are first created).
    from pipeline.observability import logger, metrics

    now = now or datetime.now(UTC)
    counts = Counts()
    listed = uploads.uploads(settings.source_bucket, settings.upload_prefix)
    missing = list(missing_uploads(settings, listed, manifests, now, counts))
    # Running executions are listed only when something is missing (the usual answer is nothing).
    running = running_keys(executions.running_inputs(), settings.source_bucket) if missing else set()
    for upload in missing:
        if upload.key in running:
            counts.running += 1
            continue
        name = execution_name(settings.source_bucket, upload.key, upload.etag)
        if executions.start(name, execution_input(settings.source_bucket, upload.key)):
            counts.started += 1
            logger.info(
                "execution started", extra={"object_key": upload.key, "etag": upload.etag, "execution_name": name}
            )
        else:
            counts.already_started += 1
            logger.warning(
                "already started for this content, still no manifest",
                extra={"object_key": upload.key, "etag": upload.etag, "execution_name": name},
            )
    result = asdict(counts)
    metrics.add_metric(name="ExecutionsRestarted", unit=MetricUnit.Count, value=counts.started)
    logger.info("reconciled", extra=result)
    return result
