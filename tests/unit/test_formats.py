"""Format sniffing from magic bytes, naming of non-images, and end-of-file checks."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile

import pytest

from pipeline import formats
from tests import images

PHOTO = images.photo((48, 32))


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("photo.jpg", b"not really")
    return buf.getvalue()


def _empty_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w"):
        pass
    return buf.getvalue()


# -- sniff -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(images.encode(PHOTO, "JPEG"), "JPEG", id="jpeg"),
        pytest.param(images.encode(PHOTO.convert("L"), "JPEG"), "JPEG", id="jpeg-grey"),
        pytest.param(images.encode(PHOTO.convert("CMYK"), "JPEG"), "JPEG", id="jpeg-cmyk"),
        pytest.param(images.encode(PHOTO, "JPEG", progressive=True), "JPEG", id="jpeg-progressive"),
        pytest.param(images.encode(PHOTO, "JPEG", exif=images.exif(make="X")), "JPEG", id="jpeg-exif"),
        pytest.param(images.encode(PHOTO, "PNG"), "PNG", id="png"),
        pytest.param(images.encode(images.in_mode("I;16", (48, 32)), "PNG"), "PNG", id="png-16bit"),
        pytest.param(images.encode(PHOTO, "WEBP"), "WEBP", id="webp-lossy"),
        pytest.param(images.encode(PHOTO, "WEBP", lossless=True), "WEBP", id="webp-lossless"),
        pytest.param(images.encode(images.in_mode("RGBA", (48, 32)), "WEBP"), "WEBP", id="webp-alpha"),
        pytest.param(images.animated_webp(), "WEBP", id="webp-animated"),
        pytest.param(images.encode(PHOTO, "GIF"), "GIF", id="gif"),
        pytest.param(images.animated_gif(), "GIF", id="gif-animated"),
        pytest.param(b"GIF87a" + b"\x00" * 16, "GIF", id="gif87a"),
        pytest.param(images.encode(PHOTO, "TIFF"), "TIFF", id="tiff"),
        pytest.param(b"II*\x00\x08\x00\x00\x00", "TIFF", id="tiff-little-endian"),
        pytest.param(b"MM\x00*\x00\x00\x00\x08", "TIFF", id="tiff-big-endian"),
        pytest.param(images.encode(PHOTO, "AVIF"), "AVIF", id="avif"),
        pytest.param(images.encode(images.in_mode("RGBA", (48, 32)), "AVIF"), "AVIF", id="avif-alpha"),
        pytest.param(images.ftyp(b"avif", [b"mif1", b"miaf"]), "AVIF", id="avif-major-brand"),
        pytest.param(images.ftyp(b"mif1", [b"mif1", b"avif"]), "AVIF", id="avif-compatible-brand"),
        pytest.param(images.ftyp(b"avis", [b"avis", b"msf1"]), "AVIF", id="avif-sequence"),
    ],
)
def test_sniff_reads_the_format_from_the_content(data: bytes, expected: str) -> None:
    assert formats.sniff(data) == expected
    assert expected in formats.READABLE
    assert formats.CONTENT_TYPES[expected] == f"image/{expected.lower()}"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff\xd8", id="jpeg-soi-only"),
        pytest.param(b"\x89PNG\r\n", id="png-signature-cut"),
        pytest.param(b"RIFF\x00\x00\x00\x00WAVEfmt ", id="riff-wave"),
        pytest.param(b"GIF88a" + b"\x00" * 10, id="gif-wrong-version"),
        pytest.param(b"%PDF-1.7\n", id="pdf"),
        pytest.param(_zip(), id="zip"),
        pytest.param(gzip.compress(b"hello"), id="gzip"),
        pytest.param(images.encode(PHOTO, "BMP"), id="bmp"),
        pytest.param(images.ftyp(b"heic", [b"mif1", b"heic"]), id="heic"),
        pytest.param(images.ftyp(b"isom", [b"isom", b"mp41"]), id="mp4"),
        pytest.param(b"hello, world\n", id="text"),
        pytest.param(b"<svg xmlns='http://www.w3.org/2000/svg'/>", id="svg"),
    ],
)
def test_sniff_rejects_everything_else(data: bytes) -> None:
    assert formats.sniff(data) is None


def test_sniff_ignores_the_rest_of_a_long_head() -> None:
    data = images.encode(images.photo((300, 200)), "PNG")
    assert formats.sniff(data[:16]) == formats.sniff(data) == "PNG"


# -- describe_other ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "name"),
    [
        pytest.param(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF", id="pdf"),
        pytest.param(_zip(), "ZIP", id="zip"),
        pytest.param(_empty_zip(), "ZIP", id="zip-empty"),
        pytest.param(gzip.compress(b"x" * 100), "GZIP", id="gzip"),
        pytest.param(images.encode(PHOTO, "BMP"), "BMP", id="bmp"),
        pytest.param(b"8BPS\x00\x01" + b"\x00" * 20, "PSD", id="psd"),
        pytest.param(b"  \n<svg width='10' height='10'></svg>", "SVG", id="svg-after-whitespace"),
        pytest.param(b'<?xml version="1.0"?><svg/>', "XML", id="xml"),
        pytest.param(images.ftyp(b"heic", [b"mif1", b"heic"]), "ISO media (heic)", id="heic"),
        pytest.param(images.ftyp(b"isom", [b"isom"]), "ISO media (isom)", id="mp4"),
        pytest.param(b"Dear user,\r\n\tthis is a letter.\n" * 40, "text", id="text"),
        pytest.param(b"name,width\nphoto.jpg,1024\n", "text", id="csv"),
        pytest.param(b"\x00\x01\x02\x03\xfe\xfd", "unknown binary data", id="binary"),
        pytest.param(b"", "unknown binary data", id="empty"),
    ],
)
def test_describe_other_names_the_content(data: bytes, name: str) -> None:
    assert formats.describe_other(data) == name


def test_describe_other_looks_at_text_only_in_the_first_bytes() -> None:
    assert formats.describe_other(b"a" * 512 + b"\x00\xff") == "text"
    assert formats.describe_other(b"a" * 100 + b"\x00\xff") == "unknown binary data"


# -- looks_complete / riff_size_matches --------------------------------------------------------

JPEG = images.encode(images.photo((64, 48)), "JPEG")
PNG = images.encode(images.photo((64, 48)), "PNG")
GIF = images.encode(images.photo((64, 48)), "GIF")
WEBP = images.encode(images.photo((64, 48)), "WEBP")


def _tail(data: bytes) -> bytes:
    return data[-4096:]


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        ("JPEG", JPEG),
        ("JPEG", JPEG + b"camera trailer data" * 10),
        ("PNG", PNG),
        ("PNG", PNG + b"\x00" * 300),
        ("GIF", GIF),
        ("WEBP", WEBP),
        ("TIFF", images.encode(PHOTO, "TIFF")),
        ("AVIF", images.encode(PHOTO, "AVIF")),
    ],
)
def test_looks_complete_accepts_whole_files(fmt: str, data: bytes) -> None:
    assert formats.looks_complete(fmt, _tail(data), len(data))


@pytest.mark.parametrize(("fmt", "data"), [("JPEG", JPEG), ("PNG", PNG), ("GIF", GIF)])
@pytest.mark.parametrize("cut", [1, 2, 10, 100])
def test_looks_complete_rejects_a_missing_end_marker(fmt: str, data: bytes, cut: int) -> None:
    truncated = data[:-cut]
    assert not formats.looks_complete(fmt, _tail(truncated), len(truncated))


def test_riff_size_matches_the_declared_length() -> None:
    assert formats.riff_size_matches(WEBP[:64], len(WEBP))
    assert formats.riff_size_matches(WEBP[:64], len(WEBP) + 10)  # trailing bytes are harmless
    for cut in (1, 10, len(WEBP) // 2):
        assert not formats.riff_size_matches(WEBP[:64], len(WEBP) - cut)


# -- WebP canvas -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(images.encode(images.photo((300, 200)), "WEBP"), id="vp8"),
        pytest.param(images.encode(images.photo((300, 200)), "WEBP", lossless=True), id="vp8l"),
        pytest.param(images.encode(images.photo((300, 200)), "WEBP", exif=images.exif(make="X")), id="vp8x"),
        pytest.param(images.animated_webp(2, (300, 200)), id="animated"),
    ],
)
def test_webp_canvas_is_read_from_the_first_chunk(data: bytes) -> None:
    assert formats.webp_canvas(data[:30]) == images.reopen(data).size == (300, 200)


@pytest.mark.parametrize("head", [b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"RIFF\x00\x00\x00\x00WEBPVP8L" + bytes(13), b""])
def test_webp_canvas_of_what_is_not_a_webp_header(head: bytes) -> None:
    assert formats.webp_canvas(head) is None


# -- frames of a TIFF --------------------------------------------------------------------------


def _tiff(chain: list[int], order: str = "<") -> bytes:
    """A TIFF header pointing at IFD 8, then one-entry IFDs (18 bytes each) whose next offsets are ``chain``."""
    magic = b"II*\x00" if order == "<" else b"MM\x00*"
    ifds = b"".join(struct.pack(order + "H", 1) + bytes(12) + struct.pack(order + "I", nxt) for nxt in chain)
    return magic + struct.pack(order + "I", 8) + ifds


@pytest.mark.parametrize(
    ("chain", "pages"),
    [
        ([0], 1),
        ([26, 0], 2),
        ([26, 44, 0], 3),
        ([44, 0, 26], 3),  # the chain goes back and forth: 8, 44, 26
        ([8], 1),  # an IFD that points at itself
        ([26, 44, 8], 3),  # a loop back to the first
        ([26, 44, 26], 3),  # a loop back to the second
        ([26, 44, 10**6], 3),  # past the end
        ([26, 5, 0], 2),  # inside the header
    ],
)
@pytest.mark.parametrize("order", ["<", ">"])
def test_tiff_pages_follow_the_ifd_chain(chain: list[int], pages: int, order: str) -> None:
    assert formats.frame_count(_tiff(chain, order), "TIFF") == pages


def test_a_long_tiff_chain_is_counted_in_constant_memory() -> None:
    count = 100_000
    forward = _tiff([8 + 18 * (i + 1) for i in range(count - 1)] + [0])
    assert formats.frame_count(forward, "TIFF") == count
    looping = _tiff([8 + 18 * (i + 1) for i in range(count - 1)] + [8 + 18 * 500])
    assert formats.frame_count(looping, "TIFF") == count


@pytest.mark.parametrize("fmt", sorted(formats.READABLE))
@pytest.mark.parametrize("data", [b"", b"\x00", bytes(100), b"\xff" * 100])
def test_frame_count_of_junk_is_one(fmt: str, data: bytes) -> None:
    assert formats.frame_count(data, fmt) == 1
