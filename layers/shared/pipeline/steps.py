"""The five steps: S3 I/O around the pure functions. Handlers call exactly one of these."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aws_lambda_powertools.metrics import MetricUnit

from pipeline import keys, messages
from pipeline.errors import InvalidInput, SourceMissing
from pipeline.events import CleanupEvent, NotifyEvent, ResizeEvent, StoreEvent, ValidateEvent, WatermarkEvent
from pipeline.models import ImageInfo, ObjectRef, Output, StagedImage
from pipeline.observability import logger, metrics
from pipeline.settings import (
    OUTPUT_EXTENSIONS,
    EncodeSettings,
    Limits,
    NotifySettings,
    RenditionSettings,
    Staging,
    StoreSettings,
    WatermarkSettings,
)
from pipeline.storage import S3Store, Topic

_MANIFEST_VERSION = 1


def _run_digest(source: ObjectRef, execution: str) -> str:
    """The staging folder of one execution's work on one source version.

    Two executions of the same upload (EventBridge and Express are at-least-once) may run at
    once: each works in a folder of its own, so one's clean-up never removes the other's inputs.
    """
    return keys.source_digest(source["bucket"], source["key"], source["etag"] + "\0" + execution)


# -- validate ---------------------------------------------------------------------------------


def read_upload(event: ValidateEvent, limits: Limits) -> tuple[str, list[str]]:
    """Bucket and candidate keys of the upload named by the execution input.

    A manual input names its key verbatim. A key taken from an S3 event may be written
    as-is or form-urlencoded (S3's classic notifications encode, ``+`` for a space;
    EventBridge events have been seen with raw keys), so both readings are candidates,
    the verbatim one first, and S3 itself tells which exists.
    """
    bucket, key = event.bucket, event.key
    candidates = [key]
    if event.key_from_event and keys.decode_event_key(key) != key:
        candidates.append(keys.decode_event_key(key))
    inside = [k for k in candidates if k.startswith(limits.upload_prefix)]
    if not inside:
        raise InvalidInput(f"{key!r} is outside the upload prefix {limits.upload_prefix!r}")
    return bucket, inside


def validate(event: ValidateEvent, limits: Limits, s3: S3Store) -> dict[str, Any]:
    from pipeline import inspection  # Pillow, imported by the steps that read images only

    bucket, candidates = read_upload(event, limits)
    for key in candidates:
        try:
            head = s3.head(bucket, key)
            break
        except SourceMissing:
            if key == candidates[-1]:
                raise
    size = int(head["ContentLength"])
    inspection.check_size(size, limits)
    etag = str(head["ETag"]).strip('"')
    last_modified = head.get("LastModified")
    source = ObjectRef(
        bucket=bucket,
        key=key,
        etag=etag,
        size=size,
        version_id=head.get("VersionId"),
        content_type=head.get("ContentType"),
        last_modified=last_modified.isoformat() if isinstance(last_modified, datetime) else None,
    )
    read = min(size, inspection.HEAD_BYTES)
    head_bytes = s3.read_range(bucket, key, etag, f"bytes=0-{read - 1}")
    tail = head_bytes[-inspection.TAIL_BYTES :]
    if size > len(head_bytes):
        tail = s3.read_range(bucket, key, etag, f"bytes=-{inspection.TAIL_BYTES}")
    while True:
        try:
            info = inspection.inspect(head_bytes, tail, size, limits)
            break
        except inspection.NeedMoreBytes:
            # A header larger than the first read (big EXIF or ICC blocks): read 16x more, up to the whole object.
            read = min(size, read * 16)
            head_bytes = s3.read_range(bucket, key, etag, f"bytes=0-{read - 1}")
    logger.info("upload validated", extra={"source": source, "image": info})
    return {"source": source, "image": info}


# -- resize -----------------------------------------------------------------------------------


def display_width(image: ImageInfo) -> int:
    return image["height"] if image["orientation"] in (5, 6, 7, 8) else image["width"]


def resize(event: ResizeEvent, settings: RenditionSettings, s3: S3Store) -> dict[str, Any]:
    from pipeline import imaging

    source, image = event.source, event.image
    data = s3.read(source["bucket"], source["key"], source["etag"])
    metrics.add_metric(name="BytesIn", unit=MetricUnit.Bytes, value=len(data))
    widths = imaging.plan_widths(display_width(image), settings.widths)
    with imaging.open_image(data, settings.max_pixels) as img:
        decoded, icc = imaging.decode(img, widths[0], data)
    del data
    digest = _run_digest(source, event.execution)
    staged: list[StagedImage] = []
    chain = imaging.renditions(decoded, widths)
    del decoded  # the chain lets the full decode go once the largest rendition is made
    for rendition in chain:
        key = keys.staging_key(settings.staging.prefix, digest, f"resized/{rendition.width}w.tiff")
        s3.write(settings.staging.bucket, key, imaging.to_lossless(rendition.image, icc), "image/tiff")
        staged.append(
            StagedImage(bucket=settings.staging.bucket, key=key, width=rendition.width, height=rendition.height)
        )
    return {"renditions": staged}


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


def store(event: StoreEvent, settings: StoreSettings, s3: S3Store) -> dict[str, Any]:
    source, image, outputs = event.source, event.image, event.outputs
    stem = keys.stem(source["key"], settings.upload_prefix)
    manifest_ref = {"bucket": settings.destination_bucket, "key": keys.manifest_key(stem)}
    digest = _run_digest(source, event.execution)
    staging_prefix = keys.staging_key(settings.staging.prefix, digest, "")

    existing = s3.read_json(settings.destination_bucket, manifest_ref["key"])
    if isinstance(existing, dict) and existing.get("source", {}).get("etag") == source["etag"]:
        # Already stored for this exact content: change nothing, only clear what is left in staging.
        s3.delete(settings.staging.bucket, s3.list_keys(settings.staging.bucket, staging_prefix))
        return {"manifest": manifest_ref, "renditions": existing["renditions"], "unchanged": True}

    metadata = {
        "source-bucket": source["bucket"],
        "source-key": _ascii(source["key"]),
        "source-etag": source["etag"],
    }
    if source.get("version_id"):
        metadata["source-version-id"] = str(source["version_id"])
    stored: list[Output] = []
    for output in outputs:
        key = keys.rendition_key(stem, output["width"], OUTPUT_EXTENSIONS[output["format"]])
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
        "version": _MANIFEST_VERSION,
        "source": source,
        "image": image,
        "renditions": stored,
        "stored_at": datetime.now(UTC).isoformat(),
    }
    # The manifest is written last: its presence means every rendition above is in place.
    s3.write(
        settings.destination_bucket,
        manifest_ref["key"],
        messages.dumps(manifest),
        "application/json",
        CacheControl="no-cache",
        Metadata=metadata,
    )
    metrics.add_metric(name="BytesOut", unit=MetricUnit.Bytes, value=sum(o["bytes"] for o in stored))
    s3.delete(settings.staging.bucket, s3.list_keys(settings.staging.bucket, staging_prefix))
    return {"manifest": manifest_ref, "renditions": stored, "unchanged": False}


# -- cleanup (failure branch) ----------------------------------------------------------------


def cleanup(event: CleanupEvent, settings: StoreSettings, s3: S3Store) -> dict[str, Any]:
    """Remove what a failed execution wrote: its staging objects, and renditions it stored without
    completing the manifest. Objects of any other content version (another upload of the same key)
    are left alone: only renditions whose ``source-etag`` metadata names this source are deleted."""
    source = event.source
    if source is None:
        return {"staging_deleted": 0, "outputs_deleted": 0}
    digest = _run_digest(source, event.execution)
    staged = s3.list_keys(settings.staging.bucket, keys.staging_key(settings.staging.prefix, digest, ""))
    s3.delete(settings.staging.bucket, staged)
    stem = keys.stem(source["key"], settings.upload_prefix)
    manifest = s3.read_json(settings.destination_bucket, keys.manifest_key(stem))
    if isinstance(manifest, dict) and manifest.get("source", {}).get("etag") == source["etag"]:
        return {"staging_deleted": len(staged), "outputs_deleted": 0}  # stored completely: keep it
    ours = [
        key
        for key in s3.list_keys(settings.destination_bucket, stem + "/")
        if key != keys.manifest_key(stem)
        and s3.head(settings.destination_bucket, key).get("Metadata", {}).get("source-etag") == source["etag"]
    ]
    s3.delete(settings.destination_bucket, ours)
    return {"staging_deleted": len(staged), "outputs_deleted": len(ours)}


# -- notify -----------------------------------------------------------------------------------


def notify(event: NotifyEvent, settings: NotifySettings, topic: Topic) -> dict[str, Any]:
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
    return {"message_id": message_id}
