"""Format sniffing from content (magic bytes), never from the file name."""

from __future__ import annotations

import re
from collections.abc import Callable
from struct import Struct
from typing import Final

from pipeline import heif

#: Formats the pipeline decodes, by the name Pillow gives them (HEIF: pillow-heif's reader, HEVC-coded).
READABLE: Final = frozenset({"JPEG", "PNG", "WEBP", "GIF", "TIFF", "AVIF", "BMP", "HEIF"})

#: Non-image formats we name in errors, so users learn what they uploaded.
_KNOWN_OTHERS: Final = (
    (b"%PDF-", "PDF"),
    (b"PK\x03\x04", "ZIP"),
    (b"PK\x05\x06", "ZIP"),
    (b"\x1f\x8b", "GZIP"),
    (b"8BPS", "PSD"),
    (b"<svg", "SVG"),
    (b"<?xml", "XML"),
)

#: The sizes of a BMP's info header (after the 14-byte file header), which name its version: OS/2 1.x (12),
#: OS/2 2.x (16, 64), Windows 3.x (40) and its extensions (52, 56), Windows 95 (108) and 98 (124).
_BMP_HEADERS: Final = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
#: BMP compressions: none, RLE8, RLE4, bit fields (uncompressed, with channel masks).
_BMP_RAW, _BMP_RLE8, _BMP_RLE4, _BMP_BITFIELDS = 0, 1, 2, 3

CONTENT_TYPES: Final = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
    "AVIF": "image/avif",
    "BMP": "image/bmp",
    "HEIF": "image/heif",
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
    if head[4:8] == b"ftyp":
        return _iso_format(head)
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_HEADERS:
        return "BMP"
    return None


def _iso_format(head: bytes) -> str | None:
    """AVIF or HEIF, from the brands of an ISO base media file's ftyp box (both are HEIF containers; HEIF
    here is HEVC-coded). A major brand that names the coding decides; then an AVIF brand anywhere (as
    Pillow's AVIF reader takes it); then an HEVC brand next to a structural major brand (mif1, msf1)."""
    size = int.from_bytes(head[0:4], "big")
    major = head[8:12]
    compatible = head[16 : max(16, min(size, len(head)))]
    brands = {major} | {compatible[i : i + 4] for i in range(0, len(compatible) - 3, 4)}
    if major in heif.HEVC_BRANDS:
        return "HEIF"
    if brands & {b"avif", b"avis"}:
        return "AVIF"
    if major in heif.STRUCTURAL_BRANDS and brands & heif.HEVC_BRANDS:
        return "HEIF"
    return None


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
    if fmt in ("WEBP", "BMP", "HEIF"):
        return True  # they state their length: ``riff_size_matches``, ``bmp_size_matches``, a HEIF's boxes
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


def _u32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "little")


def bmp_size_matches(head: bytes, size: int) -> bool:
    """A BMP states its file length, where its pixels start and, through its size, depth and compression,
    how long they are: uncompressed rows (bit fields included) are padded to 4 bytes, RLE data has its
    length in the header. A truncated BMP is shorter than one of them. A length of 0 (some writers leave
    the file's or the RLE data's out) is not checked. ``head`` holds the headers (the first 54 bytes)."""
    if len(head) < 26:
        return True  # too short for the headers: Pillow refuses it
    header = _u32(head, 14)
    if header == 12:  # OS/2 1.x: 16-bit sizes, no compression
        width, height, bits = (int.from_bytes(head[at : at + 2], "little") for at in (18, 20, 24))
        compression, data_size = _BMP_RAW, 0
    else:
        width, height = _u32(head, 18), abs(int.from_bytes(head[22:26], "little", signed=True))  # < 0: top-down
        bits, compression = int.from_bytes(head[28:30], "little"), _u32(head, 30)
        data_size = _u32(head, 34)
    if compression in (_BMP_RAW, _BMP_BITFIELDS):
        pixels = (width * bits + 31) // 32 * 4 * height
    else:
        pixels = data_size if compression in (_BMP_RLE8, _BMP_RLE4) else 0
    return size >= _u32(head, 2) and size >= _u32(head, 10) + pixels


def bmp_profile(head: bytes) -> tuple[int, int] | None:
    """Where the ICC profile a BMP embeds lies in the file (start, end): a BITMAPV5HEADER of colour space
    PROFILE_EMBEDDED ('MBED') gives its offset from the header's start and its length. The profile
    usually follows the pixels. None when the BMP embeds none (Pillow's reader ignores it)."""
    if len(head) < 134 or _u32(head, 14) != 124 or head[70:74] != b"DEBM":  # 'MBED', a little-endian number
        return None
    start, length = 14 + _u32(head, 126), _u32(head, 130)
    return (start, start + length) if length else None


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
    IFD chain, an APNG's frames, a WebP's ANMF chunks, the samples of an AVIF sequence's image track, a
    HEIF's top-level images (``heif.Meta.images``, from a meta box that is whole in ``data``). A JPEG is one
    frame (the images an MPO carries after it are previews or depth maps, not frames), and so is a BMP.
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
    moov = heif.box(data, 0, len(data), b"moov")
    if moov is None:
        return 1
    for _, start, end in heif.boxes(data, *moov, b"trak"):
        mdia = heif.box(data, start, end, b"mdia")
        hdlr = mdia and heif.box(data, *mdia, b"hdlr")
        if mdia is None or hdlr is None or data[hdlr[0] + 8 : hdlr[0] + 12] != b"pict":
            continue
        minf = heif.box(data, *mdia, b"minf")
        stbl = minf and heif.box(data, *minf, b"stbl")
        sizes = stbl and (heif.box(data, *stbl, b"stsz") or heif.box(data, *stbl, b"stz2"))
        if sizes is None:
            return 0
        return int.from_bytes(data[sizes[0] + 8 : sizes[0] + 12], "big")
    return 0


_FRAME_COUNTERS: Final[dict[str, Callable[[bytes], int]]] = {
    "GIF": _gif_frames,
    "TIFF": _tiff_pages,
    "PNG": _png_frames,
    "WEBP": _webp_frames,
    "AVIF": _avif_frames,
    "HEIF": heif.images,
}
