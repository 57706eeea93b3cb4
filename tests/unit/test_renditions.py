"""Renditions from an upload's bytes: libvips decodes colour and grey JPEGs itself, streaming; the
result is the renditions ``imaging.decode`` and ``renditions.chain`` make, whichever path runs."""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable

import pytest
from PIL import Image

from pipeline import imaging, renditions
from pipeline.errors import CorruptImage
from tests import images

MAX_PIXELS = 10**8


def by_decode(data: bytes, widths: list[int]) -> tuple[list[renditions.Rendition], bytes | None]:
    """The other path: Pillow (and the decoders of ``codecs``) decode, libvips resizes."""
    with imaging.open_image(data, MAX_PIXELS) as img:
        decoded, icc = imaging.decode(img, widths[0], data)
    return list(renditions.chain(decoded, widths)), icc


def by_source(data: bytes, widths: list[int]) -> tuple[list[renditions.Rendition], bytes | None]:
    with imaging.open_image(data, MAX_PIXELS) as img:
        chain, icc = renditions.from_source(img, data, widths)
    return list(chain), icc


def refused_by_libvips(img: Image.Image, data: bytes, widths: list[int]) -> bool:
    load = renditions._loader(img, data, widths)
    assert load is not None, "a source libvips loads itself"
    return renditions._streamed(load, img.mode, imaging.exif_orientation(img), widths) is None


@pytest.mark.parametrize(
    ("fmt", "mode", "params"),
    [
        ("PNG", "L", {}),
        ("PNG", "LA", {}),
        ("PNG", "RGB", {}),
        ("PNG", "RGBA", {}),
    ],
)
@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_a_png_decoded_by_libvips_matches_the_decode_path(
    fmt: str, mode: str, params: dict[str, object], orientation: int
) -> None:
    source = images.in_mode(mode, (600, 400))
    data = images.encode(source, fmt, exif=images.exif(orientation=orientation), **params)
    with imaging.open_image(data, MAX_PIXELS) as img:
        assert renditions._loader(img, data, [300]) is not None
        upright = img.height if imaging.exif_orientation(img) in imaging.TRANSPOSED else img.width
    widths = imaging.plan_widths(upright, [500, 200])
    got, icc = by_source(data, widths)
    expected, expected_icc = by_decode(data, widths)
    assert icc == expected_icc
    assert [(r.width, r.height, r.image.mode) for r in got] == [(r.width, r.height, r.image.mode) for r in expected]
    for mine, theirs in zip(got, expected, strict=True):
        premultiplied = {"RGBA": "RGBa", "LA": "La"}.get(mine.image.mode, mine.image.mode)
        assert images.psnr(mine.image.convert(premultiplied), theirs.image.convert(premultiplied)) > 45


@pytest.mark.parametrize(
    ("what", "make"),
    [
        ("palette PNG", lambda: images.encode(images.in_mode("P", (64, 48)), "PNG")),
        ("PNG with a transparent colour", lambda: images.encode(images.photo((64, 48)), "PNG", transparency=(0, 0, 0))),
        ("16-bit PNG", lambda: images.encode(images.in_mode("I;16", (64, 48)), "PNG")),
        ("CMYK JPEG", lambda: images.encode(images.photo((64, 48)).convert("CMYK"), "JPEG")),
        ("GIF", lambda: images.encode(images.photo((64, 48)), "GIF")),
        ("TIFF", lambda: images.encode(images.photo((64, 48)), "TIFF")),
        ("WebP", lambda: images.encode(images.photo((64, 48)), "WEBP", quality=90)),
    ],
)
def test_other_sources_are_left_to_imaging_decode(what: str, make: Callable[[], bytes]) -> None:
    data = make()
    with imaging.open_image(data, MAX_PIXELS) as img:
        assert renditions._loader(img, data, [32]) is None, what
    got, _ = by_source(data, [32])
    expected, _ = by_decode(data, [32])
    assert got[0].image.tobytes() == expected[0].image.tobytes()


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_jpeg_decoded_by_libvips_matches_the_decode_path(mode: str, orientation: int) -> None:
    source = images.photo((1200, 800)).convert(mode)
    data = images.encode(source, "JPEG", quality=92, exif=images.exif(orientation=orientation))
    upright = 800 if orientation in imaging.TRANSPOSED else 1200
    widths = imaging.plan_widths(upright, [1024, 400, 160])
    got, icc = by_source(data, widths)
    expected, expected_icc = by_decode(data, widths)
    assert icc == expected_icc
    assert [(r.width, r.height, r.image.mode) for r in got] == [(r.width, r.height, r.image.mode) for r in expected]
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.image.size == (mine.width, mine.height)
        assert images.psnr(mine.image, theirs.image) > 40, (mine.width, orientation)


@pytest.mark.parametrize("target", [100, 320, 1000, 2048, 3999])
def test_a_jpeg_is_decoded_by_libvips_at_the_reduction_decode_chooses(target: int) -> None:
    """The same DCT reduction on both paths: a source as wide as the decode yields it whole, never upscaled."""
    data = images.encode(images.photo((4000, 3000)), "JPEG", quality=85)
    widths = imaging.plan_widths(4000, [target, target // 2])
    got, _ = by_source(data, widths)
    expected, _ = by_decode(data, widths)
    assert [(r.width, r.height) for r in got] == [(r.width, r.height) for r in expected]
    assert images.psnr(got[0].image, expected[0].image) > 40


def test_the_icc_profile_of_a_jpeg_is_carried() -> None:
    profile = images.srgb_profile()
    data = images.encode(images.photo((600, 400)), "JPEG", icc_profile=profile)
    _, icc = by_source(data, [300])
    assert icc == profile


def test_a_cmyk_jpeg_goes_through_the_decode_path() -> None:
    data = images.encode(images.photo((600, 400)).convert("CMYK"), "JPEG")
    got, _ = by_source(data, [300])
    expected, _ = by_decode(data, [300])
    assert got[0].image.mode == "RGB"
    assert images.psnr(got[0].image, expected[0].image) == float("inf")


def test_a_jpeg_with_too_many_scans_is_refused_before_any_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    data = images.encode(images.photo((300, 200)), "JPEG", progressive=True)
    monkeypatch.setattr(imaging, "MAX_JPEG_SCANS", 2)
    with imaging.open_image(data, MAX_PIXELS) as img, pytest.raises(CorruptImage, match="more than 2 scans"):
        renditions.from_source(img, data, [150])


def _scan_of_a_missing_component(data: bytes) -> bytes:
    """The JPEG with its (first) scan naming a component the frame does not have: the header still
    reads, the scan cannot be decoded (libjpeg: "Invalid component ID in SOS")."""
    sos = data.index(b"\xff\xda")
    return data[: sos + 5] + b"\x09" + data[sos + 6 :]


def test_a_jpeg_neither_libvips_nor_pillow_decodes_is_a_corrupt_image() -> None:
    data = _scan_of_a_missing_component(images.encode(images.photo((300, 200)), "JPEG", quality=90))
    with imaging.open_image(data, MAX_PIXELS) as img:
        assert img.mode == "RGB"
        assert refused_by_libvips(img, data, [150]), "libvips refuses it"
        with pytest.raises(CorruptImage, match="the JPEG data cannot be decoded"):
            renditions.from_source(img, data, [150])


def test_a_png_whose_pixels_are_not_zlib_is_a_corrupt_image() -> None:
    """Header, checksums and trailer valid, the compressed pixels noise: refused, never filled in."""
    ihdr = struct.pack(">IIBBBBB", 64, 48, 8, 2, 0, 0, 0)
    idat = random.Random(7).randbytes(600)
    data = b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        for kind, body in ((b"IHDR", ihdr), (b"IDAT", idat), (b"IEND", b""))
    )
    with imaging.open_image(data, MAX_PIXELS) as img:
        assert refused_by_libvips(img, data, [32])
        with pytest.raises(CorruptImage):
            renditions.from_source(img, data, [32])


def test_a_jpeg_libvips_refuses_and_pillow_reads_is_decoded_by_pillow() -> None:
    """A progression libjpeg only warns about (a scan repeated): libvips fails on it, Pillow decodes it."""
    data = images.encode(images.photo((320, 240)), "JPEG", progressive=True, quality=90)
    last, end = data.rindex(b"\xff\xda"), data.rindex(b"\xff\xd9")
    repeated = data[:end] + data[last:end] * 3 + data[end:]  # the last refinement scan, three more times
    with imaging.open_image(repeated, MAX_PIXELS) as img:
        assert refused_by_libvips(img, repeated, [160])
    got, _ = by_source(repeated, [160])
    expected, _ = by_decode(repeated, [160])
    assert got[0].image.tobytes() == expected[0].image.tobytes()


def test_of_plans_the_widths_on_the_upright_width() -> None:
    data = images.encode(images.photo((1200, 800)), "JPEG", exif=images.exif(orientation=6))
    chain, _ = renditions.of(data, MAX_PIXELS, [1024, 600])
    assert [(r.width, r.height) for r in chain] == [(800, 1200), (600, 900)]
