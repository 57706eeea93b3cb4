"""Validation of an upload from its header and tail, before any pixel is decoded."""

from __future__ import annotations

import io
import warnings
from typing import Final

from PIL import ExifTags, Image

from pipeline import encoding, formats, imaging
from pipeline.errors import (
    CorruptImage,
    EmptyObject,
    ObjectTooLarge,
    TooManyPixels,
    UnsupportedDimensions,
    UnsupportedFormat,
)
from pipeline.models import ExifSummary, ImageInfo
from pipeline.settings import Limits

#: First ranged read. Enough for the header of nearly every image; see ``NeedMoreBytes``.
HEAD_BYTES: Final = 64 * 1024
TAIL_BYTES: Final = 4 * 1024
#: The most bytes read for the metadata before the pixels (JPEG, PNG, GIF, TIFF). A JPEG's header is
#: the largest any real file has: an ICC profile may fill 255 APP2 segments (16.7 MB, the most the
#: format can hold), next to APP1 segments of EXIF and XMP (64 KiB each). 24 MiB holds all of that
#: with room to spare, while real headers are kilobytes (EXIF up to 64 KiB, profiles of a few KB).
#: Validate holds at most this and what Pillow reads of it (a chunk it skips is read once more):
#: about twice as much, never the pixels. WebP and AVIF are read whole instead (``WHOLE_FORMATS``).
MAX_HEADER_BYTES: Final = 24 * 1024 * 1024
#: Formats whose reader needs the whole object to read the header: libwebp's demuxer and libavif's
#: parser check the container to its end (and a WebP's EXIF chunk follows its pixels). Neither
#: decodes a pixel to read it: the memory they take is the object's size, which MAX_UPLOAD_BYTES
#: bounds, and a WebP's canvas size is checked against the pixel limit from the first read already.
WHOLE_FORMATS: Final = frozenset({"WEBP", "AVIF"})
#: How much more to read each time the header does not fit.
_GROWTH: Final = 16


class NeedMoreBytes(Exception):
    """The header did not fit in the bytes read so far (large EXIF or ICC blocks, or a WebP or AVIF).

    ``wanted`` is how many bytes (from the start) to read next: more than were given, at most the
    object's size, and, but for WebP and AVIF, at most MAX_HEADER_BYTES.
    """

    def __init__(self, wanted: int) -> None:
        super().__init__(f"read the first {wanted} bytes")
        self.wanted = wanted


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


def check_pixels(width: int, height: int, limits: Limits) -> None:
    if width * height > limits.max_pixels:
        raise TooManyPixels(f"{width}x{height} is {width * height} pixels; the limit is {limits.max_pixels}")


def check_dimensions(width: int, height: int, orientation: int, limits: Limits) -> None:
    """Refuse an image when a rendition of it would not fit an output format (``encoding.SIZE_LIMITS``).

    ``width`` x ``height`` is the stored size; the renditions are planned, as the resize step plans
    them, from the displayed size (turned by ``orientation``), with ``limits.widths``, and each is
    encoded in every one of ``limits.formats``.
    """
    shown_w, shown_h = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    for rendition_w in imaging.plan_widths(shown_w, limits.widths):
        rendition_h = imaging.scaled_height(shown_w, shown_h, rendition_w)
        for fmt in limits.formats:
            if not encoding.fits(fmt, rendition_w, rendition_h):
                limit = encoding.SIZE_LIMITS[fmt]
                pixels = f" and {limit.pixels} pixels" if limit.pixels else ""
                raise UnsupportedDimensions(
                    f"the {shown_w}x{shown_h} image makes a {rendition_w}x{rendition_h} rendition, larger than "
                    f"{fmt.upper()} allows ({limit.side} px a side{pixels})"
                )


def inspect(head: bytes, tail: bytes, size: int, limits: Limits) -> ImageInfo:
    """Read format, size and metadata from the first bytes of an object, and check its tail.

    ``head`` is the start of the object (the whole object when ``len(head) == size``). Nothing here
    decodes a pixel: the header is read by Pillow's ``Image.open``, which stops before the pixel data,
    and the EXIF by ``imaging.header_exif``. Raises NeedMoreBytes when the header extends past ``head``,
    CorruptImage when it extends past MAX_HEADER_BYTES. A WebP or an AVIF is read whole: unless ``head``
    is the whole object, NeedMoreBytes asks for it (after the checks its first bytes allow: a WebP's
    RIFF size and canvas). A JPEG with more than ``imaging.MAX_JPEG_SCANS`` scans in ``head`` is refused.

    ``frames`` is the number of frames whose headers are in ``head``: the true count when ``head`` is the
    whole object (always for WebP and AVIF), a lower bound otherwise (``imaging.count_frames`` on the
    whole object gives it).
    """
    check_size(size, limits)
    fmt = sniff_format(head)
    complete = len(head) >= size
    if fmt == "WEBP":
        if not formats.riff_size_matches(head, size):
            raise CorruptImage("the WEBP data is truncated (shorter than its RIFF header says)")
        canvas = formats.webp_canvas(head)
        if canvas:
            check_pixels(*canvas, limits)
    if fmt == "JPEG":
        imaging.check_jpeg_scans(head)
    if fmt in WHOLE_FORMATS and not complete:
        raise NeedMoreBytes(size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(head), formats=[fmt])
        except Image.DecompressionBombError as exc:
            raise TooManyPixels(str(exc)) from exc
        except imaging.DECODE_ERRORS as exc:
            if complete:
                raise CorruptImage(f"the {fmt} header cannot be read: {imaging.reason(exc)}") from exc
            if len(head) >= MAX_HEADER_BYTES:
                raise CorruptImage(
                    f"the metadata before the pixels is larger than {MAX_HEADER_BYTES} bytes, or the {fmt} "
                    f"header is corrupt: {imaging.reason(exc)}"
                ) from exc
            raise NeedMoreBytes(min(size, MAX_HEADER_BYTES, len(head) * _GROWTH)) from exc
        with img:
            return _info(img, fmt, head=head, tail=tail, size=size, limits=limits)


def _info(img: Image.Image, fmt: str, *, head: bytes, tail: bytes, size: int, limits: Limits) -> ImageInfo:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise CorruptImage(f"the {fmt} header declares {width}x{height} pixels")
    check_pixels(width, height, limits)
    if not formats.looks_complete(fmt, tail, size):
        raise CorruptImage(f"the {fmt} data is truncated (its end marker is missing)")
    exif = _exif_summary(img)
    orientation = exif.get("orientation", 1)
    if fmt == "TIFF":
        # Pillow's TIFF reader reports the upright size and applies the orientation itself
        # while loading, so none is left for ``imaging.decode`` to apply.
        orientation = 1
    check_dimensions(width, height, orientation, limits)
    return ImageInfo(
        format=fmt,
        width=width,
        height=height,
        mode=img.mode,
        frames=imaging.count_frames(head, fmt),
        orientation=orientation,
        has_icc=bool(img.info.get("icc_profile")),
        exif=exif,
    )


def _exif_summary(img: Image.Image) -> ExifSummary:
    summary = ExifSummary()
    exif = imaging.header_exif(img)
    fields = {
        ExifTags.Base.Make: "make",
        ExifTags.Base.Model: "model",
        ExifTags.Base.DateTime: "taken",
    }
    try:
        for tag, name in fields.items():
            value = exif.get(tag)
            if isinstance(value, str) and value.strip("\x00 "):
                summary[name] = value.strip("\x00 ")[:64]  # type: ignore[literal-required]
        orientation = exif.get(ExifTags.Base.Orientation)
        if isinstance(orientation, int) and 1 <= orientation <= 8:
            summary["orientation"] = orientation
        if ExifTags.Base.GPSInfo in exif:
            summary["has_gps"] = True
    except Exception:  # noqa: BLE001 - a broken EXIF block must not reject a decodable image
        return summary
    try:
        taken = exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.DateTimeOriginal)
    except Exception:  # noqa: BLE001 - see above
        taken = None
    if isinstance(taken, str) and taken.strip("\x00 "):
        summary["taken"] = taken.strip("\x00 ")[:32]
    return summary
