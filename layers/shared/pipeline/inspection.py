"""Validation of an upload from its header and tail, before any pixel is decoded."""

from __future__ import annotations

import io
import warnings
from typing import Final

from PIL import ExifTags, Image

from pipeline import encoding, formats, heif, imaging
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
#: The most bytes read for the metadata before the pixels (JPEG, PNG, GIF, TIFF, BMP, a HEIF's meta box
#: and EXIF). A JPEG's header is the largest any real file has: an ICC profile may fill 255 APP2 segments
#: (16.7 MB, the most the format can hold), next to APP1 segments of EXIF and XMP (64 KiB each). 24 MiB
#: holds all of that with room to spare, while real headers are kilobytes (EXIF up to 64 KiB, profiles of
#: a few KB).
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
    decodes a pixel: the header is read by Pillow's ``Image.open`` (pillow-heif's for a HEIF), which stops
    before the pixel data, and the EXIF by ``imaging.header_exif``. Raises NeedMoreBytes when the header
    extends past ``head``, CorruptImage when it extends past MAX_HEADER_BYTES. A WebP or an AVIF is read
    whole: unless ``head`` is the whole object, NeedMoreBytes asks for it (after the checks its first
    bytes allow: a WebP's RIFF size and canvas). A HEIF is read to the end of its meta box (``_check_heif``).
    A JPEG with more than ``imaging.MAX_JPEG_SCANS`` scans in ``head`` is refused. A BMP, a WebP and a HEIF
    state their length: one shorter than it says is truncated.

    ``frames`` is the number of frames whose headers are in ``head``: the true count when ``head`` is the
    whole object (always for WebP and AVIF) or holds a HEIF's meta box, a lower bound otherwise
    (``imaging.count_frames`` on the whole object gives it).
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
    if fmt == "HEIF":
        _check_heif(head, size, limits)
        heif.register()  # pillow-heif's reader, imported on the first HEIF only
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


def _check_heif(head: bytes, size: int, limits: Limits) -> None:
    """Read a HEIF's layout from its boxes before libheif reads it. Its top-level boxes (ftyp, meta, the
    media data in mdat) must end within the object, and the meta box, which describes the images, is read
    whole: up to MAX_HEADER_BYTES, or the whole object when it follows the media data. Then the data of
    every item must lie within the object, and the primary image's coded size within the pixel limit; the
    EXIF item is read when it ends within MAX_HEADER_BYTES (libheif writes it after the pixels)."""
    tops = list(heif.top_level(head, size))
    if any(end > size for _, _, end in tops):
        raise CorruptImage("the HEIF data is truncated (a box ends past the end of the object)")
    kinds = [kind for kind, _, _ in tops]
    media_first = b"mdat" in kinds and kinds.index(b"mdat") < [*kinds, b"meta"].index(b"meta")
    bound = size if media_first else min(size, MAX_HEADER_BYTES)
    meta = next(((start, end) for kind, start, end in tops if kind == b"meta"), None)
    if meta is None and (len(head) >= size or not tops or tops[-1][2] + 16 <= len(head)):
        # The whole object, or a box too short for its own header where another one would start.
        raise CorruptImage("the HEIF has no meta box (it describes no image), or its boxes cannot be read")
    if meta is None or meta[1] > len(head):
        # Read to the meta box's end: past the media data, or on past the next box's header.
        wanted = meta[1] if meta else size if media_first else max(tops[-1][2] + 16, len(head) * _GROWTH)
        if min(size, wanted) > bound:
            raise CorruptImage(f"the metadata before the pixels is larger than {MAX_HEADER_BYTES} bytes")
        raise NeedMoreBytes(min(size, wanted))
    described = heif.parse(head, *meta)
    if described.data_end() > size:
        raise CorruptImage("the HEIF data is truncated (its images' data ends past the end of the object)")
    coded = described.primary_size()
    if coded:
        check_pixels(*coded, limits)
    exif_end = described.data_end(b"Exif")
    if len(head) < exif_end <= bound:
        raise NeedMoreBytes(exif_end)


def _info(img: Image.Image, fmt: str, *, head: bytes, tail: bytes, size: int, limits: Limits) -> ImageInfo:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise CorruptImage(f"the {fmt} header declares {width}x{height} pixels")
    check_pixels(width, height, limits)
    if not formats.looks_complete(fmt, tail, size):
        raise CorruptImage(f"the {fmt} data is truncated (its end marker is missing)")
    if fmt == "BMP" and not formats.bmp_size_matches(head, size):
        raise CorruptImage("the BMP data is truncated (shorter than its headers say)")
    exif = _exif_summary(img)
    orientation = exif.get("orientation", 1)
    if fmt == "HEIF":
        # pillow-heif resets the EXIF orientation (informative in HEIF): the summary gives the EXIF's own.
        exif.pop("orientation", None)
        original = img.info.get("original_orientation")
        if isinstance(original, int) and 1 <= original <= 8:
            exif["orientation"] = original
    if fmt in ("TIFF", "HEIF"):
        # Pillow's TIFF reader reports the upright size and applies the orientation itself while loading,
        # as libheif applies a HEIF's transformations (irot, imir): none is left for ``imaging.decode``.
        orientation = 1
    check_dimensions(width, height, orientation, limits)
    return ImageInfo(
        format=fmt,
        width=width,
        height=height,
        mode=img.mode,
        frames=imaging.count_frames(head, fmt),
        orientation=orientation,
        has_icc=bool(img.info.get("icc_profile")) or (fmt == "BMP" and formats.bmp_profile(head) is not None),
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
