"""Validation of an upload from its header and tail, before any pixel is decoded."""

from __future__ import annotations

import io
import warnings
from typing import Final

from PIL import ExifTags, Image

from pipeline import formats
from pipeline.errors import CorruptImage, EmptyObject, ObjectTooLarge, TooManyPixels, UnsupportedFormat
from pipeline.models import ExifSummary, ImageInfo
from pipeline.settings import Limits

#: First ranged read. Enough for the header of nearly every image; see ``NeedMoreBytes``.
HEAD_BYTES: Final = 64 * 1024
TAIL_BYTES: Final = 4 * 1024


class NeedMoreBytes(Exception):
    """The header did not fit in the bytes read so far (large EXIF or ICC blocks)."""


def check_size(size: int, limits: Limits) -> None:
    if size == 0:
        raise EmptyObject("the object is empty (0 bytes)")
    if size > limits.max_upload_bytes:
        raise ObjectTooLarge(f"the object has {size} bytes; the limit is {limits.max_upload_bytes}")


def sniff_format(head: bytes) -> str:
    fmt = formats.sniff(head)
    if fmt is None:
        raise UnsupportedFormat(f"the content is {formats.describe_other(head)}, not a supported image")
    return fmt


def inspect(head: bytes, tail: bytes, size: int, limits: Limits) -> ImageInfo:
    """Read format, size and metadata from the first bytes of an object, and check its tail.

    ``head`` is the start of the object (the whole object when ``len(head) == size``).
    Raises NeedMoreBytes when the header extends past ``head``.
    """
    check_size(size, limits)
    fmt = sniff_format(head)
    complete = len(head) >= size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            # Image.open reads the header only; pixels are never decoded here.
            img = Image.open(io.BytesIO(head), formats=[fmt])
        except Image.DecompressionBombError as exc:
            raise TooManyPixels(str(exc)) from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
            if not complete:
                raise NeedMoreBytes from exc
            raise CorruptImage(f"the {fmt} header cannot be read: {exc}") from None
    with img:
        width, height = img.size
        if width <= 0 or height <= 0:
            raise CorruptImage(f"the {fmt} header declares {width}x{height} pixels")
        if width * height > limits.max_pixels:
            raise TooManyPixels(f"{width}x{height} is {width * height} pixels; the limit is {limits.max_pixels}")
        if not formats.looks_complete(fmt, tail, size) or (fmt == "WEBP" and not formats.riff_size_matches(head, size)):
            raise CorruptImage(f"the {fmt} data is truncated (its end marker is missing)")
        exif = _exif_summary(img)
        orientation = exif.get("orientation", 1)
        if fmt == "TIFF":
            # Pillow's TIFF reader reports the upright size and applies the orientation itself
            # while loading, so none is left for ``imaging.decode`` to apply.
            orientation = 1
        return ImageInfo(
            format=fmt,
            width=width,
            height=height,
            mode=img.mode,
            frames=getattr(img, "n_frames", 1),
            orientation=orientation,
            has_icc=bool(img.info.get("icc_profile")),
            exif=exif,
        )


def _exif_summary(img: Image.Image) -> ExifSummary:
    summary = ExifSummary()
    try:
        exif = img.getexif()
    except Exception:  # noqa: BLE001 - a broken EXIF block must not reject a decodable image
        return summary
    fields = {
        ExifTags.Base.Make: "make",
        ExifTags.Base.Model: "model",
        ExifTags.Base.DateTime: "taken",
    }
    for tag, name in fields.items():
        value = exif.get(tag)
        if isinstance(value, str) and value.strip("\x00 "):
            summary[name] = value.strip("\x00 ")[:64]  # type: ignore[literal-required]
    try:
        taken = exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.DateTimeOriginal)
    except Exception:  # noqa: BLE001 - see above
        taken = None
    if isinstance(taken, str) and taken.strip("\x00 "):
        summary["taken"] = taken.strip("\x00 ")[:32]
    orientation = exif.get(ExifTags.Base.Orientation)
    if isinstance(orientation, int) and 1 <= orientation <= 8:
        summary["orientation"] = orientation
    if ExifTags.Base.GPSInfo in exif:
        summary["has_gps"] = True
    return summary
