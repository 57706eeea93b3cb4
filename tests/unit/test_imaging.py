"""Decoding (draft, orientation, colour modes), chained renditions and the lossless intermediates."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageFile, UnidentifiedImageError

from pipeline import imaging, inspection, renditions
from pipeline.errors import CorruptImage, TooManyPixels
from pipeline.settings import Limits
from tests import images
from tests.conftest import ROOT
from tests.unit import test_formats

MAX_PIXELS = 50_000_000


def decode(data: bytes, target_width: int) -> tuple[Image.Image, bytes | None]:
    """Open and decode as the resize step does, in the mode of the renditions made from it (the fast
    decoders give RGB as RGBX, which ``test_codecs`` checks)."""
    with imaging.open_image(data, MAX_PIXELS) as img:
        decoded, icc = imaging.decode(img, target_width, data)
    return decoded.convert(renditions.rendition_mode(decoded.mode)), icc


def target_for(decoded_width: int) -> int:
    """The largest target for which a JPEG is decoded at ``decoded_width`` (an exact DCT scale)."""
    return math.floor(decoded_width / imaging.DCT_MARGIN)


# -- planning ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "widths", "planned"),
    [
        (4000, [2048, 1024, 320], [2048, 1024, 320]),
        (2048, [2048, 1024, 320], [2048, 1024, 320]),
        (2047, [2048, 1024, 320], [2047, 1024, 320]),
        (1500, [2048, 1024, 320], [1500, 1024, 320]),
        (1024, [2048, 1024, 320], [1024, 320]),
        (500, [2048, 1024, 320], [500, 320]),
        (320, [2048, 1024, 320], [320]),
        (200, [2048, 1024, 320], [200]),
        (1, [2048, 1024, 320], [1]),
        (4000, [320, 2048, 1024], [2048, 1024, 320]),
        (4000, [320, 320, 1024], [1024, 320]),
        (800, [4096, 2048], [800]),
        (4000, [], []),
    ],
)
def test_plan_widths(source: int, widths: list[int], planned: list[int]) -> None:
    assert imaging.plan_widths(source, widths) == planned


@pytest.mark.parametrize("source", [1, 16, 319, 320, 321, 1023, 1024, 3000, 5000])
def test_plan_widths_never_upscales_and_is_largest_first(source: int) -> None:
    planned = imaging.plan_widths(source, [16, 320, 1024, 2048, 4096])
    assert planned
    assert all(w <= source for w in planned)
    assert planned == sorted(set(planned), reverse=True)


@pytest.mark.parametrize(
    ("size", "new_width", "height"),
    [
        ((4000, 3000), 320, 240),
        ((3000, 4000), 320, 427),
        ((1920, 1080), 1024, 576),
        ((1000, 1), 10, 1),  # never zero
        ((1000, 1), 999, 1),
        ((3, 2), 2, 1),  # 1.33 rounds down
        ((3, 5), 2, 3),  # 3.33 rounds down
        ((3, 4), 2, 3),  # 2.67 rounds up
        ((100, 100), 100, 100),
    ],
)
def test_scaled_height(size: tuple[int, int], new_width: int, height: int) -> None:
    assert imaging.scaled_height(*size, new_width) == height


# -- opening -----------------------------------------------------------------------------------


def test_open_image_is_lazy() -> None:
    img = imaging.open_image(images.encode(images.photo((200, 100)), "PNG"), MAX_PIXELS)
    assert img.size == (200, 100)
    assert isinstance(img, ImageFile.ImageFile)
    assert img.tile  # not decoded yet


def test_open_image_rejects_a_decompression_bomb() -> None:
    with pytest.raises(TooManyPixels):
        imaging.open_image(images.png_bomb(100_000, 100_000), MAX_PIXELS)


@pytest.mark.parametrize(("size", "max_pixels"), [((10_000, 10_000), 50_000_000), ((100, 100), 9_999)])
def test_open_image_enforces_the_configured_limit(size: tuple[int, int], max_pixels: int) -> None:
    with pytest.raises(TooManyPixels):
        imaging.open_image(images.png_bomb(*size), max_pixels)


def test_open_image_accepts_what_validate_accepted() -> None:
    """A limit above Pillow's warning level (~89 Mpx) is honoured by validate and resize alike."""
    limits = Limits(max_upload_bytes=1 << 30, max_pixels=200_000_000, upload_prefix="")
    data = images.png_bomb(10_000, 10_000)
    assert inspection.inspect(data, data, len(data), limits)["width"] == 10_000
    assert imaging.open_image(data, limits.max_pixels).size == (10_000, 10_000)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not an image at all", id="text"),
        pytest.param(b"\xff\xd8\xff\xe0" + b"\x00" * 40, id="jpeg-garbage"),
        pytest.param(images.encode(images.photo((32, 32)), "WEBP")[:40], id="webp-cut"),
        pytest.param(images.encode(images.photo((32, 32)), "AVIF")[:200], id="avif-cut"),
        pytest.param(images.encode(images.photo((32, 32)), "BMP")[:40], id="bmp-header-cut"),
        pytest.param(images.encode(images.photo((32, 32)), "HEIF")[:200], id="heic-cut-in-its-meta-box"),
        pytest.param(images.ftyp(b"heic", [b"mif1", b"heic"], tail=bytes(range(256))), id="heic-garbage"),
    ],
)
def test_open_image_rejects_what_cannot_be_read(data: bytes) -> None:
    with pytest.raises(CorruptImage):
        imaging.open_image(data, MAX_PIXELS)


def test_open_image_checks_a_heif_coded_size() -> None:
    """libheif decodes the coded size (ispe), then crops it: the limit applies to the coded size."""
    data = images.encode(images.photo((64, 48)), "HEIF")
    at = data.index(b"ispe") + 8
    coded = data[:at] + (10_000).to_bytes(4, "big") * 2 + data[at + 8 :]
    with pytest.raises(TooManyPixels, match="coded at 10000x10000"):
        imaging.open_image(coded, MAX_PIXELS)
    # x265 codes 64x48 as 64x64, which the clean aperture (clap) crops.
    assert b"clap" in data
    assert imaging.open_image(data, 64 * 64).size == (64, 48)
    with pytest.raises(TooManyPixels, match="coded at 64x64"):
        imaging.open_image(data, 64 * 64 - 1)


def test_pillow_heif_is_imported_on_the_first_heif_only(tmp_path: Path) -> None:
    """Not at a cold start, not for other formats: the HEIF reader is registered when a HEIF is opened."""
    heic, jpeg = tmp_path / "a.heic", tmp_path / "a.jpg"
    heic.write_bytes(images.encode(images.photo((32, 24)), "HEIF"))
    jpeg.write_bytes(images.encode(images.photo((32, 24)), "JPEG"))
    script = f"""
import sys
from pipeline import imaging, inspection
assert "pillow_heif" not in sys.modules
data = open({str(jpeg)!r}, "rb").read()
imaging.decode(imaging.open_image(data, 10**6), 32, data)
assert "pillow_heif" not in sys.modules
data = open({str(heic)!r}, "rb").read()
decoded, _ = imaging.decode(imaging.open_image(data, 10**6), 32, data)
assert "pillow_heif" in sys.modules and decoded.size == (32, 24)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "shared")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "TIFF", "BMP", "HEIF"])
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_decode_rejects_truncated_pixel_data(fmt: str) -> None:
    """The header is intact (open succeeds), the pixel data is cut."""
    data = images.encode(images.photo((120, 90)), fmt)
    cut = data[: len(data) * 2 // 3]
    with imaging.open_image(cut, MAX_PIXELS) as img, pytest.raises(CorruptImage, match="cannot be decoded"):
        imaging.decode(img, 120, cut)


# -- colour modes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "fmt", "decoded_mode"),
    [
        ("RGB", "JPEG", "RGB"),
        ("L", "JPEG", "L"),
        ("CMYK", "JPEG", "RGB"),
        ("1", "JPEG", "L"),
        ("RGB", "PNG", "RGB"),
        ("RGBA", "PNG", "RGBA"),
        ("L", "PNG", "L"),
        ("LA", "PNG", "LA"),
        ("P", "PNG", "RGB"),
        ("PT", "PNG", "RGBA"),
        ("1", "PNG", "L"),
        ("I;16", "PNG", "L"),
        ("RGB", "GIF", "RGB"),
        ("PT", "GIF", "RGBA"),
        ("RGB", "WEBP", "RGB"),
        ("RGBA", "WEBP", "RGBA"),
        ("RGB", "TIFF", "RGB"),
        ("LA", "TIFF", "LA"),
        ("CMYK", "TIFF", "RGB"),
        ("I;16", "TIFF", "L"),
        ("1", "TIFF", "L"),
        ("P", "TIFF", "RGB"),
        ("RGB", "AVIF", "RGB"),
        ("RGBA", "AVIF", "RGBA"),
        ("L", "AVIF", "L"),
        ("RGB", "BMP", "RGB"),
        ("L", "BMP", "L"),
        ("P", "BMP", "RGB"),
        ("1", "BMP", "L"),
        ("RGB", "HEIF", "RGB"),
        ("RGBA", "HEIF", "RGBA"),
        ("L", "HEIF", "L"),
        ("P", "HEIF", "RGB"),
    ],
)
def test_decode_normalises_the_mode(mode: str, fmt: str, decoded_mode: str) -> None:
    source = images.in_mode(mode, (120, 80))
    decoded, icc = decode(images.encode(source, fmt), 120)
    assert decoded.mode == decoded_mode
    assert decoded.mode in ("L", "LA", "RGB", "RGBA")
    assert decoded.size == (120, 80)
    assert icc is None
    # The picture survives (compared with Pillow's own conversion of the source; for 16 bits, with
    # the 8-bit picture it was made from). Transparent pixels may hold any colour: compare the
    # opaque right third only.
    if mode == "I;16":
        assert images.psnr(decoded, images.photo((120, 80)).convert("L")) > 40
    else:
        box = (80, 0, 120, 80)
        assert images.psnr(decoded.convert("RGB").crop(box), source.convert("RGB").crop(box)) > 20


@pytest.mark.parametrize(("mode", "fmt"), [("PT", "PNG"), ("PT", "GIF"), ("RGBA", "PNG"), ("LA", "PNG")])
def test_decode_keeps_transparency(mode: str, fmt: str) -> None:
    decoded, _ = decode(images.encode(images.in_mode(mode, (120, 80)), fmt), 120)
    alpha = decoded.getchannel("A")
    assert images.mean(alpha, (0, 0, 20, 80)) == (0.0,)  # transparent at the left
    assert images.mean(alpha, (100, 0, 120, 80)) == (255.0,)  # opaque at the right


@pytest.mark.parametrize("name", test_formats.BMPS)
def test_decode_reads_every_bmp_variant(name: str) -> None:
    """Each variant decodes to the picture it was written from: exactly, but for 16 bits (5 or 6 bits a channel)."""
    data = test_formats.BMPS[name]
    decoded, _ = decode(data, 48)
    size = (48, 32)
    references = {
        "pillow-1bit": images.photo(size).convert("1"),
        "pillow-grey": images.photo(size).convert("L"),
        "pillow-palette": images.in_mode("P", size),
        "4bit": images.photo(size).quantize(16),
        "rle8": images.photo(size).quantize(40),
        "rle4": images.photo(size).quantize(16),
        "32bit-bitfields-alpha": images.in_mode("RGBA", size),
    }
    reference = references.get(name, images.photo(size))
    reference = reference.convert(decoded.mode if reference.mode in ("P", "1") else reference.mode)
    assert decoded.mode == reference.mode
    assert images.psnr(decoded, reference) > (38 if name.startswith("16bit") else 1000)


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    source = images.sixteen_bit((64, 48))
    decoded, _ = decode(images.encode(source, "PNG"), 64)
    assert decoded.mode == "L"
    assert decoded.getpixel((0, 0)) == 0
    assert decoded.getpixel((1, 0)) == 255
    # Each 8-bit value is the high byte of the 16-bit one (within rounding).
    expected = images.photo((64, 48)).convert("L")
    assert images.extrema(decoded) == (0, 255)
    diff = ImageChops.difference(decoded.crop((0, 1, 64, 48)), expected.crop((0, 1, 64, 48)))
    assert images.extrema(diff)[1] <= 1


def test_one_bit_becomes_black_and_white_grey() -> None:
    decoded, _ = decode(images.encode(images.in_mode("1", (64, 48)), "PNG"), 64)
    assert decoded.mode == "L"
    assert set(decoded.get_flattened_data()) == {0, 255}


def test_untagged_cmyk_is_converted_naively() -> None:
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # full magenta and yellow: red
    decoded, icc = decode(images.encode(cmyk, "JPEG", quality=95), 32)
    assert decoded.mode == "RGB"
    assert icc is None
    assert images.near(images.mean(decoded), (255, 0, 0), 8)


def test_cmyk_tagged_with_an_rgb_profile_falls_back_to_the_naive_conversion() -> None:
    """An unusable profile (RGB on CMYK pixels) must not fail the image, nor be kept."""
    cmyk = Image.new("CMYK", (32, 32), (255, 0, 255, 0))  # cyan and yellow: green
    data = images.encode(cmyk, "JPEG", quality=95, icc_profile=images.srgb_profile())
    assert images.reopen(data).info["icc_profile"] == images.srgb_profile()
    decoded, icc = decode(data, 32)
    assert decoded.mode == "RGB"
    assert icc is None
    assert images.near(images.mean(decoded), (0, 255, 0), 8)


@pytest.mark.parametrize(
    "profile",
    [
        pytest.param(b"this is not an ICC profile" * 8, id="garbage"),
        pytest.param(images.srgb_profile()[:200], id="truncated"),
    ],
)
def test_cmyk_with_an_unreadable_profile_falls_back_to_the_naive_conversion(profile: bytes) -> None:
    cmyk = Image.new("CMYK", (32, 32), (0, 0, 0, 255))  # full black ink
    decoded, icc = decode(images.encode(cmyk, "JPEG", quality=95, icc_profile=profile), 32)
    assert decoded.mode == "RGB"
    assert icc is None
    assert images.near(images.mean(decoded), (0, 0, 0), 8)


@pytest.mark.parametrize(
    ("mode", "normalised", "keeps_icc"),
    [
        ("La", "LA", True),
        ("RGBa", "RGBA", True),
        ("PA", "RGBA", True),
        ("I", "L", True),
        ("I;16B", "L", True),
        ("F", "L", True),
        ("YCbCr", "RGB", False),
        ("LAB", "RGB", False),
        ("HSV", "RGB", False),
        ("1", "L", False),
    ],
)
def test_rare_modes_are_normalised(mode: str, normalised: str, keeps_icc: bool) -> None:
    out, icc = imaging._normalise_mode(Image.new(mode, (4, 4)), b"profile")
    assert out.mode == normalised
    assert icc == (b"profile" if keeps_icc else None)


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [(m, f) for m in ("RGB", "RGBA") for f in ("JPEG", "PNG", "WEBP", "TIFF", "AVIF") if (m, f) != ("RGBA", "JPEG")]
    + [("L", "JPEG"), ("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("PT", "PNG"), ("RGB", "HEIF"), ("RGBA", "HEIF")],
)
def test_decode_returns_the_icc_profile_of_tagged_images(mode: str, fmt: str) -> None:
    profile = images.grey_profile() if mode in ("L", "LA") else images.adobe_rgb_profile()
    decoded, icc = decode(images.encode(images.in_mode(mode, (40, 30)), fmt, icc_profile=profile), 40)
    assert icc == profile
    assert decoded.mode in ("L", "LA", "RGB", "RGBA")


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_decode_returns_the_icc_profile_a_bmp_embeds(mode: str) -> None:
    """Pillow does not read it: it is found in the V5 header, then kept or replaced like any other."""
    masks = test_formats.BGRA_MASKS if mode == "RGBA" else ()
    source = images.in_mode(mode, (40, 30))
    profile = images.adobe_rgb_profile()
    decoded, icc = decode(images.bmp(source, 32 if masks else 24, header=124, masks=masks, profile=profile), 40)
    assert (decoded.mode, icc) == (mode, profile)
    _, replaced = decode(images.bmp(source, 32 if masks else 24, header=124, masks=masks, profile=b"junk" * 40), 40)
    assert replaced == imaging.srgb_profile()
    assert decode(images.bmp(source, 32 if masks else 24, header=124, masks=masks), 40)[1] is None


def test_decode_takes_the_primary_image_of_a_heif() -> None:
    """pillow-heif opens a HEIF at its primary image, which need not be the first: that is the one decoded."""
    pictures = [images.photo((64, 48), seed=i) for i in range(3)]
    data = images.encode(pictures[0], "HEIF", quality=90, save_all=True, append_images=pictures[1:], primary_index=1)
    decoded, _ = decode(data, 64)
    assert images.psnr(decoded, pictures[1]) > images.psnr(decoded, pictures[0]) + 10
    assert imaging.count_frames(data, "HEIF") == 3


def test_decode_takes_the_first_frame_of_an_animation() -> None:
    decoded, _ = decode(images.animated_gif(3, (48, 32)), 48)
    first = images.reopen(images.animated_gif(3, (48, 32))).convert("RGB")
    assert decoded.size == (48, 32)
    assert images.psnr(decoded.convert("RGB"), first) == float("inf")


# -- orientation -------------------------------------------------------------------------------


def _assert_upright(img: Image.Image, size: tuple[int, int]) -> None:
    assert img.size == size
    w, h = img.size
    corner = max(2, w // 8)
    assert images.near(images.mean(img, (0, 0, corner, corner)), images.RED, 30), "top-left is not red"
    assert images.near(images.mean(img, (w - corner, 0, w, corner)), images.BLUE, 30), "top-right is not blue"
    assert images.near(images.mean(img, (0, h - corner, corner, h)), images.GREY, 30), "bottom-left is not grey"
    assert images.near(images.mean(img, (w - corner, h - corner, w, h)), images.GREY, 30), "bottom-right not grey"


def test_the_marker_image_is_asymmetric() -> None:
    """The check can tell all eight orientations apart: only the identity keeps both markers in place."""
    upright = images.markers()
    for orientation in range(2, 9):
        stored = images.store_with_orientation(upright, orientation)
        if stored.size == upright.size:
            with pytest.raises(AssertionError):
                _assert_upright(stored, upright.size)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "AVIF", "HEIF"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_decode_shows_the_image_upright(fmt: str, orientation: int) -> None:
    data = images.oriented_jpeg(orientation, (96, 64), fmt=fmt)
    decoded, _ = decode(data, 96)
    _assert_upright(decoded, (96, 64))


@pytest.mark.parametrize("orientation", [3, 6])
def test_a_heif_is_oriented_once_by_its_transformations_not_by_its_exif(orientation: int) -> None:
    """The EXIF of a HEIF says 6 (or 3) as its transformations do: turned once. With the EXIF alone, the
    image is shown as stored, as libheif shows it (HEIF defines the EXIF orientation as informative)."""
    transformed = images.oriented_jpeg(orientation, (96, 64), fmt="HEIF")
    assert b"irot" in transformed
    assert images.reopen(transformed).info["original_orientation"] == orientation
    _assert_upright(decode(transformed, 96)[0], (96, 64))
    stored = images.store_with_orientation(images.markers((96, 64)), orientation)
    exif_only = images.encode(stored, "HEIF", quality=95, exif=images.exif(orientation=orientation))
    assert b"irot" not in exif_only
    assert images.reopen(exif_only).info["original_orientation"] == orientation
    decoded, _ = decode(exif_only, 96)
    assert images.psnr(decoded, stored) > 30


@pytest.mark.parametrize("orientation", range(1, 9))
def test_decode_with_a_jpeg_draft_keeps_the_orientation(orientation: int) -> None:
    """At half scale (a DCT draft), with the draft size computed in the stored orientation."""
    data = images.oriented_jpeg(orientation, (192, 128))
    decoded, _ = decode(data, target_for(96))
    _assert_upright(decoded, (96, 64))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "AVIF", "HEIF"])
@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_inspect_and_decode_agree_on_the_display_width(fmt: str, orientation: int) -> None:
    """The resize step plans widths from ImageInfo: its display width must be the decoded width."""
    data = images.oriented_jpeg(orientation, (96, 64), fmt=fmt)
    info = inspection.inspect(data, data, len(data), Limits(1 << 30, MAX_PIXELS, ""))
    display_width = info["height"] if info["orientation"] in (5, 6, 7, 8) else info["width"]
    assert display_width == decode(data, 96)[0].width == 96


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"garbage" * 10,
        b"II*\x00\xff\xff\xff\x7f",
        b"MM\x00*\x00\x00\x00\x08\x00\x05\x01\x12\x00\x03",
        b"II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00\x09\x00\x00\x00",  # orientation 9
    ],
)
def test_a_broken_exif_block_still_decodes(payload: bytes) -> None:
    data = images.broken_exif_jpeg(payload, (64, 48))
    decoded, _ = decode(data, 64)
    assert decoded.size == (64, 48)
    assert images.psnr(decoded, images.photo((64, 48))) > 20  # the same picture (another one scores < 12)


# -- JPEG draft --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_jpeg() -> bytes:
    return images.encode(images.photo((4000, 3000)), "JPEG", quality=85)


@pytest.fixture(scope="module")
def big_jpeg_rotated() -> bytes:
    """4000x3000 as stored, 3000x4000 upright."""
    return images.encode(images.photo((4000, 3000)), "JPEG", quality=85, exif=images.exif(orientation=6))


@pytest.mark.parametrize("target", [100, 320, 344, 345, 499, 500, 501, 1000, 1001, 1412, 2048, 2501, 2759, 3999])
def test_jpeg_decodes_at_the_largest_power_of_two_reduction_that_keeps_the_margin(big_jpeg: bytes, target: int) -> None:
    """libjpeg-turbo's DCT scaling by 1/2, 1/4 or 1/8 (its SIMD paths), never below the target times the margin."""
    wanted = min(4000, math.ceil(target * imaging.DCT_MARGIN))
    shrink = max(s for s in (1, 2, 4, 8) if s == 1 or 4000 / s >= target * imaging.DCT_MARGIN)
    decoded, _ = decode(big_jpeg, target)
    assert decoded.size == (math.ceil(4000 / shrink), math.ceil(3000 / shrink))
    assert wanted <= decoded.width


@pytest.mark.parametrize("target", [4000, 8000])
def test_jpeg_decodes_full_size_when_needed(big_jpeg: bytes, target: int) -> None:
    decoded, _ = decode(big_jpeg, target)
    assert decoded.size == (4000, 3000)


def test_scaled_jpeg_decode_matches_a_full_decode_resized() -> None:
    source = images.photo((1600, 1200))
    data = images.encode(source, "JPEG", quality=92)
    decoded, _ = decode(data, target_for(800))  # 1/2: 800 x 600
    assert decoded.size == (800, 600)
    full = images.reopen(data).convert("RGB").resize(decoded.size, Image.Resampling.LANCZOS)
    assert images.psnr(decoded, full) > 35


def test_a_jpeg_libjpeg_only_warns_about_is_decoded_by_pillow() -> None:
    """A stray marker in the scan: libjpeg-turbo's strict mode refuses it, Pillow decodes it."""
    import simplejpeg

    data = images.encode(images.photo((160, 120)), "JPEG", quality=90)
    scan = data.index(b"\xff\xda") + 200
    damaged = data[:scan] + b"\xff\xd5" + data[scan:]
    with pytest.raises(ValueError, match="Corrupt JPEG data"):
        simplejpeg.decode_jpeg(damaged)
    decoded, _ = decode(damaged, 160)
    assert decoded.size == (160, 120)
    assert ImageChops.difference(decoded, images.reopen(damaged).convert("RGB")).getbbox() is None  # as Pillow has it


@pytest.mark.parametrize("target", [320, 1000])
def test_jpeg_draft_with_a_rotated_jpeg(big_jpeg_rotated: bytes, target: int) -> None:
    decoded, _ = decode(big_jpeg_rotated, target)
    assert target <= decoded.width < 3000
    assert decoded.width * 4 == decoded.height * 3  # upright: portrait


def test_jpeg_draft_also_applies_to_mpo() -> None:
    """Many phone photos carry a second image after the first (MPO); they are JPEGs to decode."""
    data = images.encode(
        images.photo((1600, 1200)), "MPO", save_all=True, append_images=[images.photo((160, 120), seed=2)]
    )
    assert images.reopen(data).format == "MPO"
    decoded, _ = decode(data, target_for(400))
    assert decoded.size == (400, 300)
    full = images.reopen(data).convert("RGB").resize((400, 300), Image.Resampling.LANCZOS)
    assert images.psnr(decoded, full) > 30


def test_jpeg_draft_keeps_the_colour_mode() -> None:
    for mode, expected in (("L", "L"), ("CMYK", "RGB")):
        data = images.encode(images.photo((800, 600)).convert(mode), "JPEG")
        decoded, _ = decode(data, target_for(100))
        assert (decoded.mode, decoded.size) == (expected, (100, 75))


# -- renditions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "widths"),
    [
        ((1200, 800), [1024, 640, 320]),
        ((1000, 1000), [1000, 320, 16]),
        ((333, 1000), [333, 100]),
        ((1000, 37), [640, 320, 17]),
        ((50, 40), [50]),
    ],
)
def test_renditions_sizes(size: tuple[int, int], widths: list[int]) -> None:
    source = images.photo(size)
    out = list(renditions.chain(source, imaging.plan_widths(size[0], widths)))
    assert [r.width for r in out] == sorted(widths, reverse=True)
    for r in out:
        assert r.image.size == (r.width, r.height)
        assert r.width <= size[0]
        assert abs(r.height - size[1] * r.width / size[0]) <= 1  # aspect kept (to a pixel of rounding)
        assert r.image.mode == source.mode


def test_a_rendition_at_the_source_width_is_the_source_itself() -> None:
    source = images.photo((300, 200))
    first, second = renditions.chain(source, [300, 100])
    assert first.image is source
    assert (second.width, second.height) == (100, 67)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_renditions_keep_the_mode(mode: str) -> None:
    source = images.in_mode(mode, (400, 300))
    assert {r.image.mode for r in renditions.chain(source, [200, 100])} == {mode}


def test_renditions_are_chained_from_the_previous_one(monkeypatch: pytest.MonkeyPatch) -> None:
    sources: list[tuple[int, int]] = []
    real_resized = renditions._resized

    def spy(image: Any, width: int, height: int) -> Any:
        sources.append((image.width, image.height))
        return real_resized(image, width, height)

    source = images.photo((1200, 900), noise=0)
    monkeypatch.setattr(renditions, "_resized", spy)
    out = list(renditions.chain(source, [800, 400, 200]))
    assert sources == [(1200, 900), (800, 600), (400, 300)]
    assert [r.image.size for r in out] == [(800, 600), (400, 300), (200, 150)]


def test_renditions_are_lazy() -> None:
    gen = renditions.chain(images.photo((100, 100)), [50])
    assert isinstance(gen, Iterator)


def max_difference(a: Image.Image, b: Image.Image) -> int:
    """The largest difference of any sample, in any band."""
    extrema = ImageChops.difference(a, b).getextrema()
    return max(high for _, high in extrema) if isinstance(extrema[0], tuple) else int(extrema[1])


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "RGBX"])
def test_resize_is_a_lanczos_resize_in_the_rendition_mode(mode: str) -> None:
    """libvips' Lanczos-3 against Pillow's LANCZOS (both premultiply alpha): the same filter, to rounding."""
    source = images.in_mode("RGB" if mode == "RGBX" else mode, (900, 1500))
    if mode == "RGBX":
        source = source.convert("RGBX")
    resized = renditions.resize(source, (500, 833))
    assert resized.size == (500, 833)
    assert resized.mode == renditions.rendition_mode(mode)
    pillow = source.convert(resized.mode).resize((500, 833), Image.Resampling.LANCZOS)
    assert premultiplied_psnr(resized, pillow) > 45


def premultiplied_psnr(a: Image.Image, b: Image.Image) -> float:
    """PSNR of what is seen: colours weighted by their alpha (the colour of an all but transparent pixel
    is rounding noise that nothing shows)."""
    premultiplied = {"RGBA": "RGBa", "LA": "La"}.get(a.mode)
    return images.psnr(a.convert(premultiplied), b.convert(premultiplied)) if premultiplied else images.psnr(a, b)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_resize_does_not_bleed_the_colour_of_transparent_pixels(mode: str) -> None:
    """Transparent pixels keep whatever colour they hold; a premultiplied resize gives them no weight."""
    opaque, hidden = ((200, 30, 30, 255), (0, 255, 0, 0)) if mode == "RGBA" else ((40, 255), (255, 0))
    source = Image.new(mode, (400, 400), hidden)
    source.paste(Image.new(mode, (200, 400), opaque), (0, 0))
    resized = renditions.resize(source, (100, 100))
    edge = resized.getpixel((49, 50))  # the last column that is still partly opaque
    assert isinstance(edge, tuple)
    assert edge[-1] > 0
    assert edge[:-1] == opaque[:-1], "the visible colour is the opaque pixels' own"


# -- quality -----------------------------------------------------------------------------------


def test_chained_renditions_lose_no_quality_against_a_single_resize() -> None:
    """Against an ideal 4x box reduction, the chain is within 0.5 dB of one LANCZOS pass."""
    source = images.photo((1280, 960))
    ideal = source.reduce(4)
    direct = source.resize((320, 240), Image.Resampling.LANCZOS)
    chained = list(renditions.chain(source, [1024, 640, 320]))[-1].image
    assert images.psnr(chained, ideal) >= images.psnr(direct, ideal) - 0.5
    assert images.psnr(chained, direct) > 40


@pytest.mark.parametrize("widths", [[320], [640, 320], [1024, 640, 320], [960, 320]])
def test_the_pipeline_matches_a_full_decode_reference(widths: list[int]) -> None:
    """Draft decode + chained resizes vs a full-size decode resized once with LANCZOS."""
    source = images.photo((1280, 960))
    data = images.encode(source, "JPEG", quality=92)
    reference = images.reopen(data).convert("RGB").resize((320, 240), Image.Resampling.LANCZOS)
    decoded, _ = decode(data, widths[0])
    assert decoded.width >= widths[0]
    result = list(renditions.chain(decoded, imaging.plan_widths(decoded.width, widths)))[-1].image
    assert result.size == (320, 240)
    assert images.psnr(result, reference) > 35
    ideal = source.reduce(4)
    assert images.psnr(result, ideal) >= images.psnr(reference, ideal) - 0.5


# -- lossless intermediates --------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("icc", [None, "srgb"])
def test_lossless_round_trip(mode: str, icc: str | None) -> None:
    source = images.in_mode(mode, (80, 60))
    profile = images.srgb_profile() if icc else None
    data = imaging.to_lossless(source, profile)
    assert data.startswith(b"II*\x00")
    back, back_icc = imaging.from_lossless(data)
    assert back.mode == mode
    assert back.size == source.size
    assert ImageChops.difference(back, source).getbbox(alpha_only=False) is None
    assert back_icc == profile
    assert images.reopen(data).info.get("icc_profile") == profile


def test_the_icc_profile_survives_decode_and_staging() -> None:
    profile = images.srgb_profile()
    data = images.encode(images.photo((300, 200)), "JPEG", icc_profile=profile)
    decoded, icc = decode(data, 100)
    for rendition in renditions.chain(decoded, [300, 100]):
        back, back_icc = imaging.from_lossless(imaging.to_lossless(rendition.image, icc))
        assert back_icc == profile
        assert back.size == (rendition.width, rendition.height)


def test_lossless_intermediates_carry_no_exif() -> None:
    exif = images.exif(make="Leica", gps=True)
    data = images.encode(images.photo((64, 48)), "JPEG", exif=exif)
    decoded, icc = decode(data, 64)
    decoded.info["exif"] = exif  # as Pillow's own readers leave it in .info
    staged = imaging.to_lossless(decoded, icc)
    back, _ = imaging.from_lossless(staged)
    assert b"Leica" not in staged
    assert not {271, 0x8769, 0x8825} & set(back.getexif())  # Make, the EXIF and GPS IFDs
    assert "exif" not in back.info


def test_from_lossless_only_reads_tiff() -> None:
    with pytest.raises(UnidentifiedImageError):
        imaging.from_lossless(images.encode(images.photo((8, 8)), "JPEG"))


def test_srgb_profile_is_a_valid_cached_profile() -> None:
    profile = imaging.srgb_profile()
    assert profile is imaging.srgb_profile()
    assert profile[36:40] == b"acsp"
    assert profile[16:20] == b"RGB "
    img = Image.new("RGB", (4, 4))
    buf = io.BytesIO()
    img.save(buf, "PNG", icc_profile=profile)
    assert images.reopen(buf.getvalue()).info["icc_profile"] == profile


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_renditions_with_alpha_chain_premultiplied(mode: str) -> None:
    """The chain resizes premultiplied samples (kept in float from one rendition to the next) and yields
    straight alpha, as close to a premultiplied LANCZOS chain as two implementations of the filter get."""
    source = images.in_mode(mode, (1200, 900))
    premultiplied = {"RGBA": "RGBa", "LA": "La"}[mode]
    out = list(renditions.chain(source, [800, 400]))
    assert [r.image.mode for r in out] == [mode, mode]
    lanczos = Image.Resampling.LANCZOS
    first = source.convert(premultiplied).resize((800, 600), lanczos)
    expected = [first.convert(mode), first.resize((400, 300), lanczos).convert(mode)]
    for rendition, ideal in zip(out, expected, strict=True):
        assert premultiplied_psnr(rendition.image, ideal) > 45
