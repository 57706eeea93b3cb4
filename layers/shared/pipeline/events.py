"""The input of each step, as Powertools event source data classes.

Each class names the fields the state machine must pass (``required``) and checks them
when the event is wrapped, so a malformed input fails at once with InvalidInput instead of
a KeyError deep in a step. ``tests/template/test_asl.py`` checks the ASL's Payloads against
``required``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Final, cast
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes.common import DictWrapper
from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventBridgeNotificationEvent

from pipeline.errors import InvalidInput
from pipeline.models import ImageInfo, ObjectRef, Output, StagedImage
from pipeline.settings import OUTPUT_EXTENSIONS

_FORMATS: Final = frozenset(OUTPUT_EXTENSIONS)

_SOURCE_FIELDS: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("bucket", str),
    ("key", str),
    ("etag", str),
    ("size", int),
    ("revision", str),
)


class StepEvent(DictWrapper):
    """Fields common to every step: the execution (correlation id) and what the step requires."""

    required: ClassVar[dict[str, type | tuple[type, ...]]] = {}

    def __init__(self, data: dict[str, Any], json_deserializer: Any = None) -> None:
        if not isinstance(data, dict):
            raise InvalidInput(f"the step input must be an object, got {type(data).__name__}")
        super().__init__(data, json_deserializer)
        for name, kind in self.required.items():
            if not isinstance(data.get(name), kind):
                raise InvalidInput(
                    f"the step input needs {name!r} ({_names(kind)}), got {type(data.get(name)).__name__}"
                )

    @property
    def execution(self) -> str:
        return str(self.get("execution") or "")


def _names(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in kind) if isinstance(kind, tuple) else kind.__name__


class SourceEvent(StepEvent):
    """A step that works on a validated source object."""

    @property
    def source(self) -> ObjectRef:
        source = self["source"]
        for name, kind in _SOURCE_FIELDS:
            if not isinstance(source.get(name), kind):
                raise InvalidInput(f"the step input's source needs {name!r} ({_names(kind)})")
        return cast(ObjectRef, source)


#: Longest key S3 accepts, in UTF-8 bytes.
MAX_KEY_BYTES: Final = 1024
CREATED: Final = "Object Created"
DELETED: Final = "Object Deleted"


@dataclass(frozen=True, slots=True)
class Upload:
    """What an execution input names: a bucket, the candidate readings of a key, and why it runs.

    ``kind`` is ``created`` or ``deleted`` for an S3 event, ``manual`` for ``{"bucket", "key"}``.
    ``version_id`` and ``etag`` are the event's (the version that event is about), ``sequencer`` orders
    an S3 key's events.
    """

    bucket: str
    candidates: tuple[str, ...]
    kind: str
    version_id: str | None = None
    etag: str | None = None
    sequencer: str | None = None


class ValidateEvent(DictWrapper):
    """The execution input, as it came: an S3 event from EventBridge, a manual input, or anything else.

    Nothing is assumed of its shape until ``upload`` reads it, so that any input, however malformed,
    ends in a named rejection (InvalidInput) rather than an error of the event wrapper.
    """

    def __init__(self, data: Any, json_deserializer: Any = None) -> None:
        super().__init__(data if isinstance(data, dict) else {}, json_deserializer)
        #: The state machine passes ``{"input": <the execution input>, "execution": <its ARN>}``; a direct
        #: invocation may pass the input alone.
        wrapped = isinstance(data, dict) and set(data) == {"input", "execution"} and _is_execution(data["execution"])
        self.input = data["input"] if wrapped else data
        self._execution = str(data["execution"]) if wrapped else ""

    @property
    def execution(self) -> str:
        return self._execution

    @property
    def event_id(self) -> str | None:
        """An EventBridge event's id."""
        found = self.input.get("id") if isinstance(self.input, dict) else None
        return found if isinstance(found, str) else None

    def upload(self, source_bucket: str, upload_prefix: str) -> Upload:
        """Read the input; InvalidInput, with a one-line reason, for anything that is not an upload of ours."""
        data = self.input
        if not isinstance(data, dict):
            raise InvalidInput(f"the input must be a JSON object, not {type(data).__name__}")
        if "detail" in data or "detail-type" in data:
            upload = _from_event(S3EventBridgeNotificationEvent(data))
        elif "bucket" in data or "key" in data:
            bucket, key = _name(data, "bucket"), _name(data, "key")
            upload = Upload(bucket=bucket, candidates=(key,), kind="manual")
        else:
            raise InvalidInput(
                'the input is neither an S3 Object Created or Deleted event nor {"bucket": ..., "key": ...}'
            )
        if upload.bucket != source_bucket:
            raise InvalidInput(f"the bucket {excerpt(upload.bucket)} is not the source bucket {source_bucket!r}")
        inside = tuple(k for k in upload.candidates if k.startswith(upload_prefix))
        if not inside:
            raise InvalidInput(f"{excerpt(upload.candidates[0])} is outside the upload prefix {upload_prefix!r}")
        return replace(upload, candidates=inside)


def _is_execution(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("arn:") and ":execution:" in value


def _from_event(event: S3EventBridgeNotificationEvent) -> Upload:
    kind = {CREATED: "created", DELETED: "deleted"}.get(str(event.get("detail-type")))
    if event.get("source") != "aws.s3" or kind is None:
        raise InvalidInput(f"the event is not an S3 {CREATED} or {DELETED} event: {excerpt(event.get('detail-type'))}")
    detail = event.get("detail")
    if (
        not isinstance(detail, dict)
        or not isinstance(detail.get("bucket"), dict)
        or not isinstance(detail.get("object"), dict)
    ):
        raise InvalidInput("the S3 event has no detail.bucket and detail.object")
    bucket = _name(detail["bucket"], "name", "detail.bucket.name")
    obj = detail["object"]
    key = _name(obj, "key", "detail.object.key")
    # A key taken from an S3 event may be written as-is or form-urlencoded (S3's classic notifications encode,
    # ``+`` for a space); both readings are candidates, the verbatim one first, and S3 itself tells which exists.
    decoded = unquote_plus(key)
    return Upload(
        bucket=bucket,
        candidates=(key,) if decoded == key else (key, decoded),
        kind=kind,
        version_id=_optional(obj, "version-id"),
        etag=_optional(obj, "etag"),
        sequencer=_optional(obj, "sequencer"),
    )


def _name(data: dict[str, Any], field: str, where: str | None = None) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"the input needs a non-empty string {where or field!r}, got {excerpt(value)}")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidInput(f"{where or field} has more than {MAX_KEY_BYTES} bytes: {excerpt(value)}")
    return value


def _optional(data: dict[str, Any], field: str) -> str | None:
    value = data.get(field)
    return value if isinstance(value, str) and value and len(value) <= MAX_KEY_BYTES else None


def excerpt(value: Any, limit: int = 120) -> str:
    """A bounded, one-line rendering of an input value for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ResizeEvent(SourceEvent):
    required: ClassVar[dict[str, type | tuple[type, ...]]] = {"source": dict, "image": dict}

    @property
    def image(self) -> ImageInfo:
        return cast(ImageInfo, self["image"])


class WatermarkEvent(SourceEvent):
    required: ClassVar[dict[str, type | tuple[type, ...]]] = {"source": dict, "renditions": list}

    @property
    def renditions(self) -> list[StagedImage]:
        return cast(list[StagedImage], self["renditions"])


class StoreEvent(SourceEvent):
    required: ClassVar[dict[str, type | tuple[type, ...]]] = {"source": dict, "image": dict, "outputs": list}

    @property
    def image(self) -> ImageInfo:
        return cast(ImageInfo, self["image"])

    @property
    def outputs(self) -> list[Output]:
        return cast(list[Output], self["outputs"])


class NotifyEvent(SourceEvent):
    required: ClassVar[dict[str, type | tuple[type, ...]]] = {"source": dict, "image": dict, "stored": dict}

    @property
    def outcome(self) -> str:
        """What Store did: STORED, UNCHANGED (a duplicate run) or SUPERSEDED (nothing to announce)."""
        return str(self["stored"].get("outcome") or "STORED")

    @property
    def image(self) -> ImageInfo:
        return cast(ImageInfo, self["image"])

    @property
    def manifest(self) -> dict[str, str]:
        manifest = self["stored"].get("manifest")
        if not isinstance(manifest, dict):
            raise InvalidInput("the step input's stored result needs a manifest")
        return manifest

    @property
    def renditions(self) -> list[Output]:
        return cast(list[Output], self["stored"].get("renditions") or [])

    @property
    def durations(self) -> dict[str, int]:
        raw = self.get("durations") or {}
        return {k: int(v) for k, v in raw.items() if isinstance(v, int | float)}

    @property
    def started(self) -> str | None:
        value = self.get("started")
        return value if isinstance(value, str) else None


class CleanupEvent(StepEvent):
    """The failure branch hands over the whole state: the error, and what the execution had done."""

    required: ClassVar[dict[str, type | tuple[type, ...]]] = {"state": dict}

    @property
    def error(self) -> dict[str, str]:
        """The error as Step Functions caught it (``Error``, ``Cause``), with the Cause reduced to its message.

        A Lambda function's Cause is the runtime's JSON (errorMessage, errorType, stackTrace): only the
        message is kept, so that no stack trace or file path reaches a failure message.
        """
        raw = self["state"].get("error")
        error = raw if isinstance(raw, dict) else {}
        name = error.get("Error") if isinstance(error.get("Error"), str) else "States.Runtime"
        cause = error.get("Cause")
        text = cause if isinstance(cause, str) else ""
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("errorMessage"), str):
            text = parsed["errorMessage"]
        return {"Error": str(name), "Cause": text or str(name)}

    @property
    def failed_step(self) -> str:
        """The step that failed: named by the state, else the first step whose result is missing."""
        state = self["state"]
        if isinstance(state.get("step"), str):
            return str(state["step"])
        if state.get("outcome") == "DELETED":
            return "remove"
        for name, result in (("validate", "source"), ("resize", "resized"), ("watermark", "watermarked")):
            if result not in state:
                return name
        return "store" if "stored" not in state else "notify"

    @property
    def source(self) -> ObjectRef | None:
        """The pinned source revision, or None when the execution failed before pinning one (nothing was written)."""
        source = self["state"].get("source")
        if not isinstance(source, dict):
            return None
        for name, kind in _SOURCE_FIELDS:
            if not isinstance(source.get(name), kind):
                return None
        return cast(ObjectRef, source)

    @property
    def reported_source(self) -> dict[str, Any] | None:
        source = self["state"].get("source")
        return source if isinstance(source, dict) else None

    @property
    def outputs(self) -> list[Output]:
        """The outputs the Watermark step made (what Store copies), or none."""
        watermarked = self["state"].get("watermarked")
        outputs = watermarked.get("outputs") if isinstance(watermarked, dict) else None
        if not isinstance(outputs, list):
            return []
        usable = [o for o in outputs if isinstance(o, dict) and isinstance(o.get("width"), int)]
        return cast(list[Output], [o for o in usable if o.get("format") in _FORMATS])


class RemoveEvent(StepEvent):
    """A deleted source: bucket, key and the revision of the deletion (its delete marker or event)."""

    required: ClassVar[dict[str, type | tuple[type, ...]]] = {"source": dict}

    @property
    def source(self) -> dict[str, str]:
        source = self["source"]
        for name in ("bucket", "key", "revision"):
            if not isinstance(source.get(name), str):
                raise InvalidInput(f"the step input's source needs {name!r} (str)")
        return cast(dict[str, str], source)

    @property
    def readings(self) -> list[str]:
        """Every reading of the deleted key (an event's key may be written as-is or form-urlencoded)."""
        readings = self["source"].get("keys")
        if isinstance(readings, list) and readings and all(isinstance(k, str) for k in readings):
            return list(dict.fromkeys(readings))
        return [self.source["key"]]


class ScheduledRun(DictWrapper):
    """The input EventBridge Scheduler sends (template.yaml fills it with the scheduler's context
    attributes). Nothing in it changes what the reconciler does; it names the run in the logs."""

    @property
    def execution_id(self) -> str | None:
        value = self.get("execution_id")
        return value if isinstance(value, str) else None

    @property
    def scheduled_time(self) -> str | None:
        value = self.get("scheduled_time")
        return value if isinstance(value, str) else None
