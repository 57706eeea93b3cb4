"""Format sniffing from content (magic bytes), never from the file name."""

from __future__ import annotations

from typing import Final

#: Formats the pipeline decodes, by the name Pillow gives them.
READABLE: Final = frozenset({"JPEG", "PNG", "WEBP", "GIF", "TIFF", "AVIF"})

#: Non-image formats we name in errors, so users learn what they uploaded.
_KNOWN_OTHERS: Final = (
    (b"%PDF-", "PDF"),
    (b"PK\x03\x04", "ZIP"),
    (b"PK\x05\x06", "ZIP"),
    (b"\x1f\x8b", "GZIP"),
    (b"BM", "BMP"),
    (b"8BPS", "PSD"),
    (b"<svg", "SVG"),
    (b"<?xml", "XML"),
)

CONTENT_TYPES: Final = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
    "AVIF": "image/avif",
}

#: Bytes that must end a complete file of this format (checked against the object's tail).
_TRAILERS: Final = {
    "PNG": b"IEND\xaeB`\x82",
    "GIF": b";",
}


def sniff(head: bytes) -> str | None:
    """Return the image format named by the first bytes, or None when it is not one we read."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[4:8] == b"ftyp" and _is_avif_brand(head):
        return "AVIF"
    return None


def _is_avif_brand(head: bytes) -> bool:
    size = int.from_bytes(head[0:4], "big")
    box = head[8 : max(16, min(size, len(head)))]
    brands = {box[i : i + 4] for i in range(0, len(box) - 3, 4)}
    return bool(brands & {b"avif", b"avis"})


def describe_other(head: bytes) -> str:
    """Name a non-image content for an error message."""
    stripped = head.lstrip()
    for magic, name in _KNOWN_OTHERS:
        if stripped.startswith(magic):
            return name
    if head[4:8] == b"ftyp":
        return f"ISO media ({head[8:12].decode('ascii', 'replace')})"
    sample = head[:512]
    if sample and all(32 <= b < 127 or b in (9, 10, 13) for b in sample):
        return "text"
    return "unknown binary data"


def looks_complete(fmt: str, tail: bytes, size: int) -> bool:
    """Check the end of an object for the marker that closes a complete file.

    ``tail`` is the last bytes of the object (up to a few KiB), ``size`` its length.
    JPEG may carry trailing bytes after its end-of-image marker (some cameras
    append data), so the marker only has to appear in the tail.
    """
    if fmt == "JPEG":
        return b"\xff\xd9" in tail
    if fmt == "WEBP":
        return True  # the RIFF length is checked against the size in ``riff_size_matches``
    trailer = _TRAILERS.get(fmt)
    return trailer is None or tail.rstrip(b"\x00").endswith(trailer)


def riff_size_matches(head: bytes, size: int) -> bool:
    """A WebP's RIFF header states the file length; a truncated file is shorter."""
    declared = int.from_bytes(head[4:8], "little") + 8
    return size >= declared
