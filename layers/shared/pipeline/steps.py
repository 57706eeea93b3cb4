"""The five steps: S3 I/O around the pure functions. Handlers call exactly one of these."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aws_lambda_powertools.metrics import MetricUnit

from pipeline import destination, keys, messages, status
from pipeline.errors import SourceMissing, ValidationError
from pipeline.events import (
    CleanupEvent,
    NotifyEvent,
    RemoveEvent,
    ResizeEvent,
    StoreEvent,
    Upload,
    ValidateEvent,
    WatermarkEvent,
    excerpt,
)
from pipeline.models import ImageInfo, ObjectRef, Output, StagedImage
from pipeline.observability import logger, metrics
from pipeline.settings import (
    OUTPUT_EXTENSIONS,
    EncodeSettings,
    Limits,
    NotifySettings,
    RenditionSettings,
    Source,
    Staging,
    StoreSettings,
    WatermarkSettings,
)
from pipeline.storage import S3Store, StatusTable, Topic


def _run_digest(source: ObjectRef, execution: str) -> str:
    """The staging folder of one execution's work on one source revision.

    Two executions of the same upload (EventBridge and Express are at-least-once) may run at
    once: each works in a folder of its own, so one's clean-up never removes the other's inputs.
    """
    return keys.source_digest(source["bucket"], source["key"], source["revision"] + "\0" + execution)


def _record_status(
    table: StatusTable | None,
    source: dict[str, Any] | ObjectRef | None,
    state: str,
    execution: str,
    *,
    error: dict[str, str] | None = None,
    renditions: list[Output] | None = None,
) -> None:
    """Write what this step learned to the upload's status record (``pipeline.status``), unless the
    record is about a newer version. Keys outside the upload prefix have no record."""
    key = source.get("key") if source else None
    if table is None or not source or not isinstance(key, str) or not key.startswith(table.upload_prefix):
        return
    update = status.Update(
        key=key,
        status=state,
        version=str(source.get("revision") or ""),
        sequencer=source.get("sequencer"),
        execution=execution,
        at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        error=error["Error"] if error else None,
        reason=error["Cause"] if error else None,
        renditions=renditions or [],
    )
    if not table.record(update):
        logger.info("status not written: the record is about a newer version", extra={"status": state})


# -- validate ---------------------------------------------------------------------------------

#: What the Validate step decides; the state machine's Route state branches on it.
PROCESS, DELETED, SUPERSEDED, REJECTED = "PROCESS", "DELETED", "SUPERSEDED", "REJECTED"


def validate(
    event: ValidateEvent, origin: Source, limits: Limits, s3: S3Store, table: StatusTable | None = None
) -> dict[str, Any]:
    """Read the execution input and decide: process the upload's current version, remove a deleted
    source's outputs, end as superseded, or reject the upload with a named error.

    A rejection is returned, not raised: the result replaces the execution input in the state (which
    may be near the 256 KiB payload limit) with a bounded one that still names the source.
    Transient failures are raised, for the state machine to retry.
    """
    source: dict[str, Any] | None = None
    try:
        upload = event.upload(origin.bucket, origin.upload_prefix)
        source = {"bucket": upload.bucket, "key": upload.candidates[-1]}
        head, key = _current(s3, upload)
        source["key"] = key
        if head is None:
            if upload.kind == "manual":
                raise SourceMissing(f"s3://{upload.bucket}/{excerpt(key)} does not exist")
            source["revision"] = upload.version_id or upload.sequencer or event.event_id or key
            source["sequencer"] = upload.sequencer
            if upload.kind == "deleted":
                # Neither reading of an event's key exists: the outputs of each go (none exist for a wrong reading).
                return _decided(DELETED, {**source, "keys": list(upload.candidates)})
            return _decided(SUPERSEDED, source, table, event.execution)
        pinned = _pin(upload.bucket, key, head, upload.sequencer)
        if upload.kind == "created" and not _same_version(upload, head):
            superseded = {**source, "revision": upload.version_id or upload.etag or "", "sequencer": upload.sequencer}
            return _decided(SUPERSEDED, superseded, table, event.execution)
        source = dict(pinned)
        info = _inspect(pinned, limits, s3)
    except ValidationError as exc:
        logger.warning("upload rejected", extra={"error": type(exc).__name__, "cause": str(exc)})
        metrics.add_metric(name="UploadsRejected", unit=MetricUnit.Count, value=1)
        return {
            "outcome": REJECTED,
            "step": "validate",
            "source": source,
            "error": {"Error": type(exc).__name__, "Cause": messages.one_line(str(exc))},
        }
    logger.info("upload validated", extra={"source": pinned, "image": info})
    _record_status(table, pinned, status.PROCESSING, event.execution)
    return {"outcome": PROCESS, "source": pinned, "image": info}


def _decided(
    outcome: str, source: dict[str, Any], table: StatusTable | None = None, execution: str = ""
) -> dict[str, Any]:
    logger.info("upload needs no processing", extra={"outcome": outcome, "source": source})
    if outcome == SUPERSEDED:
        metrics.add_metric(name="UploadsSuperseded", unit=MetricUnit.Count, value=1)
        _record_status(table, source, status.SUPERSEDED, execution)
    summary = messages.source_summary(source) or {}
    if source.get("sequencer"):
        summary["sequencer"] = source["sequencer"]
    return {"outcome": outcome, "source": summary}


def _current(s3: S3Store, upload: Upload) -> tuple[dict[str, Any] | None, str]:
    """The HEAD of the first candidate key that exists, and that key (the last candidate when none does)."""
    for key in upload.candidates:
        head = s3.current(upload.bucket, key)
        if head is not None:
            return head, key
    return None, upload.candidates[-1]


def _same_version(upload: Upload, head: dict[str, Any]) -> bool:
    """Whether the object's current version is the one the event is about (a newer one has its own event)."""
    if upload.version_id:
        return bool(head.get("VersionId") == upload.version_id)
    return upload.etag is None or str(head.get("ETag", "")).strip('"') == upload.etag


def _pin(bucket: str, key: str, head: dict[str, Any], sequencer: str | None) -> ObjectRef:
    last_modified = head.get("LastModified")
    version = head.get("VersionId")
    ref = ObjectRef(
        bucket=bucket,
        key=key,
        etag=str(head["ETag"]).strip('"'),
        size=int(head["ContentLength"]),
        revision=destination.revision_of(head),
        version_id=str(version) if version and version != "null" else None,
        content_type=head.get("ContentType"),
        last_modified=last_modified.isoformat() if isinstance(last_modified, datetime) else None,
    )
    if sequencer:
        ref["sequencer"] = sequencer
    return ref


def _inspect(source: ObjectRef, limits: Limits, s3: S3Store) -> ImageInfo:
    """Format, size and metadata from the header, read in growing ranges bounded by ``MAX_HEADER_BYTES``."""
    from pipeline import inspection  # Pillow, imported by the steps that read images only

    size = source["size"]
    inspection.check_size(size, limits)
    read = min(size, inspection.HEAD_BYTES)
    head_bytes = s3.read_version(source, f"bytes=0-{read - 1}")
    tail = head_bytes[-inspection.TAIL_BYTES :]
    if size > len(head_bytes):
        tail = s3.read_version(source, f"bytes=-{inspection.TAIL_BYTES}")
    while True:
        try:
            return inspection.inspect(head_bytes, tail, size, limits)
        except inspection.NeedMoreBytes as need:
            # A header larger than the first read (big EXIF or ICC blocks): inspection names how much to read,
            # never more than MAX_HEADER_BYTES (WebP and AVIF whole, bounded by MAX_UPLOAD_BYTES).
            read = need.wanted
            head_bytes = s3.read_version(source, f"bytes=0-{read - 1}")


# -- resize -----------------------------------------------------------------------------------


def display_width(image: ImageInfo) -> int:
    return image["height"] if image["orientation"] in (5, 6, 7, 8) else image["width"]


def resize(event: ResizeEvent, settings: RenditionSettings, s3: S3Store) -> dict[str, Any]:
    from pipeline import imaging, renditions

    source, image = event.source, event.image
    data = s3.read_version(source)
    metrics.add_metric(name="BytesIn", unit=MetricUnit.Bytes, value=len(data))
    widths = imaging.plan_widths(display_width(image), settings.widths)
    image = {**image, "frames": imaging.count_frames(data, image["format"])}
    with imaging.open_image(data, settings.max_pixels) as img:
        chain, icc = renditions.from_source(img, data, widths)
    del data  # a JPEG's chain holds its bytes while libvips reads them; any other source is decoded already
    digest = _run_digest(source, event.execution)
    staged: list[StagedImage] = []
    for rendition in chain:
        key = keys.staging_key(settings.staging.prefix, digest, f"resized/{rendition.width}w.tiff")
        s3.write(settings.staging.bucket, key, imaging.to_lossless(rendition.image, icc), "image/tiff")
        staged.append(
            StagedImage(bucket=settings.staging.bucket, key=key, width=rendition.width, height=rendition.height)
        )
    return {"renditions": staged, "image": image}


# -- watermark --------------------------------------------------------------------------------


def watermark_and_encode(
    event: WatermarkEvent, marks: WatermarkSettings, enc: EncodeSettings, staging: Staging, s3: S3Store
) -> dict[str, Any]:
    from pipeline import encoding, imaging, watermark

    source, renditions = event.source, event.renditions
    digest = _run_digest(source, event.execution)
    outputs: list[Output] = []
    for staged in renditions:
        img, icc = imaging.from_lossless(s3.read(staged["bucket"], staged["key"]))
        marked = watermark.apply(img, marks)
        watermarked = marked is not img
        del img  # and the staged bytes it was read from
        for fmt in enc.formats:
            body = encoding.encode(marked, fmt, enc, icc)
            name = f"encoded/{staged['width']}w.{encoding.EXTENSIONS[fmt]}"
            key = keys.staging_key(staging.prefix, digest, name)
            s3.write(staging.bucket, key, body, encoding.CONTENT_TYPES[fmt])
            outputs.append(
                Output(
                    bucket=staging.bucket,
                    key=key,
                    width=staged["width"],
                    height=staged["height"],
                    format=fmt,
                    content_type=encoding.CONTENT_TYPES[fmt],
                    bytes=len(body),
                    watermarked=watermarked,
                )
            )
    return {"outputs": outputs}


# -- store ------------------------------------------------------------------------------------


def _ascii(value: str) -> str:
    """S3 user metadata travels in HTTP headers: percent-encode anything outside ASCII."""
    return quote(value, safe="/ +-_.~@:,;=()!*'")


def _destination_keys(stem: str, source: ObjectRef, outputs: list[Output]) -> list[str]:
    return [keys.rendition_key(stem, source["revision"], o["width"], OUTPUT_EXTENSIONS[o["format"]]) for o in outputs]


def store(event: StoreEvent, settings: StoreSettings, s3: S3Store, table: StatusTable | None = None) -> dict[str, Any]:
    """Copy the outputs to this revision's keys and commit its manifest (``destination.Destination.commit``);
    the upload's status is SUCCEEDED from the commit on (or SUPERSEDED)."""
    source, image, outputs = event.source, event.image, event.outputs
    stem = keys.stem(source["key"], settings.upload_prefix)
    place = destination.Destination(s3, settings.destination_bucket, stem)
    manifest_ref = {"bucket": settings.destination_bucket, "key": place.manifest_key}
    own = _destination_keys(stem, source, outputs)
    metadata = {
        "source-bucket": source["bucket"],
        "source-key": _ascii(source["key"]),
        "source-etag": source["etag"],
        "source-revision": _ascii(source["revision"]),
    }
    stored: list[Output] = []
    if destination.manifest_names(s3.read_json(settings.destination_bucket, place.manifest_key), source):
        outcome = "UNCHANGED"  # a retried or duplicate Store: the revision is committed, staging may be gone
    elif destination.is_current(s3, source):
        for output, key in zip(outputs, own, strict=True):
            s3.copy(
                output["bucket"],
                output["key"],
                settings.destination_bucket,
                key,
                output["content_type"],
                CacheControl=settings.cache_control,
                Metadata=metadata,
            )
            stored.append(Output(**{**output, "bucket": settings.destination_bucket, "key": key}))
        manifest = {
            "version": destination.MANIFEST_VERSION,
            "source": source,
            "image": image,
            "renditions": stored,
            "stored_at": datetime.now(UTC).isoformat(),
        }
        outcome = place.commit(source, manifest, own, metadata)
    else:
        outcome = SUPERSEDED
    _clear_staging(s3, settings.staging, source, event.execution)
    if outcome == SUPERSEDED:
        logger.info("source replaced or deleted before its renditions were committed: nothing stored")
        metrics.add_metric(name="UploadsSuperseded", unit=MetricUnit.Count, value=1)
        _record_status(table, source, status.SUPERSEDED, event.execution)
        return {"outcome": SUPERSEDED, "manifest": None, "renditions": []}
    if outcome == "UNCHANGED":
        committed = s3.read_json(settings.destination_bucket, place.manifest_key) or {}
        stored = committed.get("renditions", stored)
    else:
        metrics.add_metric(name="BytesOut", unit=MetricUnit.Bytes, value=sum(o["bytes"] for o in stored))
    _record_status(table, source, status.SUCCEEDED, event.execution, renditions=stored)
    return {"outcome": outcome, "manifest": manifest_ref, "renditions": stored}


def _clear_staging(s3: S3Store, staging: Staging, source: ObjectRef, execution: str) -> int:
    """Delete this execution's intermediates (its own staging folder, named by a fixed-length digest)."""
    staged = s3.list_keys(staging.bucket, keys.staging_key(staging.prefix, _run_digest(source, execution), ""))
    s3.delete(staging.bucket, staged)
    return len(staged)


# -- cleanup and failure report (failure branch) ---------------------------------------------


def cleanup(
    event: CleanupEvent, settings: StoreSettings, s3: S3Store, table: StatusTable | None = None
) -> dict[str, Any]:
    """Remove what a failed execution wrote and write its failure message.

    - Its staging folder, and renditions it copied without committing them (by exact key).
    - When its revision is still the source's current version, the outputs of any older revision:
      the destination never shows a version that has been replaced, even by one that fails.
    - When its revision is no longer current (replaced or deleted meanwhile), the failure is moot:
      the outcome is SUPERSEDED and no failure message is sent; the newer revision's run reports.
    """
    error, step = event.error, event.failed_step
    source = event.source
    outcome = "FAILED"
    if source is not None:
        _clear_staging(s3, settings.staging, source, event.execution)
        stem = keys.stem(source["key"], settings.upload_prefix)
        place = destination.Destination(s3, settings.destination_bucket, stem)
        committed = destination.manifest_names(s3.read_json(settings.destination_bucket, place.manifest_key), source)
        if not committed:
            s3.delete(settings.destination_bucket, _destination_keys(stem, source, event.outputs))
        if destination.is_current(s3, source):
            place.clear(
                lambda manifest: not destination.manifest_names(manifest, source) and destination.is_current(s3, source)
            )
        else:
            outcome = SUPERSEDED
    reason = messages.one_line(error["Cause"])
    if outcome == SUPERSEDED:
        metrics.add_metric(name="UploadsSuperseded", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="UploadsFailed", unit=MetricUnit.Count, value=1)
    message = messages.failure_message(
        execution=event.execution, error=error["Error"], reason=reason, step=step, source=event.reported_source
    )
    logger.info("failure handled", extra={"outcome": outcome, "failure": message})
    failure = {"Error": error["Error"], "Cause": reason}
    state = status.SUPERSEDED if outcome == SUPERSEDED else status.FAILED
    _record_status(
        table, event.reported_source, state, event.execution, error=None if outcome == SUPERSEDED else failure
    )
    return {"outcome": outcome, "message": message, "error": failure}


# -- remove (a source was deleted) ------------------------------------------------------------


def remove(
    event: RemoveEvent, settings: StoreSettings, s3: S3Store, topic: Topic, table: StatusTable | None = None
) -> dict[str, Any]:
    """Remove a deleted source's manifest and renditions by exact key, then publish a DELETED message.

    Nothing is removed while the key exists again (uploaded anew since the delete): that upload's
    own run decides what the destination holds.
    """
    source = event.source
    removed: list[str] = []
    for key in event.readings:

        def gone(_: Any, key: str = key) -> bool:
            return s3.current(source["bucket"], key) is None

        place = destination.Destination(s3, settings.destination_bucket, keys.stem(key, settings.upload_prefix))
        removed += place.clear(gone)
    if any(s3.current(source["bucket"], key) is not None for key in event.readings):
        return {"outcome": "UNCHANGED", "removed": removed, "message_id": None}
    message = messages.deleted_message(execution=event.execution, source=dict(source), removed=removed)
    message_id = topic.publish(message, messages.status_attributes(DELETED), "Image deleted")
    metrics.add_metric(name="UploadsDeleted", unit=MetricUnit.Count, value=1)
    for key in event.readings:
        _record_status(table, {**source, "key": key}, status.DELETED, event.execution)
    return {"outcome": DELETED, "removed": removed, "message_id": message_id}


# -- notify -----------------------------------------------------------------------------------


def notify(event: NotifyEvent, settings: NotifySettings, topic: Topic) -> dict[str, Any]:
    if event.outcome == SUPERSEDED:
        return {"outcome": SUPERSEDED, "message_id": None}
    durations = event.durations
    if event.started is not None:
        with contextlib.suppress(ValueError):
            durations["total"] = round((time.time() - datetime.fromisoformat(event.started).timestamp()) * 1000)
    message = messages.success_message(
        execution=event.execution,
        source=event.source,
        image=event.image,
        manifest=event.manifest,
        renditions=event.renditions,
        durations_ms=durations,
    )
    message_id = topic.publish(message, messages.success_attributes(event.image, event.renditions), "Image processed")
    metrics.add_metric(name="ImagesProcessed", unit=MetricUnit.Count, value=1)
    return {"outcome": "SUCCEEDED", "message_id": message_id}
