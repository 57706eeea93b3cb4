"""What bounds the work an upload can cause: header memory, JPEG scans, ICC profiles, decoder errors."""

from __future__ import annotations

import io
import random
import struct
import tracemalloc
import zlib
from collections.abc import Callable

import pytest
from PIL import Image, ImageCms, ImageFile, _imaging

from pipeline import codecs, formats, imaging, inspection
from pipeline.errors import CorruptImage, TooManyPixels
from pipeline.settings import Limits
from tests import images

LIMITS = Limits(max_upload_bytes=100 * 1024 * 1024, max_pixels=50_000_000, upload_prefix="", formats=("jpeg", "webp"))


# -- validate: memory bounded by the header, not the pixels ------------------------------------


def big_png(side: int, chunk: bytes) -> bytes:
    """A ``side`` x ``side`` RGBA PNG with ``chunk`` (a private ancillary chunk) between IHDR and IDAT.

    Its pixels are a row of a photo repeated down the image (each row Up-filtered against the one above,
    so zlib compresses the 200 MB of a 7070 px square to under 1 MB in a fraction of a second).
    """
    row = images.photo((side, 8)).convert("RGBA").crop((0, 4, side, 5)).tobytes()
    deflate = zlib.compressobj(1)
    parts = [deflate.compress(b"\x00" + row)]
    same_as_above = b"\x02" + bytes(len(row))
    parts += [deflate.compress(same_as_above) for _ in range(side - 1)]
    parts.append(deflate.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + images.png_chunk(b"IHDR", ihdr)
        + images.png_chunk(b"prVt", chunk)
        + images.png_chunk(b"IDAT", b"".join(parts))
        + images.png_chunk(b"IEND", b"")
    )


def test_big_png_is_a_real_png() -> None:
    data = big_png(64, b"private")
    decoded = images.reopen(data)
    assert (decoded.format, decoded.mode, decoded.size) == ("PNG", "RGBA", (64, 64))
    first_row = images.photo((64, 8)).convert("RGBA").crop((0, 4, 64, 5))
    assert images.changed_box(decoded.crop((0, 63, 64, 64)), first_row) is None


def test_validating_a_large_png_holds_its_header_not_its_pixels() -> None:
    """The issue's upload: 7070x7070 RGBA (200 MB of pixels) with a 14 MB chunk before IDAT. Validate
    once used 262 MB; it now holds the header bytes and what Pillow reads of them, and no image memory."""
    chunk = random.Random(7).randbytes(14_000_000)
    data = big_png(7070, chunk)
    limits = Limits(max_upload_bytes=len(data), max_pixels=50_000_000, upload_prefix="")
    with pytest.raises(inspection.NeedMoreBytes) as more:
        inspection.inspect(data[: inspection.HEAD_BYTES], data[-inspection.TAIL_BYTES :], len(data), limits)
    head, tail = data[: more.value.wanted * 16], data[-inspection.TAIL_BYTES :]  # the read after the next
    assert len(head) <= inspection.MAX_HEADER_BYTES
    images_before = _imaging.get_stats()["new_count"]
    tracemalloc.start()
    try:
        info = inspection.inspect(head, tail, len(data), limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (info["format"], info["width"], info["height"], info["mode"]) == ("PNG", 7070, 7070, "RGBA")
    assert _imaging.get_stats()["new_count"] == images_before, "image memory was allocated"
    assert peak < 2.5 * len(chunk), f"{peak / 1e6:.1f} MB for a {len(chunk) / 1e6:.0f} MB chunk"


# -- JPEG scans --------------------------------------------------------------------------------


def with_scans(data: bytes, total: int) -> bytes:
    """``data`` (a JPEG from Pillow) with its last scan repeated until it has ``total`` scans.

    The last scan runs from the last SOS marker to the EOI (entropy-coded data holds no marker). A
    repeated refinement scan sends bits the decoder already has: libjpeg warns of a bogus progression
    and decodes on, one more pass over the whole image each time, as with the upload in the issue.
    """
    start, end = data.rindex(b"\xff\xda"), data.rindex(b"\xff\xd9")
    return data[:end] + data[start:end] * (total - data.count(b"\xff\xda")) + data[end:]


GREY_PROGRESSIVE = images.encode(images.photo((64, 64)).convert("L"), "JPEG", progressive=True, quality=90)
COLOUR_PROGRESSIVE = images.encode(images.photo((64, 48)), "JPEG", progressive=True, quality=90)


def test_with_scans_adds_scans_pillow_still_decodes() -> None:
    more = with_scans(GREY_PROGRESSIVE, 50)
    assert formats.jpeg_scan_count(more) == 50
    decoded = images.reopen(more)
    decoded.load()
    # The same picture (the repeated refinements add their bits again: not the same samples).
    assert images.psnr(decoded, images.reopen(GREY_PROGRESSIVE).convert("L")) > 20


@pytest.mark.parametrize(
    ("data", "scans"),
    [
        pytest.param(images.encode(images.photo((64, 48)), "JPEG"), 1, id="baseline"),
        pytest.param(GREY_PROGRESSIVE, 6, id="grey-progressive"),
        pytest.param(COLOUR_PROGRESSIVE, 10, id="colour-progressive"),
        pytest.param((images.SAMPLES / "rocket.jpg").read_bytes(), 1, id="rocket.jpg"),
        pytest.param(
            images.encode(images.photo((160, 120)), "JPEG", restart_marker_blocks=1), 1, id="restart-every-block"
        ),
        pytest.param(
            images.encode(images.photo((160, 120)), "JPEG", progressive=True, restart_marker_rows=1),
            10,
            id="progressive-restarts",
        ),
    ],
)
def test_ordinary_jpegs_pass_the_scan_limit(data: bytes, scans: int) -> None:
    assert formats.jpeg_scan_count(data) == scans
    info = images.validate(data, LIMITS)
    with imaging.open_image(data, LIMITS.max_pixels) as img:
        decoded, _ = imaging.decode(img, info["width"], data)
    assert decoded.width == info["width"]


def test_the_scan_count_skips_stuffed_bytes_fill_bytes_and_segments() -> None:
    data = images.encode(images.photo((160, 120), noise=96), "JPEG", quality=95, comment=b"\xff\xda\xff\xda" * 8)
    entropy = data[data.index(b"\xff\xda") :]
    assert b"\xff\x00" in entropy  # stuffed 0xFF bytes in the entropy-coded data
    assert formats.jpeg_scan_count(data) == 1  # the markers in the comment are its payload, not scans
    eoi = data.rindex(b"\xff\xd9")
    filled = data[:eoi] + b"\xff" * 7 + data[eoi:]  # fill bytes before a marker
    assert formats.jpeg_scan_count(filled) == 1
    assert formats.jpeg_scan_count(filled + b"\xff\xda\x00\x08" + bytes(6)) == 1  # nothing after the EOI


def test_an_mpo_counts_the_scans_of_its_first_image() -> None:
    data = images.encode(images.photo((64, 48)), "MPO", save_all=True, append_images=[images.photo((64, 48), seed=2)])
    assert data.count(b"\xff\xda") == 2
    assert formats.jpeg_scan_count(data) == 1


@pytest.mark.parametrize("cut", [3, 20, 200, 600])
def test_the_scan_count_of_a_head_is_a_lower_bound(cut: int) -> None:
    assert formats.jpeg_scan_count(COLOUR_PROGRESSIVE[:cut]) <= 10
    assert formats.jpeg_scan_count(b"\xff\xd8\xff\xda\x00\x01") == 0  # a length below 2 ends the walk


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a decoder was called")

    for target in (ImageFile.ImageFile, Image.Image):
        monkeypatch.setattr(target, "load", forbidden)
    monkeypatch.setattr(codecs, "jpeg_scaled", forbidden)


def test_a_jpeg_at_the_scan_limit_is_decoded() -> None:
    data = with_scans(GREY_PROGRESSIVE, imaging.MAX_JPEG_SCANS)
    processed = images.process(data, LIMITS)
    assert processed.info["width"] == 64
    assert len(processed.outputs) == 2


def test_a_jpeg_over_the_scan_limit_is_refused_by_resize_before_any_decode(no_decoding: None) -> None:
    data = with_scans(GREY_PROGRESSIVE, imaging.MAX_JPEG_SCANS + 1)
    img = imaging.open_image(data, LIMITS.max_pixels)
    with pytest.raises(CorruptImage, match=f"more than {imaging.MAX_JPEG_SCANS} scans"):
        imaging.decode(img, 64, data)


def test_the_issues_jpeg_is_refused_by_validate_from_its_head() -> None:
    """A progressive greyscale JPEG with 40,000 scans (the issue's had them on 7000x7000 pixels)."""
    data = with_scans(GREY_PROGRESSIVE, 40_000)
    assert len(data) > 40 * inspection.HEAD_BYTES
    with pytest.raises(CorruptImage, match="scans"):
        inspection.inspect(data[: inspection.HEAD_BYTES], data[-inspection.TAIL_BYTES :], len(data), LIMITS)


# -- ICC profiles ------------------------------------------------------------------------------


def _profile_of(output: bytes) -> bytes | None:
    profile = images.reopen(output).info.get("icc_profile")
    return profile if isinstance(profile, bytes) and profile else None


def _check_srgb_outputs(data: bytes) -> None:
    processed = images.process(data, LIMITS)
    assert {fmt for _, _, fmt, _ in processed.outputs} == {"jpeg", "webp"}
    for _, _, _, output in processed.outputs:
        profile = _profile_of(output)
        assert profile == imaging.srgb_profile()
        assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile))).strip() == "sRGB built-in"


def test_a_jpeg_with_a_10_mb_random_profile_gets_srgb() -> None:
    noise = random.Random(10).randbytes(10_000_000)
    data = images.encode(images.photo((200, 150)), "JPEG", icc_profile=noise)
    assert images.reopen(data).info["icc_profile"] == noise
    _check_srgb_outputs(data)


def test_a_webp_with_a_20_mb_profile_gets_srgb() -> None:
    noise = random.Random(20).randbytes(20_000_000)
    data = images.encode(images.photo((200, 150)), "WEBP", icc_profile=noise)
    assert images.reopen(data).info["icc_profile"] == noise
    _check_srgb_outputs(data)


def test_a_real_profile_is_kept_byte_for_byte() -> None:
    """samples/rocket.jpg is tagged Adobe RGB (1998): every output carries that very profile."""
    data = (images.SAMPLES / "rocket.jpg").read_bytes()
    processed = images.process(data, LIMITS)
    assert processed.outputs
    for _, _, _, output in processed.outputs:
        assert _profile_of(output) == images.adobe_rgb_profile()


def _with_header(profile: bytes, offset: int, value: bytes) -> bytes:
    return profile[:offset] + value + profile[offset + len(value) :]


def _padded(profile: bytes, size: int) -> bytes:
    """A valid profile grown to ``size`` bytes (the tags stay where they are; the header's size follows)."""
    padded = profile + bytes(size - len(profile))
    return struct.pack(">I", size) + padded[4:]


ADOBE = images.adobe_rgb_profile()
GREY = images.grey_profile()


@pytest.mark.parametrize(
    ("profile", "mode", "kept"),
    [
        pytest.param(ADOBE, "RGB", True, id="adobe-rgb"),
        pytest.param(ADOBE, "RGBA", True, id="adobe-rgba"),
        pytest.param(ADOBE, "RGBX", True, id="adobe-rgbx"),
        pytest.param(GREY, "L", True, id="grey-l"),
        pytest.param(GREY, "LA", True, id="grey-la"),
        pytest.param(_padded(ADOBE, imaging.MAX_ICC_BYTES), "RGB", True, id="at-the-size-bound"),
        pytest.param(_padded(ADOBE, imaging.MAX_ICC_BYTES + 1), "RGB", False, id="over-the-size-bound"),
        pytest.param(GREY, "RGB", False, id="grey-profile-on-rgb"),
        pytest.param(ADOBE, "L", False, id="rgb-profile-on-grey"),
        pytest.param(_with_header(ADOBE, 16, b"CMYK"), "RGB", False, id="cmyk-space"),
        pytest.param(_with_header(ADOBE, 12, b"abst"), "RGB", False, id="abstract-class"),
        pytest.param(_with_header(ADOBE, 12, b"link"), "RGB", False, id="device-link-class"),
        pytest.param(ADOBE[:300], "RGB", False, id="truncated"),
        pytest.param(b"\x00" * 560, "RGB", False, id="zeros"),
    ],
)
def test_usable_icc(profile: bytes, mode: str, kept: bool) -> None:
    replacement = imaging.srgb_profile() if mode.startswith("RGB") else None
    assert imaging.usable_icc(profile, mode) == (profile if kept else replacement)


def test_usable_icc_without_a_profile() -> None:
    assert imaging.usable_icc(None, "RGB") is None
    assert imaging.usable_icc(b"", "L") is None
    assert imaging.usable_icc(ADOBE, "CMYK") is None  # not a working mode: no profile at all


def test_srgb_is_made_once() -> None:
    assert imaging.srgb_profile() is imaging.srgb_profile()
    assert imaging.usable_icc(b"junk", "RGB") is imaging.srgb_profile()


# -- decoding errors are named -----------------------------------------------------------------


RAISED: list[Callable[[], BaseException]] = [
    lambda: OSError("broken data stream when reading image file"),
    lambda: ValueError("tile cannot extend outside image"),
    lambda: SyntaxError("not a TIFF file"),
    EOFError,
    lambda: struct.error("unpack requires a buffer of 4 bytes"),
    lambda: zlib.error("Error -3 while decompressing data: invalid distance too far back"),
    lambda: IndexError("list index out of range"),
    lambda: TypeError("Missing dimensions"),
    lambda: KeyError(256),
    lambda: ZeroDivisionError("division by zero"),
    lambda: RuntimeError("Failed to decode image"),
]


@pytest.mark.parametrize("raise_", RAISED, ids=lambda make: type(make()).__name__)
def test_whatever_a_decoder_raises_is_a_corrupt_image(
    monkeypatch: pytest.MonkeyPatch, raise_: Callable[[], BaseException]
) -> None:
    original = raise_()

    def failing(self: Image.Image) -> None:
        raise original

    data = images.animated_gif(2)  # Pillow's own decoder
    monkeypatch.setattr(ImageFile.ImageFile, "load", failing)
    img = imaging.open_image(data, LIMITS.max_pixels)
    with pytest.raises(CorruptImage, match=r"^the GIF data cannot be decoded: ") as caught:
        imaging.decode(img, 48, data)
    assert caught.value.__cause__ is original
    assert "\n" not in str(caught.value)


def test_a_bomb_found_while_decoding_is_too_many_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(self: Image.Image) -> None:
        raise Image.DecompressionBombError("Image size (1000000000 pixels) exceeds limit")

    data = images.encode(images.photo((32, 24)), "TIFF")
    monkeypatch.setattr(ImageFile.ImageFile, "load", failing)
    img = imaging.open_image(data, LIMITS.max_pixels)
    with pytest.raises(TooManyPixels):
        imaging.decode(img, 32, data)


def test_open_image_names_what_it_cannot_read_and_keeps_the_cause() -> None:
    with pytest.raises(CorruptImage, match=r"^the PNG header cannot be read") as caught:
        imaging.open_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, LIMITS.max_pixels)
    assert caught.value.__cause__ is not None
