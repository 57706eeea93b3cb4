"""Format sniffing from content (magic bytes), never from the file name."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from struct import Struct
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


def webp_canvas(head: bytes) -> tuple[int, int] | None:
    """The canvas size a WebP declares in its first chunk (VP8X, VP8L or VP8), or None when it cannot be read."""
    kind = head[12:16]
    if kind == b"VP8X" and len(head) >= 30:
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    if kind == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(head[28:30], "little") & 0x3FFF
    return None


#: The next marker in JPEG data: 0xFF followed by anything but 0x00 (a stuffed 0xFF byte in entropy-coded
#: data), RST0-RST7 (restart markers, part of the entropy-coded data) or 0xFF (a fill byte before a marker).
_JPEG_MARKER: Final = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_SOS: Final = 0xDA
_EOI: Final = 0xD9
#: Markers without a length field (besides RST0-7, which only occur in entropy-coded data).
_STANDALONE: Final = frozenset({0x01, 0xD8})


def jpeg_scan_count(data: bytes, stop_after: int | None = None) -> int:
    """The number of scans (SOS markers) in the first image of a JPEG, from its marker structure alone.

    Walks the marker segments by their lengths from the SOI; after each SOS, skips the entropy-coded
    data to the next marker (stuffed 0xFF00 bytes and RST markers belong to the data). Stops at the
    EOI, so the images an MPO carries after the first are not counted; at the end of ``data`` (a head
    gives the scans in it); at a segment length below 2 (no valid JPEG continues past one); and, with
    ``stop_after``, as soon as the count exceeds it.
    """
    scans = 0
    at = 2
    while (found := _JPEG_MARKER.search(data, at)) is not None:
        at = found.start()
        marker = data[at + 1]
        if marker == _EOI:
            break
        if marker in _STANDALONE:
            at += 2
            continue
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if length < 2:
            break
        at += 2 + length
        if marker == _SOS:
            scans += 1
            if stop_after is not None and scans > stop_after:
                break
    return scans


def frame_count(data: bytes, fmt: str) -> int:
    """The number of frames (pages) of an image of format ``fmt`` (a name ``sniff`` returns), at least 1.

    Read from the container alone, never from pixel data: GIF image descriptors, the pages of a TIFF's
    IFD chain, an APNG's frames, a WebP's ANMF chunks, the samples of an AVIF sequence's image track.
    A JPEG is one frame (the images an MPO carries after it are previews or depth maps, not frames).
    Never raises: damaged or cut data gives the frames found before the damage.
    """
    counter = _FRAME_COUNTERS.get(fmt)
    return max(1, counter(data)) if counter else 1


def _gif_frames(data: bytes) -> int:
    if len(data) < 13:
        return 0
    frames = 0
    at = 13 + _gif_palette_size(data[10])
    while at < len(data):
        block = data[at]
        if block == 0x2C:  # an image descriptor: position, size, flags, then the image data
            if at + 10 > len(data):
                break
            frames += 1
            at = _gif_skip_sub_blocks(data, at + 11 + _gif_palette_size(data[at + 9]))
        elif block == 0x21:  # an extension: its label, then sub-blocks
            at = _gif_skip_sub_blocks(data, at + 2)
        else:  # the trailer (0x3B), or anything that is not GIF
            break
    return frames


def _gif_palette_size(flags: int) -> int:
    return 3 * (2 << (flags & 7)) if flags & 0x80 else 0


def _gif_skip_sub_blocks(data: bytes, at: int) -> int:
    """The offset after a chain of data sub-blocks (each a length byte and that many bytes, ending with 0)."""
    while at < len(data):
        size = data[at]
        at += 1 + size
        if size == 0:
            return at
    return len(data)


def _tiff_pages(data: bytes) -> int:
    """The distinct IFDs in a TIFF's chain. Where each IFD lies after the one before (as writers put them)
    the chain cannot loop and is walked once; otherwise Brent's cycle detection counts the IFDs up to
    where the chain repeats itself, in constant memory (a crafted file can chain a million IFDs)."""
    ifd = Struct("<H" if data[:2] == b"II" else ">H")
    offset = Struct("<I" if data[:2] == b"II" else ">I")
    last = len(data) - 2
    end = -1  # past the last IFD: a chain that ends loops here

    def following(at: int) -> int:
        if at == end:
            return end
        stop = at + 2 + 12 * ifd.unpack_from(data, at)[0]
        after: int = offset.unpack_from(data, stop)[0] if stop + 4 <= len(data) else 0
        return after if 8 <= after <= last else end

    first = offset.unpack_from(data, 4)[0] if len(data) >= 8 else 0
    first = first if 8 <= first <= last else end
    pages, at = 0, first
    while at != end:
        pages += 1
        after = following(at)
        if after != end and after <= at:
            return _distinct(first, following, end)
        at = after
    return pages


def _distinct(first: int, following: Callable[[int], int], end: int) -> int:
    """The distinct values of the sequence ``first``, ``following(first)``, ... which ends in a loop (at
    ``end``, a loop of one, for a sequence that stops), by Brent's cycle detection."""
    power = loop = 1
    slow, fast = first, following(first)
    while slow != fast:
        if power == loop:
            slow, power, loop = fast, power * 2, 0
        fast = following(fast)
        loop += 1
    slow = fast = first
    for _ in range(loop):
        fast = following(fast)
    before = 0
    while slow != fast:
        slow, fast = following(slow), following(fast)
        before += 1
    return before + loop - (slow == end)


def _png_frames(data: bytes) -> int:
    """An APNG's frames: its fcTL chunks, plus the default image when it is not the first frame (no fcTL
    before IDAT), as Pillow counts them. A PNG without acTL is one image."""
    animated = default_image = False
    controls = 0
    at = 8
    while at + 8 <= len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        if kind == b"acTL":
            animated = True
        elif kind == b"fcTL":
            controls += 1
        elif kind == b"IDAT" and controls == 0:
            default_image = True
        elif kind == b"IEND":
            break
        at += 12 + length
    return controls + default_image if animated else 1


def _webp_frames(data: bytes) -> int:
    frames = 0
    at = 12
    while at + 8 <= len(data):
        size = int.from_bytes(data[at + 4 : at + 8], "little")
        frames += data[at : at + 4] == b"ANMF"
        at += 8 + size + (size & 1)
    return frames


def _avif_frames(data: bytes) -> int:
    """The samples of the first image track ('pict' handler) of an AVIF sequence; a still AVIF has none
    (its image is an item, not a track) and counts as one."""
    moov = _box(data, 0, len(data), b"moov")
    if moov is None:
        return 1
    for start, end in _boxes(data, *moov, b"trak"):
        mdia = _box(data, start, end, b"mdia")
        hdlr = mdia and _box(data, *mdia, b"hdlr")
        if mdia is None or hdlr is None or data[hdlr[0] + 8 : hdlr[0] + 12] != b"pict":
            continue
        minf = _box(data, *mdia, b"minf")
        stbl = minf and _box(data, *minf, b"stbl")
        sizes = stbl and (_box(data, *stbl, b"stsz") or _box(data, *stbl, b"stz2"))
        if sizes is None:
            return 0
        return int.from_bytes(data[sizes[0] + 8 : sizes[0] + 12], "big")
    return 0


def _boxes(data: bytes, start: int, end: int, kind: bytes) -> Iterator[tuple[int, int]]:
    """The payloads (start, end) of the ISO BMFF boxes of type ``kind`` between ``start`` and ``end``."""
    end = min(end, len(data))
    at = start
    while at + 8 <= end:
        size = int.from_bytes(data[at : at + 4], "big")
        header = 8
        if size == 1:
            size, header = int.from_bytes(data[at + 8 : at + 16], "big"), 16
        elif size == 0:
            size = end - at
        if size < header:
            return
        if data[at + 4 : at + 8] == kind:
            yield at + header, min(at + size, end)
        at += size


def _box(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    return next(_boxes(data, start, end, kind), None)


_FRAME_COUNTERS: Final[dict[str, Callable[[bytes], int]]] = {
    "GIF": _gif_frames,
    "TIFF": _tiff_pages,
    "PNG": _png_frames,
    "WEBP": _webp_frames,
    "AVIF": _avif_frames,
}
