"""Watermarking with a text (bundled DejaVu Sans Bold) or a logo (PNG with alpha)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Final

from PIL import Image, ImageDraw, ImageFont

from pipeline.settings import WatermarkSettings

ASSETS: Final = Path(__file__).parent / "assets"
FONT_FILE: Final = ASSETS / "DejaVuSans-Bold.ttf"
#: Text height and logo width as fractions of the image width.
TEXT_SCALE: Final = 0.035
LOGO_SCALE: Final = 0.18
MARGIN_SCALE: Final = 0.02


def applies(width: int, settings: WatermarkSettings) -> bool:
    return settings.enabled and width >= settings.min_width


@cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_FILE), size)


@cache
def _logo(name: str) -> Image.Image:
    path = ASSETS / name
    with Image.open(path) as img:
        return img.convert("RGBA")


def _text_stamp(text: str, width: int) -> tuple[Image.Image, Image.Image]:
    """A white text with a dark outline: (colour layer, alpha mask)."""
    size = max(10, round(width * TEXT_SCALE))
    font = _font(size)
    stroke = max(1, size // 12)
    left, top, right, bottom = (round(v) for v in font.getbbox(text, stroke_width=stroke))
    mask = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    colour = Image.new("RGB", mask.size, (0, 0, 0))
    draw_mask = ImageDraw.Draw(mask)
    draw_colour = ImageDraw.Draw(colour)
    origin = (-left, -top)
    draw_mask.text(origin, text, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    draw_colour.text(origin, text, font=font, fill=(255, 255, 255), stroke_width=stroke, stroke_fill=(0, 0, 0))
    return colour, mask


def _logo_stamp(name: str, width: int) -> tuple[Image.Image, Image.Image]:
    logo = _logo(name)
    target_w = max(8, round(width * LOGO_SCALE))
    target_h = max(1, round(logo.height * target_w / logo.width))
    scaled = logo.resize((target_w, target_h), Image.Resampling.LANCZOS)
    return scaled.convert("RGB"), scaled.getchannel("A")


def _position(size: tuple[int, int], stamp: tuple[int, int], position: str) -> tuple[int, int]:
    width, height = size
    sw, sh = stamp
    margin = round(width * MARGIN_SCALE)
    x = {"left": margin, "right": width - sw - margin}.get(position.rsplit("-", maxsplit=1)[-1], (width - sw) // 2)
    y = {"top": margin, "bottom": height - sh - margin}.get(position.split("-", maxsplit=1)[0], (height - sh) // 2)
    return max(0, x), max(0, y)


def apply(img: Image.Image, settings: WatermarkSettings) -> Image.Image:
    """Return a watermarked copy of ``img`` (L, LA, RGB or RGBA), or ``img`` when none applies."""
    if not applies(img.width, settings):
        return img
    if settings.logo:
        colour, mask = _logo_stamp(settings.logo, img.width)
    else:
        colour, mask = _text_stamp(settings.text, img.width)
    if settings.opacity < 1:
        mask = mask.point(lambda v: round(v * settings.opacity))
    out = img.copy()
    layer = colour if out.mode in ("RGB", "RGBA") else colour.convert("L")
    # Under the stamp the alpha channel rises with the mask too, so the mark stays visible on transparent areas.
    out.paste(layer, _position(out.size, mask.size, settings.position), mask)
    return out
