"""The input of each step, as Powertools event source data classes.

Each class names the fields the state machine must pass (``required``) and checks them
when the event is wrapped, so a malformed input fails at once with InvalidInput instead of
a KeyError deep in a step. ``tests/template/test_asl.py`` checks the ASL's Payloads against
``required``.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

from aws_lambda_powertools.utilities.data_classes.common import DictWrapper

from pipeline.errors import InvalidInput
from pipeline.models import ImageInfo, ObjectRef, Output, StagedImage

_SOURCE_FIELDS: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("bucket", str),
    ("key", str),
    ("etag", str),
    ("size", int),
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


class ValidateEvent(StepEvent):
    required: ClassVar[dict[str, type | tuple[type, ...]]] = {"upload": dict}

    @property
    def bucket(self) -> str:
        return self._upload_field("bucket")

    @property
    def key(self) -> str:
        return self._upload_field("key")

    @property
    def key_from_event(self) -> bool:
        """True when the key was copied from an S3 event (it may then be form-urlencoded)."""
        return bool(self["upload"].get("key_encoding") == "event")

    def _upload_field(self, name: str) -> str:
        value = self["upload"].get(name)
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"the upload needs a non-empty {name!r}")
        return value


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
    """The failure branch hands over the whole state: what was validated, if anything."""

    required: ClassVar[dict[str, type | tuple[type, ...]]] = {"state": dict}

    @property
    def source(self) -> ObjectRef | None:
        """The validated source, or None when the execution failed before (nothing was written then)."""
        validated = self["state"].get("validated")
        source = validated.get("source") if isinstance(validated, dict) else None
        if not isinstance(source, dict):
            return None
        for name, kind in _SOURCE_FIELDS:
            if not isinstance(source.get(name), kind):
                return None
        return cast(ObjectRef, source)
