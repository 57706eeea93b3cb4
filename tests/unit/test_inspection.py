"""Validation from the head and tail of an object, before any pixel is decoded."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
from collections.abc import Iterator

import pytest
from PIL import Image, ImageFile, _imaging

from pipeline import heif, inspection
from pipeline.errors import (
    CorruptImage,
    EmptyObject,
    ObjectTooLarge,
    TooManyPixels,
    UnsupportedDimensions,
    UnsupportedFormat,
    ValidationError,
)
from pipeline.inspection import HEAD_BYTES, TAIL_BYTES, NeedMoreBytes
from pipeline.models import ImageInfo
from pipeline.settings import EncodeSettings, Limits, RenditionSettings
from tests import images
from tests.unit import test_formats

LIMITS = Limits(max_upload_bytes=50 * 1024 * 1024, max_pixels=50_000_000, upload_prefix="uploads/")


def inspect(data: bytes, head_bytes: int = HEAD_BYTES, limits: Limits = LIMITS) -> ImageInfo:
    """Inspect as the validate step does: the first ``head_bytes`` and the last TAIL_BYTES of ``data``."""
    return inspection.inspect(data[:head_bytes], data[-TAIL_BYTES:], len(data), limits)


def inspect_growing(data: bytes, start: int = HEAD_BYTES, limits: Limits = LIMITS) -> tuple[ImageInfo, list[int]]:
    """The validate step's loop: start with HEAD_BYTES, read what NeedMoreBytes asks for.

    Returns the info and the sizes of the reads.
    """
    reads = [min(len(data), start)]
    while True:
        try:
            return inspect(data, reads[-1], limits), reads
        except NeedMoreBytes as more:
            wanted = more.wanted
        assert reads[-1] < wanted <= len(data), "NeedMoreBytes must ask for more, and no more than there is"
        reads.append(wanted)


@pytest.fixture
def no_pixel_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything decodes pixels."""

    def forbidden(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", forbidden)


# -- size and format ---------------------------------------------------------------------------


def test_check_size() -> None:
    inspection.check_size(1, LIMITS)
    inspection.check_size(LIMITS.max_upload_bytes, LIMITS)
    with pytest.raises(EmptyObject, match="0 bytes"):
        inspection.check_size(0, LIMITS)
    with pytest.raises(ObjectTooLarge, match=str(LIMITS.max_upload_bytes)):
        inspection.check_size(LIMITS.max_upload_bytes + 1, LIMITS)


def test_zero_bytes_is_an_empty_object() -> None:
    with pytest.raises(EmptyObject):
        inspection.inspect(b"", b"", 0, LIMITS)


def test_the_size_is_checked_before_the_content() -> None:
    head = images.encode(images.photo((32, 24)), "JPEG")
    with pytest.raises(ObjectTooLarge):
        inspection.inspect(head, b"", LIMITS.max_upload_bytes + 1, LIMITS)


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.txt", "hello " * 100)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        pytest.param(b"just some words, not a picture\n" * 20, "text", id="text"),
        pytest.param(b'{"image": "photo.jpg"}', "text", id="json"),
        pytest.param(b"%PDF-1.7\n%\xb5\xb5\xb5\xb5\n1 0 obj\n<<>>\nendobj\n%%EOF\n", "PDF", id="pdf"),
        pytest.param(_zip(), "ZIP", id="zip"),
        pytest.param(gzip.compress(b"tar data" * 10), "GZIP", id="gzip"),
        pytest.param(b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "SVG", id="svg"),
        pytest.param(images.ftyp(b"mif1", [b"mif1", b"miaf"]), "ISO media (mif1)", id="heif-of-no-known-coding"),
        pytest.param(images.ftyp(b"isom", [b"isom", b"mp41"]), "ISO media (isom)", id="mp4"),
        pytest.param(bytes(range(256)), "unknown binary data", id="binary"),
    ],
)
def test_unsupported_content_is_named(data: bytes, kind: str) -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        inspect(data)
    assert f"the content is {kind}," in str(caught.value)
    assert isinstance(caught.value, ValidationError)


def test_sniff_format() -> None:
    assert inspection.sniff_format(images.encode(images.photo((8, 8)), "PNG")) == "PNG"
    with pytest.raises(UnsupportedFormat, match="PDF"):
        inspection.sniff_format(b"%PDF-1.5")


# -- what is read ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "fmt", "opened_as"),
    [
        ("RGB", "JPEG", "RGB"),
        ("L", "JPEG", "L"),
        ("CMYK", "JPEG", "CMYK"),
        ("RGB", "PNG", "RGB"),
        ("RGBA", "PNG", "RGBA"),
        ("L", "PNG", "L"),
        ("LA", "PNG", "LA"),
        ("P", "PNG", "P"),
        ("PT", "PNG", "P"),
        ("1", "PNG", "1"),
        ("I;16", "PNG", "I;16"),
        ("RGB", "WEBP", "RGB"),
        ("RGBA", "WEBP", "RGBA"),
        ("RGB", "GIF", "P"),
        ("RGB", "TIFF", "RGB"),
        ("CMYK", "TIFF", "CMYK"),
        ("I;16", "TIFF", "I;16"),
        ("RGB", "AVIF", "RGB"),
        ("RGBA", "AVIF", "RGBA"),
        ("RGB", "BMP", "RGB"),
        ("RGBA", "BMP", "RGB"),  # Pillow writes BI_RGB, whose fourth byte is not alpha
        ("L", "BMP", "L"),
        ("P", "BMP", "P"),
        ("1", "BMP", "1"),
        ("RGB", "HEIF", "RGB"),
        ("RGBA", "HEIF", "RGBA"),
        ("L", "HEIF", "L"),
    ],
)
def test_reads_format_size_and_mode(mode: str, fmt: str, opened_as: str) -> None:
    data = images.encode(images.in_mode(mode, (120, 80)), fmt)
    info = inspect(data)
    assert info == {
        "format": fmt,
        "width": 120,
        "height": 80,
        "mode": opened_as,
        "frames": 1,
        "orientation": 1,
        "has_icc": False,
        "exif": {},
    }


def test_reads_only_the_header(no_pixel_decoding: None) -> None:
    data = images.encode(images.photo((400, 300)), "PNG")
    assert inspect(data)["width"] == 400


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "AVIF", "HEIF"])
def test_reports_an_icc_profile(fmt: str) -> None:
    data = images.encode(images.photo((40, 30)), fmt, icc_profile=images.srgb_profile())
    assert inspect(data)["has_icc"] is True


def test_reports_the_icc_profile_a_bmp_embeds() -> None:
    """Pillow ignores it; a V5 header locates it (after the pixels, beyond the first read of a large BMP)."""
    tagged = images.bmp(images.photo((400, 300)), 24, header=124, profile=images.adobe_rgb_profile())
    assert len(tagged) > HEAD_BYTES
    assert inspect(tagged)["has_icc"] is True
    assert inspect(images.bmp(images.photo((40, 30)), 24, header=124))["has_icc"] is False


@pytest.mark.parametrize(
    ("data", "frames"),
    [
        pytest.param(images.animated_gif(3), 3, id="gif"),
        pytest.param(images.animated_gif(7), 7, id="gif-7"),
        pytest.param(images.animated_webp(3), 3, id="webp"),
        pytest.param(images.encode(images.photo((48, 32)), "GIF"), 1, id="gif-still"),
        pytest.param(
            images.encode(images.photo((48, 32)), "HEIF", save_all=True, append_images=[images.photo((48, 32))] * 2),
            3,
            id="heif-three-images",
        ),
        pytest.param(images.encode(images.photo((48, 32)), "HEIF", thumbnails=[16]), 1, id="heif-with-a-thumbnail"),
        pytest.param(images.encode(images.photo((48, 32)), "BMP"), 1, id="bmp"),
    ],
)
def test_reports_frames(data: bytes, frames: int) -> None:
    info = inspect(data)
    assert info["frames"] == frames
    assert (info["width"], info["height"]) == (48, 32)


def test_reads_the_exif_summary() -> None:
    meta = images.exif(orientation=6, make="Canon\x00\x00", model="  EOS R5 ", taken="2024:05:06 07:08:09", gps=True)
    data = images.encode(images.photo((64, 48)), "JPEG", exif=meta)
    info = inspect(data)
    assert info["exif"] == {
        "make": "Canon",
        "model": "EOS R5",
        "taken": "2024:05:06 07:08:09",
        "orientation": 6,
        "has_gps": True,
    }
    assert info["orientation"] == 6
    assert (info["width"], info["height"]) == (64, 48)  # as stored; the orientation says how to show it


def test_exif_strings_are_cut_short() -> None:
    data = images.encode(images.photo((32, 24)), "JPEG", exif=images.exif(make="M" * 500, model="\x00 \x00"))
    summary = inspect(data)["exif"]
    assert summary == {"make": "M" * 64}


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "AVIF"])
def test_reads_exif_from_other_formats(fmt: str) -> None:
    data = images.encode(images.photo((32, 24)), fmt, exif=images.exif(orientation=3, make="Pixel", gps=True))
    info = inspect(data)
    assert info["orientation"] == 3
    assert info["exif"]["make"] == "Pixel"
    assert info["exif"]["has_gps"] is True


@pytest.mark.parametrize("orientation", range(1, 9))
def test_reports_the_orientation_still_to_apply(orientation: int) -> None:
    jpeg = inspect(images.oriented_jpeg(orientation))
    assert jpeg["orientation"] == orientation
    # The stored size: 96x64 upright is stored 64x96 when the orientation swaps the axes.
    assert (jpeg["width"], jpeg["height"]) == ((64, 96) if orientation >= 5 else (96, 64))
    # Pillow's TIFF reader already reports the upright size and applies the orientation on load.
    tiff = inspect(images.oriented_jpeg(orientation, fmt="TIFF"))
    assert (tiff["width"], tiff["height"], tiff["orientation"]) == (96, 64, 1)
    assert tiff["exif"]["orientation"] == orientation
    # A HEIF's transformations (irot, imir) are libheif's to apply: upright size, nothing left to apply; the
    # summary keeps the EXIF's own orientation (pillow-heif resets it, HEIF defines it as informative).
    heic = inspect(images.oriented_jpeg(orientation, fmt="HEIF"))
    assert (heic["width"], heic["height"], heic["orientation"]) == (96, 64, 1)
    assert heic["exif"].get("orientation", 1) == orientation


def test_a_heif_exif_orientation_without_transformations_is_not_applied() -> None:
    """HEIF orients with its transformations; an EXIF orientation alone is informative (libheif ignores it)."""
    stored = images.store_with_orientation(images.markers(), 6)
    data = images.encode(stored, "HEIF", exif=images.exif(orientation=6, make="Phone"))  # an Exif: no irot
    assert b"irot" not in data
    info = inspect(data)
    assert (info["width"], info["height"], info["orientation"]) == (64, 96, 1)
    assert info["exif"] == {"orientation": 6, "make": "Phone"}


@pytest.mark.parametrize("value", [0, 9, 300])
def test_an_invalid_orientation_is_ignored(value: int) -> None:
    data = images.encode(images.photo((32, 24)), "JPEG", exif=images.exif(orientation=value))
    info = inspect(data)
    assert info["orientation"] == 1
    assert "orientation" not in info["exif"]


BROKEN_EXIF = [
    pytest.param(b"", id="empty"),
    pytest.param(b"garbage" * 10, id="no-tiff-header"),
    pytest.param(b"II*\x00\xff\xff\xff\x7f", id="ifd-offset-past-the-end"),
    pytest.param(b"MM\x00*\x00\x00\x00\x08\x00\x05\x01\x12\x00\x03", id="ifd-cut-short"),
    pytest.param(
        b"II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00\x09\x00\x00\x00", id="orientation-9"
    ),
    pytest.param(b"II*\x00\x08\x00\x00\x00\xff\xff" + b"\x01" * 40, id="65535-entries"),
]


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.filterwarnings("ignore:Truncated File Read")
@pytest.mark.parametrize("payload", BROKEN_EXIF)
def test_a_broken_exif_block_does_not_reject_the_image(payload: bytes) -> None:
    info = inspect(images.broken_exif_jpeg(payload))
    assert (info["format"], info["width"], info["height"], info["orientation"]) == ("JPEG", 64, 48, 1)


# -- decompression bombs and pixel limits ------------------------------------------------------


def test_decompression_bomb_is_rejected_before_any_decode(no_pixel_decoding: None) -> None:
    bomb = images.png_bomb(100_000, 100_000)
    assert len(bomb) < 200
    with pytest.raises(TooManyPixels):
        inspect(bomb)


def test_decompression_bomb_with_a_lying_object_size(no_pixel_decoding: None) -> None:
    bomb = images.png_bomb(100_000, 100_000)
    with pytest.raises(TooManyPixels):
        inspection.inspect(bomb, bomb, 10 * 1024 * 1024, LIMITS)


@pytest.mark.parametrize(
    ("size", "max_pixels", "accepted"),
    [
        ((10_000, 10_000), 50_000_000, False),  # above the configured limit, below Pillow's error level
        ((10_000, 10_000), 200_000_000, True),  # a configured limit above Pillow's warning level is honoured
        ((7_072, 7_070), 50_000_000, True),
        ((7_072, 7_071), 50_000_000, False),
        ((100, 100), 10_000, True),
        ((100, 101), 10_000, False),
    ],
)
def test_the_configured_pixel_limit(
    no_pixel_decoding: None, size: tuple[int, int], max_pixels: int, accepted: bool
) -> None:
    limits = Limits(max_upload_bytes=LIMITS.max_upload_bytes, max_pixels=max_pixels, upload_prefix="")
    bomb = images.png_bomb(*size)
    if accepted:
        assert (inspect(bomb, limits=limits)["width"], inspect(bomb, limits=limits)["height"]) == size
    else:
        with pytest.raises(TooManyPixels, match=f"limit is {max_pixels}"):
            inspect(bomb, limits=limits)


def test_a_real_image_over_the_pixel_limit() -> None:
    data = images.encode(images.photo((160, 120)), "JPEG")
    limits = Limits(max_upload_bytes=LIMITS.max_upload_bytes, max_pixels=160 * 120 - 1, upload_prefix="")
    with pytest.raises(TooManyPixels):
        inspect(data, limits=limits)


# -- corrupt and truncated ---------------------------------------------------------------------


def _patch(data: bytes, marker: bytes, offset: int, value: bytes) -> bytes:
    at = data.index(marker) + offset
    return data[:at] + value + data[at + len(value) :]


_JPEG = images.encode(images.photo((64, 48)), "JPEG")
_PNG = images.encode(images.photo((64, 48)), "PNG")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_patch(_PNG, b"IHDR", 4, b"\xff"), id="png-ihdr-bad-crc"),
        pytest.param(
            b"\x89PNG\r\n\x1a\n"
            + images.png_chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 10, 8, 0, 0, 0, 0))
            + images.png_chunk(b"IEND", b""),
            id="png-zero-width",
        ),
        pytest.param(
            b"\x89PNG\r\n\x1a\n"
            + images.png_chunk(b"IHDR", struct.pack(">IIBBBBB", 10, 10, 7, 0, 0, 0, 0))
            + images.png_chunk(b"IEND", b""),
            id="png-bad-bit-depth",
        ),
        pytest.param(b"\x89PNG\r\n\x1a\n" + images.png_chunk(b"IEND", b""), id="png-no-ihdr"),
        pytest.param(_patch(_JPEG, b"\xff\xc0", 7, b"\x00\x00"), id="jpeg-sof-zero-width"),
        pytest.param(b"\xff\xd8\xff" + bytes(range(256)) * 4 + b"\xff\xd9", id="jpeg-garbage"),
        pytest.param(b"\xff\xd8\xff\xd9", id="jpeg-soi-eoi"),
        pytest.param(b"GIF89a" + b"\x00" * 20 + b";", id="gif-zero-size"),
        pytest.param(b"RIFF(\x00\x00\x00WEBPVP8 " + b"\x00" * 32, id="webp-garbage"),
        pytest.param(b"II*\x00" + struct.pack("<I", 1_000_000) + b"\x00" * 64, id="tiff-ifd-past-the-end"),
        pytest.param(images.ftyp(b"avif", [b"avif", b"mif1"]), id="avif-ftyp-only"),
        pytest.param(images.ftyp(b"avif", [b"avif", b"mif1"], tail=bytes(range(256))), id="avif-garbage"),
    ],
)
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_a_corrupt_header_is_a_corrupt_image(data: bytes) -> None:
    with pytest.raises(CorruptImage):
        inspect(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "HEIF"])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, -1, -2, -10])
def test_a_truncated_file_is_a_corrupt_image(fmt: str, keep: float) -> None:
    data = images.encode(images.photo((120, 90)), fmt)
    cut = data[: int(len(data) * keep)] if keep > 0 else data[: int(keep)]
    with pytest.raises(CorruptImage):
        inspect(cut)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_truncated_large_file_is_caught_from_its_tail(fmt: str) -> None:
    """The object is larger than the first read: the tail, read separately, misses its end marker."""
    data = images.encode(images.photo((640, 480), noise=64), fmt)
    assert len(data) > HEAD_BYTES + TAIL_BYTES + 5000
    cut = data[: len(data) - 5000]
    with pytest.raises(CorruptImage, match="truncated"):
        inspect(cut)
    assert inspect(data)["width"] == 640


def test_a_truncated_large_heif_is_caught_from_its_boxes() -> None:
    """The cut lies past the first read: the media data's box, and the items' locations, end past the object."""
    data = images.encode(images.photo((400, 300), noise=96), "HEIF", quality=90)
    assert len(data) > HEAD_BYTES + 5000
    with pytest.raises(CorruptImage, match="truncated"):
        inspect(data[:-5000])
    assert inspect(data)["width"] == 400


@pytest.mark.parametrize("name", ["pillow-24bit", "rle8", "rle4", "32bit-bitfields-alpha", "os2", "top-down"])
def test_a_bmp_shorter_than_its_headers_say_is_truncated(name: str) -> None:
    data = test_formats.BMPS[name]
    assert inspect(data)["format"] == "BMP"
    with pytest.raises(CorruptImage, match="BMP data is truncated"):
        inspect(data[:-1])
    longer = data[:2] + struct.pack("<I", len(data) + 4) + data[6:]
    with pytest.raises(CorruptImage, match="BMP data is truncated"):
        inspect(longer)


def test_a_webp_shorter_than_its_riff_size_is_truncated() -> None:
    data = images.encode(images.photo((64, 48)), "WEBP")
    # Keep the header intact but claim more bytes than there are.
    longer = data[:4] + (len(data) + 92).to_bytes(4, "little") + data[8:]
    with pytest.raises(CorruptImage):
        inspect(longer)


@pytest.mark.parametrize(
    ("fmt", "extra"),
    [("JPEG", b"\x00" * 100), ("JPEG", b"appended by the camera" * 20), ("PNG", b"\x00" * 64)],
)
def test_harmless_trailing_bytes_are_accepted(fmt: str, extra: bytes) -> None:
    data = images.encode(images.photo((40, 30)), fmt) + extra
    assert inspect(data)["format"] == fmt


# -- headers longer than the first read --------------------------------------------------------


def test_need_more_bytes_when_the_head_stops_before_the_jpeg_sof() -> None:
    data = images.big_header_jpeg(60_000)
    assert data.index(b"\xff\xc0") > 60_000
    with pytest.raises(NeedMoreBytes):
        inspect(data, head_bytes=1024)
    info = inspect(data, head_bytes=HEAD_BYTES)
    assert (info["width"], info["height"], info["exif"]["make"]) == (64, 48, "BigHeader")


def test_the_whole_head_given_as_the_object_is_corrupt_not_incomplete() -> None:
    """NeedMoreBytes only when there are more bytes to read."""
    data = images.big_header_jpeg(60_000)[:1024]
    with pytest.raises(CorruptImage):
        inspection.inspect(data, data, len(data), LIMITS)


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "JPEG"])
def test_need_more_bytes_when_the_head_is_cut_in_the_header(fmt: str) -> None:
    data = images.encode(images.photo((64, 48)), fmt)
    with pytest.raises(NeedMoreBytes):
        inspect(data, head_bytes=12)


def test_the_validate_loop_reads_more_until_the_header_fits() -> None:
    data = images.big_header_jpeg(60_000)
    # A header of about 60 KB fits in the first read of 64 KB (here, the whole object)...
    info, reads = inspect_growing(data)
    assert (info["width"], reads) == (64, [len(data)])
    # ...and from a first read of 1 KB, it takes two more.
    info, reads = inspect_growing(data, start=1024)
    assert (info["width"], info["exif"]["make"]) == (64, "BigHeader")
    assert reads == [1024, 16 * 1024, len(data)]


def test_a_large_webp_is_read_until_the_riff_is_whole() -> None:
    """Pillow needs the whole WebP to open it: validate keeps reading."""
    data = images.encode(images.photo((800, 600), noise=96), "WEBP", quality=95)
    assert len(data) > HEAD_BYTES
    with pytest.raises(NeedMoreBytes):
        inspect(data)
    info, reads = inspect_growing(data)
    assert (info["format"], info["width"], reads[-1]) == ("WEBP", 800, len(data))


def test_image_open_is_never_asked_to_guess(monkeypatch: pytest.MonkeyPatch) -> None:
    """inspect() opens with the sniffed format only, so a crafted file cannot pick another decoder."""
    seen: list[object] = []
    real_open = Image.open

    def spy(fp: object, mode: str = "r", formats: object = None) -> Image.Image:
        seen.append(formats)
        return real_open(fp, mode, formats)  # type: ignore[arg-type]

    monkeypatch.setattr(Image, "open", spy)
    inspect(images.encode(images.photo((16, 16)), "GIF"))
    assert seen == [["GIF"]]


def test_the_reads_stop_at_max_header_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A header that does not end within MAX_HEADER_BYTES is refused, never read further."""
    monkeypatch.setattr(inspection, "MAX_HEADER_BYTES", 200_000)
    plain = images.encode(images.photo((64, 48)), "PNG")
    ihdr_end = 8 + 25
    big = plain[:ihdr_end] + images.png_chunk(b"prVt", bytes(300_000)) + plain[ihdr_end:]
    with pytest.raises(CorruptImage, match="metadata before the pixels is larger than 200000 bytes"):
        inspect_growing(big)
    with pytest.raises(NeedMoreBytes) as more:
        inspect(big, head_bytes=65_536)
    assert more.value.wanted == 200_000
    # Under the limit, the same chunk is read through.
    monkeypatch.setattr(inspection, "MAX_HEADER_BYTES", 400_000)
    info, reads = inspect_growing(big)
    assert (info["width"], reads) == (64, [65_536, len(big)])


def test_max_header_bytes_holds_the_largest_jpeg_header() -> None:
    """A JPEG's ICC profile can fill 255 APP2 segments: such a header is read, within the limit."""
    profile = images.adobe_rgb_profile()
    largest = profile + bytes(255 * 65_519 - len(profile))  # the most 255 segments hold
    data = images.encode(images.photo((64, 48)), "JPEG", icc_profile=largest, exif=images.exif(make="Big"))
    info, reads = inspect_growing(data)
    assert (info["width"], info["has_icc"], info["exif"]["make"]) == (64, True, "Big")
    assert reads[-1] <= inspection.MAX_HEADER_BYTES
    assert data.index(b"\xff\xda") < inspection.MAX_HEADER_BYTES


def test_a_webp_is_read_whole_at_once() -> None:
    """Its reader needs all of it: after the first read, validate is asked for the whole object."""
    data = images.encode(images.photo((800, 600), noise=96), "WEBP", quality=95)
    with pytest.raises(NeedMoreBytes) as more:
        inspect(data)
    assert more.value.wanted == len(data)


def _heic_coded_at(width: int, height: int) -> bytes:
    """A real HEIC whose primary image declares (ispe) another coded size."""
    data = images.encode(images.photo((64, 48)), "HEIF")
    at = data.index(b"ispe") + 8
    return data[:at] + struct.pack(">II", width, height) + data[at + 8 :]


def test_a_heif_over_the_pixel_limit_is_refused_before_libheif_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """From the primary image's coded size (ispe), before libheif parses anything; x265 codes 64x48 as 64x64."""
    heic = images.encode(images.photo((64, 48)), "HEIF")
    coded_at = _heic_coded_at(10_000, 10_000)

    def never(*args: object, **kwargs: object) -> Image.Image:
        raise AssertionError("Image.open was called")

    monkeypatch.setattr(Image, "open", never)
    with pytest.raises(TooManyPixels, match="10000x10000 is 100000000 pixels; the limit is 50000000"):
        inspect(coded_at)
    limits = Limits(max_upload_bytes=LIMITS.max_upload_bytes, max_pixels=64 * 64 - 1, upload_prefix="")
    with pytest.raises(TooManyPixels, match="64x64"):
        inspect(heic, limits=limits)


def test_a_webp_over_the_pixel_limit_is_refused_from_the_first_read() -> None:
    data = images.encode(images.photo((800, 600), noise=96), "WEBP", quality=95)
    assert len(data) > HEAD_BYTES
    limits = Limits(max_upload_bytes=LIMITS.max_upload_bytes, max_pixels=800 * 600 - 1, upload_prefix="")
    with pytest.raises(TooManyPixels):
        inspect(data, limits=limits)


def _heic_with_big_metadata(profile: int = 0, description: int = 0) -> bytes:
    """A HEIC with an ICC profile of ``profile`` bytes (in its meta box) and an EXIF of about ``description``
    bytes (libheif writes it after the pixels)."""
    params: dict[str, object] = {}
    if profile:
        params["icc_profile"] = images.adobe_rgb_profile().ljust(profile, b"\x00")
    if description:
        params["exif"] = images.exif(make="Phone", description="d" * description).tobytes()
    return images.encode(images.photo((400, 300), noise=96), "HEIF", quality=90, **params)


def test_a_heif_is_read_to_the_end_of_its_meta_box() -> None:
    data = _heic_with_big_metadata(profile=100_000)
    meta = heif.meta_box(data)
    assert meta is not None
    assert HEAD_BYTES < meta[1] < len(data)
    with pytest.raises(NeedMoreBytes) as more:
        inspect(data)
    assert more.value.wanted == meta[1]
    info, reads = inspect_growing(data, start=1024)
    assert (info["format"], info["width"], info["has_icc"], reads) == ("HEIF", 400, True, [1024, meta[1]])


def test_a_heif_exif_after_the_pixels_is_read_within_max_header_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _heic_with_big_metadata(description=1000)
    meta = heif.meta_box(data)
    assert meta is not None
    assert meta[1] < HEAD_BYTES < len(data)
    info, reads = inspect_growing(data)
    assert (info["exif"]["make"], reads) == ("Phone", [HEAD_BYTES, len(data)])
    # Past MAX_HEADER_BYTES the EXIF is left out of the summary, and the image is accepted.
    monkeypatch.setattr(inspection, "MAX_HEADER_BYTES", len(data) - 1)
    info, reads = inspect_growing(data)
    assert (info["exif"], info["width"], reads) == ({}, 400, [HEAD_BYTES])


def test_a_heif_meta_box_past_max_header_bytes_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inspection, "MAX_HEADER_BYTES", 200_000)
    with pytest.raises(CorruptImage, match="metadata before the pixels is larger than 200000 bytes"):
        inspect_growing(_heic_with_big_metadata(profile=300_000))


def test_a_heif_whose_meta_box_follows_the_media_data_is_read_whole() -> None:
    data = images.heif_media_first(images.encode(images.photo((400, 300), noise=96), "HEIF", quality=90))
    assert data.index(b"mdat") < data.index(b"meta")
    assert len(data) > HEAD_BYTES
    with pytest.raises(NeedMoreBytes) as more:
        inspect(data)
    assert more.value.wanted == len(data)
    info, _ = inspect_growing(data)
    assert (info["format"], info["width"], info["height"]) == ("HEIF", 400, 300)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(images.ftyp(b"heic", [b"mif1", b"heic"]), id="ftyp-only"),
        pytest.param(images.ftyp(b"heic", [b"mif1", b"heic"], tail=bytes(range(256)) * 4), id="garbage"),
        pytest.param(images.ftyp(b"heic", [b"mif1", b"heic"], tail=b"\x00\x00\x00\x04meta"), id="box-too-short"),
        pytest.param(
            images.ftyp(b"heic", [b"mif1", b"heic"], tail=b"\x00\x00\x00\x04meta" + bytes(2 * HEAD_BYTES)),
            id="box-too-short-in-the-first-read",  # refused at once: no box header can follow it
        ),
        pytest.param(_heic_coded_at(0, 48), id="zero-width"),
        pytest.param(images.encode(images.photo((16, 16)), "BMP")[:40], id="bmp-header-cut"),
        pytest.param(b"BM" + bytes(12) + b"\x28" + bytes(39), id="bmp-zero-size"),
        pytest.param(images.bmp(images.photo((16, 16)), 24)[:30] + b"\x04" + bytes(200), id="bmp-jpeg-compression"),
    ],
)
def test_a_corrupt_bmp_or_heif_header_is_a_corrupt_image(data: bytes) -> None:
    with pytest.raises(CorruptImage):
        inspect(data)


# -- no pixel is decoded -----------------------------------------------------------------------


def _every_format() -> list[object]:
    photo = images.photo((96, 64))
    meta = images.exif(orientation=6, make="Maker")
    pages = [images.photo((96, 64), seed=i) for i in range(3)]
    return [
        pytest.param(images.encode(photo, "JPEG", exif=meta), id="jpeg"),
        pytest.param(images.encode(photo, "JPEG", progressive=True, exif=meta), id="jpeg-progressive"),
        pytest.param(images.encode(photo.convert("CMYK"), "JPEG"), id="jpeg-cmyk"),
        pytest.param(images.encode(images.in_mode("RGBA", (96, 64)), "PNG", exif=meta), id="png-rgba"),
        pytest.param(images.encode(images.in_mode("P", (96, 64)), "PNG"), id="png-palette"),
        pytest.param(images.encode(pages[0], "PNG", save_all=True, append_images=pages[1:]), id="apng"),
        pytest.param(images.encode(photo, "WEBP", exif=meta), id="webp-lossy"),
        pytest.param(images.encode(photo, "WEBP", lossless=True, exif=meta), id="webp-lossless"),
        pytest.param(images.animated_webp(3), id="webp-animated"),
        pytest.param(images.animated_gif(3), id="gif-animated"),
        pytest.param(images.encode(pages[0], "TIFF", save_all=True, append_images=pages[1:], exif=meta), id="tiff"),
        pytest.param(images.encode(photo, "AVIF", exif=meta), id="avif"),
        pytest.param(images.encode(photo, "BMP"), id="bmp"),
        pytest.param(images.bmp(photo.quantize(40), 8, rle=True), id="bmp-rle8"),
        pytest.param(images.encode(photo, "HEIF", exif=meta.tobytes()), id="heic"),
        pytest.param(images.encode(pages[0], "HEIF", save_all=True, append_images=pages[1:]), id="heic-three"),
    ]


@pytest.fixture
def no_pixels_anywhere(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail if any reader decodes pixels: every ``load`` raises, and no image memory is allocated."""

    def forbidden(self: Image.Image) -> None:
        raise AssertionError(f"{type(self).__name__}.load() was called")

    Image.init()
    for reader in _subclasses(ImageFile.ImageFile):
        if "load" in vars(reader):
            monkeypatch.setattr(reader, "load", forbidden)
    before = _imaging.get_stats()["new_count"]
    yield
    assert _imaging.get_stats()["new_count"] == before, "image memory was allocated"


def _subclasses(cls: type) -> set[type]:
    subclasses: list[type] = cls.__subclasses__()
    return {cls}.union(*(_subclasses(sub) for sub in subclasses))


@pytest.mark.parametrize("data", _every_format())
@pytest.mark.parametrize("whole", [True, False], ids=["whole", "head"])
def test_no_format_decodes_a_pixel(no_pixels_anywhere: None, data: bytes, whole: bool) -> None:
    info, _ = inspect_growing(data, start=len(data) if whole else 256)
    assert info["width"] * info["height"] >= 48 * 32


def test_png_exif_is_read_from_before_the_pixels_only() -> None:
    stored = images.photo((64, 48))
    before = images.encode(stored, "PNG", exif=images.exif(orientation=6, make="Before"))
    assert before.index(b"eXIf") < before.index(b"IDAT")
    assert inspect(before)["exif"] == {"orientation": 6, "make": "Before"}
    plain = images.encode(stored, "PNG")
    iend = plain.rindex(b"IEND") - 4
    after = plain[:iend] + images.png_chunk(b"eXIf", images.exif(orientation=6).tobytes()) + plain[iend:]
    assert (inspect(after)["orientation"], inspect(after)["exif"]) == (1, {})


# -- multi-page and animated -------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_a_multi_page_tiff_read_from_its_head_is_not_a_type_error() -> None:
    """Pillow's frame count seeks to IFDs past the head (TypeError: Missing dimensions): inspect walks
    only the IFDs in the head."""
    pages = [images.photo((600, 400), seed=i, noise=96) for i in range(4)]
    data = images.encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    assert len(data) > 4 * HEAD_BYTES
    with pytest.raises(TypeError, match="Missing dimensions"):  # what inspect used to let through
        _ = images.reopen(data[:HEAD_BYTES]).n_frames  # type: ignore[attr-defined]
    info, reads = inspect_growing(data)
    assert (info["format"], info["width"], info["height"], reads) == ("TIFF", 600, 400, [HEAD_BYTES])
    assert 1 <= info["frames"] <= 4
    assert inspect(data, head_bytes=len(data))["frames"] == 4


# -- output limits -----------------------------------------------------------------------------


def _limits(widths: tuple[int, ...] = Limits.from_env({}).widths, formats: tuple[str, ...] = ("jpeg",)) -> Limits:
    return Limits(LIMITS.max_upload_bytes, LIMITS.max_pixels, "", widths=widths, formats=formats)


def _tall(width: int, height: int) -> Image.Image:
    return Image.linear_gradient("L").resize((width, height))


def test_a_1x65535_png_is_refused_as_unsupported_dimensions() -> None:
    data = images.encode(_tall(1, 65_535), "PNG")
    with pytest.raises(UnsupportedDimensions, match=r"1x65535 rendition.*JPEG allows \(65500 px a side\)"):
        inspect(data, limits=_limits())
    assert inspect(images.encode(_tall(1, 65_500), "PNG"), limits=_limits())["height"] == 65_500


@pytest.mark.parametrize(
    ("size", "orientation", "widths", "fmt", "accepted"),
    [
        ((20_000, 10), 1, (16_384,), "webp", False),  # the 16384 px rendition is too wide for WebP
        ((20_000, 10), 1, (16_384,), "jpeg", True),
        ((20_000, 10), 1, (16_383, 1024), "webp", True),
        ((20_000, 10), 1, (2048, 1024, 320), "webp", True),
        ((20_000, 10), 6, (2048, 1024, 320), "webp", False),  # shown 10x20000: a 10 px wide rendition
        ((20_000, 10), 6, (2048, 1024, 320), "jpeg", True),
        ((40_000, 2), 6, (2048,), "avif", False),  # 2x40000: more than 32768 a side
        ((32_768, 2), 6, (2048,), "avif", True),
    ],
)
def test_renditions_must_fit_every_output_format(
    size: tuple[int, int], orientation: int, widths: tuple[int, ...], fmt: str, accepted: bool
) -> None:
    data = images.encode(images.photo(size, noise=0), "PNG", exif=images.exif(orientation=orientation))
    limits = _limits(widths, (fmt,) if fmt == "jpeg" else ("jpeg", fmt))
    if accepted:
        assert inspect(data, limits=limits)["width"] == size[0]
    else:
        with pytest.raises(UnsupportedDimensions, match=f"larger than {fmt.upper()} allows"):
            inspect(data, limits=limits)


def test_limits_read_widths_and_formats_like_the_other_settings() -> None:
    env = {"RENDITION_WIDTHS": "640,100,640", "OUTPUT_FORMATS": "webp, jpg"}
    limits = Limits.from_env(env)
    assert (limits.widths, limits.formats) == ((640, 100), ("webp", "jpeg"))
    staging = {"STAGING_BUCKET": "staging"}
    assert Limits.from_env({}).widths == RenditionSettings.from_env(staging).widths
    assert Limits.from_env({}).formats == EncodeSettings.from_env({}).formats
    assert Limits(1, 1, "") == Limits.from_env({"MAX_UPLOAD_BYTES": "1", "MAX_PIXELS": "1", "UPLOAD_PREFIX": ""})
