"""The fast decoders (libspng for PNG, libwebp's one-shot decoder for WebP) against Pillow.

Each test decodes real images made by Pillow and compares with what Pillow itself decodes: the fast
paths must give Pillow's samples, and every image they do not take must still decode, through
Pillow, exactly as before.
"""

from __future__ import annotations

import gc
import io
import struct
import weakref
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image, ImageChops, PngImagePlugin

from pipeline import codecs, imaging, inspection, renditions
from pipeline.errors import CorruptImage
from pipeline.settings import Limits
from tests import images

MAX_PIXELS = 50_000_000


def decode(data: bytes, target_width: int) -> Image.Image:
    """Decode as the resize step does, in the mode of the renditions made from the decode."""
    with imaging.open_image(data, MAX_PIXELS) as img:
        decoded = imaging.decode(img, target_width, data)[0]
    return decoded.convert(renditions.rendition_mode(decoded.mode))


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


def assert_decoded_by_pillow(data: bytes, calls: dict[str, int]) -> None:
    """The PNG took Pillow's path, and came out as Pillow's decode, normalised."""
    out = decode(data, 4000)
    assert calls["png"] == 0
    with imaging.open_image(data, MAX_PIXELS) as img:
        img.load()
        expected, _ = imaging._normalise_mode(img, None)
    assert identical(out, expected)


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
    assert_decoded_by_pillow(data, calls)


def _png(width: int, height: int, depth: int, colour_type: int, rows: list[bytes], after: bytes = b"") -> bytes:
    """A PNG from raw scanlines (filter 0), with ``after`` (whole chunks) between IDAT and IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    idat = zlib.compress(b"".join(b"\x00" + row for row in rows))
    chunks = images.png_chunk(b"IHDR", ihdr) + images.png_chunk(b"IDAT", idat) + after
    return b"\x89PNG\r\n\x1a\n" + chunks + images.png_chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("depth", "colour_type", "samples"),
    [(16, 2, 3), (16, 6, 4), (16, 0, 1), (2, 0, 1), (4, 0, 1), (1, 0, 1)],
    ids=["RGB16", "RGBA16", "grey16", "grey2", "grey4", "grey1"],
)
def test_png_other_bit_depths_decode_through_pillow(
    depth: int, colour_type: int, samples: int, calls: dict[str, int]
) -> None:
    """Pillow names 16-bit RGB "RGB" and 2-bit grey "L" too: the raw mode tells the depth."""
    width, height = 37, 23
    row_bytes = (width * samples * depth + 7) // 8
    rows = [bytes((x * 37 + y * 11) % 256 for x in range(row_bytes)) for y in range(height)]
    data = _png(width, height, depth, colour_type, rows)
    assert_decoded_by_pillow(data, calls)


def test_png_orientation_from_xmp_is_applied(calls: dict[str, int]) -> None:
    """tiff:Orientation in XMP counts where there is no EXIF (as Image.getexif() has it), on the fast path too."""
    stored = images.store_with_orientation(images.markers(), 6)
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
    )
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp)
    data = images.encode(stored, "PNG", pnginfo=info)
    assert "exif" not in images.reopen(data).info
    out = decode(data, 4000)
    assert calls["png"] == 1
    assert identical(out, images.markers())


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        (b"tEXt", b"Comment\x00late"),
        (b"zTXt", b"Comment\x00\x00" + zlib.compress(b"late")),
        (b"iTXt", b"Comment\x00\x00\x00\x00\x00late"),
        (b"tIME", struct.pack(">HBBBBB", 2026, 12, 2, 6, 0, 0)),
    ],
)
def test_png_chunks_after_the_pixels_send_it_through_pillow(kind: bytes, body: bytes, calls: dict[str, int]) -> None:
    source = images.in_mode("RGB", (64, 48))
    plain = images.encode(source, "PNG")
    iend = plain.rindex(b"IEND") - 4
    data = plain[:iend] + images.png_chunk(kind, body) + plain[iend:]
    assert imaging._png_chunks_after_pixels(data) == {kind, b"IEND"}
    assert imaging._png_chunks_after_pixels(plain) == {b"IEND"}
    assert identical(decode(data, 4000), source)
    assert calls["png"] == 0


def test_png_oversized_text_after_the_pixels_is_refused_as_pillow_refuses_it(calls: dict[str, int]) -> None:
    """Pillow caps a text chunk's inflated size (MAX_TEXT_CHUNK); libspng alone would decode the image."""
    rows = [bytes(range(48)) for _ in range(16)]
    bomb = images.png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"x" * (PngImagePlugin.MAX_TEXT_CHUNK + 1)))
    data = _png(16, 16, 8, 2, rows, after=bomb)
    with pytest.raises(CorruptImage):
        decode(data, 4000)
    assert calls["png"] == 0


def test_png_exif_after_the_pixels_is_not_read(calls: dict[str, int]) -> None:
    """Validate reads a PNG's header only, so an eXIf chunk after IDAT is not seen there: decode does not
    apply it either, and the decoded width is the display width validate reported."""
    stored = images.store_with_orientation(images.markers(), 6)
    plain = images.encode(stored, "PNG")
    iend = plain.rindex(b"IEND") - 4
    exif_chunk = images.png_chunk(b"eXIf", images.exif(orientation=6).tobytes())
    data = plain[:iend] + exif_chunk + plain[iend:]
    out = decode(data, 4000)
    assert calls["png"] == 0  # a chunk after the pixels: Pillow's path
    assert identical(out, stored)
    info = inspection.inspect(data, data, len(data), Limits(1 << 30, MAX_PIXELS, ""))
    assert (info["width"], info["orientation"]) == (out.width, 1)


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
    out = decode(data, 320)
    assert calls["webp"] == 1
    assert identical(out, pillow(data))


def test_webp_is_decoded_whole_for_any_target(calls: dict[str, int]) -> None:
    data = images.encode(images.in_mode("RGB", (400, 300)), "WEBP", quality=90)
    out = decode(data, 200)
    assert calls["webp"] == 1
    assert out.size == (400, 300)
    assert identical(out, pillow(data))


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
    if fmt == "JPEG":  # libjpeg-turbo in simplejpeg and in Pillow's wheels need not be the same build
        assert images.psnr(as_rgb, pillow(data)) > 45
    else:
        assert identical(as_rgb, pillow(data))
    made = list(renditions.chain(decoded, [400, 200]))
    assert [r.image.mode for r in made] == ["RGB", "RGB"]
    assert identical(made[0].image, as_rgb)
    assert identical(made[1].image, renditions.resize(as_rgb, (200, 150)))


def test_an_rgbx_decode_is_let_go_once_its_rgb_rendition_exists() -> None:
    """A source as wide as its largest rendition: the chain keeps the RGB copy, not the RGBX decode too."""
    data = images.encode(images.photo((400, 300), seed=7), "PNG")
    with imaging.open_image(data, MAX_PIXELS) as img:
        decoded, _ = imaging.decode(img, 400, data)
    assert decoded.mode == "RGBX"
    decode_ref = weakref.ref(decoded)
    chain = renditions.chain(decoded, [400, 200])
    del decoded
    first = next(chain)
    gc.collect()
    assert first.image.mode == "RGB"
    assert decode_ref() is None
    assert next(chain).image.size == (200, 150)
