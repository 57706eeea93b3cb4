"""The fast decoders (libspng for PNG, libwebp's one-shot decoder for WebP) against Pillow.

Each test decodes real images made by Pillow and compares with what Pillow itself decodes: the fast
paths must give Pillow's samples, and every image they do not take must still decode, through
Pillow, exactly as before.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image, ImageChops

from pipeline import codecs, imaging
from pipeline.errors import CorruptImage
from tests import images

MAX_PIXELS = 50_000_000


def decode(data: bytes, target_width: int) -> Image.Image:
    """Decode as the resize step does, in the mode of the renditions made from the decode."""
    with imaging.open_image(data, MAX_PIXELS) as img:
        decoded = imaging.decode(img, target_width, data)[0]
    return decoded.convert(imaging.rendition_mode(decoded.mode))


def pillow(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.copy()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often each fast decoder was called (and returned pixels)."""
    counted: dict[str, int] = {"png": 0, "webp": 0}

    def counting(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            pixels = real(*args, **kwargs)
            counted[name] += pixels is not None
            return pixels

        return wrapper

    for name in counted:
        monkeypatch.setattr(codecs, name, counting(name, getattr(codecs, name)))
    return counted


def identical(a: Image.Image, b: Image.Image) -> bool:
    return a.mode == b.mode and a.size == b.size and ImageChops.difference(a, b).getbbox() is None


# -- PNG ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("interlace", [False, True])
def test_png_8_bit_decodes_to_pillows_samples(mode: str, interlace: bool, calls: dict[str, int]) -> None:
    source = images.in_mode(mode, (203, 151), seed=3)
    data = images.encode(source, "PNG") if not interlace else _interlaced_png(source)
    out = decode(data, 4000)
    assert calls["png"] == 1
    assert identical(out, pillow(data))
    assert identical(out, source)


def _interlaced_png(img: Image.Image) -> bytes:
    """Pillow cannot write Adam7: libspng can, and Pillow reads it back."""
    import numpy as np
    import pyspng

    data: bytes = pyspng.encode(np.asarray(img), progressive=pyspng.ProgressiveMode.INTERLACED)
    assert pillow(data).info.get("interlace") == 1
    return data


@pytest.mark.parametrize("mode", ["P", "PT", "1", "I;16"])
def test_png_other_depths_and_palettes_decode_through_pillow(mode: str, calls: dict[str, int]) -> None:
    data = images.encode(images.in_mode(mode, (120, 90)), "PNG")
    out = decode(data, 4000)
    assert calls["png"] == 0
    with imaging.open_image(data, MAX_PIXELS) as img:
        img.load()
        expected, _ = imaging._normalise_mode(img, None)
    assert identical(out, expected)


def test_png_16_bit_rgb_decodes_through_pillow(calls: dict[str, int]) -> None:
    """Pillow gives a 16-bit RGB PNG the mode RGB too; the raw mode tells the depth."""
    import numpy as np
    import pyspng

    deep = (np.asarray(images.photo((64, 48))).astype(np.uint16) * 257 + 3).astype(np.uint16)
    rgba16 = np.dstack([deep, np.full(deep.shape[:2], 65535, np.uint16)])
    data = pyspng.encode(rgba16)
    out = decode(data, 4000)
    assert calls["png"] == 0
    assert identical(out, pillow(data))


def test_png_exif_after_the_pixels_is_applied(calls: dict[str, int]) -> None:
    """Pillow finds an eXIf chunk that follows IDAT only while loading: such a PNG takes Pillow's path,
    and its orientation is applied as before."""
    stored = images.store_with_orientation(images.markers(), 6)
    plain = images.encode(stored, "PNG")
    iend = plain.rindex(b"IEND") - 4
    exif_chunk = images.png_chunk(b"eXIf", images.exif(orientation=6).tobytes())
    data = plain[:iend] + exif_chunk + plain[iend:]
    out = decode(data, 4000)
    assert calls["png"] == 0
    assert identical(out, images.markers())


def test_png_exif_before_the_pixels_is_applied_on_the_fast_path(calls: dict[str, int]) -> None:
    stored = images.store_with_orientation(images.markers(), 8)
    data = images.encode(stored, "PNG", exif=images.exif(orientation=8))
    assert data.index(b"eXIf") < data.index(b"IDAT")
    out = decode(data, 4000)
    assert calls["png"] == 1
    assert identical(out, images.markers())


def test_png_damaged_pixel_data_is_refused_as_pillow_refuses_it(calls: dict[str, int]) -> None:
    data = bytearray(images.encode(images.in_mode("RGBA", (300, 200)), "PNG"))
    data[data.index(b"IDAT") + 400] ^= 0xFF
    with pytest.raises(CorruptImage, match="PNG data cannot be decoded"):
        decode(bytes(data), 4000)
    assert calls["png"] == 0


# -- WebP --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_webp_lossless_decodes_to_pillows_samples(mode: str, calls: dict[str, int]) -> None:
    source = images.in_mode(mode, (211, 157), seed=5)
    data = images.encode(source, "WEBP", lossless=True, exact=True)
    out = decode(data, 4000)
    assert calls["webp"] == 1
    assert identical(out, pillow(data))
    assert identical(out, source)


def test_webp_lossy_whole_decode_matches_pillow(calls: dict[str, int]) -> None:
    data = images.encode(images.photo((320, 240), seed=2), "WEBP", quality=90)
    out = decode(data, 320)  # not smaller than the source: decoded whole
    assert calls["webp"] == 1
    assert images.psnr(out, pillow(data)) > 45


def test_webp_is_decoded_whole_for_any_target(calls: dict[str, int]) -> None:
    data = images.encode(images.in_mode("RGB", (400, 300)), "WEBP", quality=90)
    out = decode(data, 200)
    assert calls["webp"] == 1
    assert out.size == (400, 300)
    assert images.psnr(out, pillow(data)) > 45


def test_animated_webp_decodes_its_first_frame_through_pillow(calls: dict[str, int]) -> None:
    data = images.animated_webp(frames=3, size=(48, 32))
    out = decode(data, 24)
    assert calls["webp"] == 0
    assert identical(out.convert("RGB"), pillow(data).convert("RGB"))


def test_webp_damaged_data_is_refused_as_pillow_refuses_it(calls: dict[str, int]) -> None:
    data = images.encode(images.photo((400, 300)), "WEBP", quality=90)
    cut = data[: len(data) // 2]
    assert codecs.webp(cut) is None
    with pytest.raises(CorruptImage):
        decode(cut, 100)


# -- without a copy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "params"), [("JPEG", {"quality": 90}), ("PNG", {}), ("WEBP", {"quality": 90}), ("WEBP", {"lossless": True})]
)
def test_opaque_colour_is_decoded_as_rgbx_on_the_decoders_own_buffer(fmt: str, params: dict[str, Any]) -> None:
    """The decoders write four bytes a pixel, the layout Pillow keeps RGB in: the image maps their buffer
    (read-only) instead of unpacking a copy, and the renditions made from it are RGB."""
    source = images.photo((400, 300), seed=6)
    data = images.encode(source, fmt, **params)
    with imaging.open_image(data, MAX_PIXELS) as img:
        decoded, _ = imaging.decode(img, 400, data)
    assert decoded.mode == "RGBX"
    assert decoded.readonly
    as_rgb = decoded.convert("RGB")
    assert identical(as_rgb.convert("RGB"), pillow(data).convert("RGB")) or images.psnr(as_rgb, pillow(data)) > 45
    renditions = list(imaging.renditions(decoded, [400, 200]))
    assert [r.image.mode for r in renditions] == ["RGB", "RGB"]
    assert identical(renditions[0].image, as_rgb)
    assert identical(renditions[1].image, imaging.resize(as_rgb, (200, 150)))
