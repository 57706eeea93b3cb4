"""Shapes of the JSON that travels between states: S3 references and small facts, never pixels."""

from typing import NotRequired, TypedDict


class ObjectRef(TypedDict):
    """An S3 object pinned to one version of its content.

    ``revision`` names that version: the S3 VersionId in a versioned bucket, else the ETag and
    the time it was written (so that re-uploading earlier content is a new revision).
    """

    bucket: str
    key: str
    etag: str
    size: int
    revision: str
    version_id: NotRequired[str | None]
    content_type: NotRequired[str | None]
    last_modified: NotRequired[str | None]
    #: The S3 event's sequencer of this version (orders a key's versions; None for a manual execution).
    sequencer: NotRequired[str | None]


class ExifSummary(TypedDict, total=False):
    make: str
    model: str
    taken: str
    orientation: int
    has_gps: bool


class ImageInfo(TypedDict):
    format: str
    width: int
    height: int
    mode: str
    frames: int
    orientation: int
    has_icc: bool
    exif: ExifSummary


class StagedImage(TypedDict):
    """A lossless intermediate rendition in the staging bucket."""

    bucket: str
    key: str
    width: int
    height: int


class Output(TypedDict):
    """An encoded output file."""

    bucket: str
    key: str
    width: int
    height: int
    format: str
    content_type: str
    bytes: int
    watermarked: bool


class Manifest(TypedDict):
    source: ObjectRef
    image: ImageInfo
    renditions: list[Output]
