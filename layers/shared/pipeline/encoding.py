"""Final encoding: each output is encoded exactly once, in its final format."""

from __future__ import annotations

import io
from typing import Final, NamedTuple

from PIL import Image, ImageCms

from pipeline import imaging
from pipeline.settings import OUTPUT_CONTENT_TYPES, OUTPUT_EXTENSIONS, EncodeSettings

EXTENSIONS: Final = OUTPUT_EXTENSIONS
CONTENT_TYPES: Final = OUTPUT_CONTENT_TYPES
_BACKGROUND: Final = (255, 255, 255)


class SizeLimit(NamedTuple):
    """The largest image an output format holds (and its decoders read back)."""

    side: int
    pixels: int | None = None


#: JPEG: 65,500 px a side (libjpeg's JPEG_MAX_DIMENSION). WebP: 16,383 (the 14-bit sizes of its
#: bitstreams, libwebp's WEBP_MAX_DIMENSION). AVIF: AV1 itself allows 65,536 a side, and libaom
#: encodes that, but libavif decoders refuse more than 32,768 a side or 16384 x 16384 pixels
#: (AVIF_DEFAULT_IMAGE_DIMENSION_LIMIT, AVIF_DEFAULT_IMAGE_SIZE_LIMIT): Pillow's own reader cannot
#: open a 1 x 32,769 AVIF it wrote.
SIZE_LIMITS: Final = {
    "jpeg": SizeLimit(65_500),
    "webp": SizeLimit(16_383),
    "avif": SizeLimit(32_768, 16_384 * 16_384),
}


def fits(fmt: str, width: int, height: int) -> bool:
    """Whether a ``width`` x ``height`` image can be encoded as ``fmt`` (an output format)."""
    limit = SIZE_LIMITS[fmt]
    return max(width, height) <= limit.side and (limit.pixels is None or width * height <= limit.pixels)


def _flatten(img: Image.Image) -> Image.Image:
    """Composite transparency over white, for formats without alpha."""
    if img.mode == "RGBA":
        base = Image.new("RGB", img.size, _BACKGROUND)
        base.paste(img, mask=img.getchannel("A"))
        return base
    if img.mode == "LA":
        base = Image.new("L", img.size, 255)
        base.paste(img.getchannel("L"), mask=img.getchannel("A"))
        return base
    return img


def _colour(img: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """L and LA as RGB and RGBA, for encoders without grey. A grey profile describes no RGB image: the
    tones it gives the grey levels are carried into sRGB, which the result is tagged with."""
    if img.mode not in ("L", "LA"):
        return img, icc
    rgb_mode = "RGBA" if img.mode == "LA" else "RGB"
    if icc is None:
        return img.convert(rgb_mode), None
    grey = img.getchannel("L") if img.mode == "LA" else img
    rgb = ImageCms.profileToProfile(
        grey, ImageCms.ImageCmsProfile(io.BytesIO(icc)), imaging.srgb_cms_profile(), outputMode="RGB"
    )
    assert rgb is not None  # profileToProfile returns None only with inPlace
    if img.mode == "LA":
        rgb.putalpha(img.getchannel("A"))
    return rgb, imaging.srgb_profile()


def encode(img: Image.Image, fmt: str, settings: EncodeSettings, icc: bytes | None) -> bytes:
    """Encode ``img`` (L, LA, RGB or RGBA) as ``fmt`` with the configured quality; no EXIF is written.

    ``icc`` goes through ``imaging.usable_icc`` first: a profile that does not describe the image is
    never embedded.
    """
    icc = imaging.usable_icc(icc, img.mode)
    buf = io.BytesIO()
    if fmt == "jpeg":
        _flatten(img).save(buf, "JPEG", quality=settings.jpeg_quality, optimize=True, **_profile(icc))
    elif fmt == "webp":
        img, icc = _colour(img, icc)
        img.save(buf, "WEBP", quality=settings.webp_quality, method=4, **_profile(icc))
    elif fmt == "avif":
        img, icc = _colour(img, icc)
        img.save(buf, "AVIF", quality=settings.avif_quality, speed=6, **_profile(icc))
    else:
        raise ValueError(f"unknown output format {fmt!r}")
    return buf.getvalue()


def _profile(icc: bytes | None) -> dict[str, object]:
    return {"icc_profile": icc} if icc else {}
