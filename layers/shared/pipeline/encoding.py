"""Final encoding: each output is encoded exactly once, in its final format."""

from __future__ import annotations

import io
from typing import Final

from PIL import Image

from pipeline.settings import OUTPUT_CONTENT_TYPES, OUTPUT_EXTENSIONS, EncodeSettings

EXTENSIONS: Final = OUTPUT_EXTENSIONS
CONTENT_TYPES: Final = OUTPUT_CONTENT_TYPES
_BACKGROUND: Final = (255, 255, 255)


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


def encode(img: Image.Image, fmt: str, settings: EncodeSettings, icc: bytes | None) -> bytes:
    """Encode ``img`` (L, LA, RGB or RGBA) as ``fmt`` with the configured quality; no EXIF is written."""
    buf = io.BytesIO()
    extra: dict[str, object] = {"icc_profile": icc} if icc else {}
    if fmt == "jpeg":
        _flatten(img).save(buf, "JPEG", quality=settings.jpeg_quality, optimize=True, **extra)
    elif fmt == "webp":
        img = img.convert("RGBA" if img.mode == "LA" else "RGB") if img.mode in ("L", "LA") else img
        img.save(buf, "WEBP", quality=settings.webp_quality, method=4, **extra)
    elif fmt == "avif":
        img = img.convert("RGBA" if img.mode == "LA" else "RGB") if img.mode in ("L", "LA") else img
        img.save(buf, "AVIF", quality=settings.avif_quality, speed=6, **extra)
    else:
        raise ValueError(f"unknown output format {fmt!r}")
    return buf.getvalue()
