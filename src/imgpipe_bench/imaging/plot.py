"""The imaging benchmark's time chart: median wall ms per case and implementation, drawn with Pillow."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Final

from PIL import Image, ImageDraw, ImageFont

from imgpipe_bench.imaging.cases import CHAINED, NAIVE, OURS, PER_RENDITION, STAGED
from pipeline.watermark import FONT_FILE

_COLOURS: Final = {
    OURS: (46, 110, 190),
    STAGED: (140, 175, 220),
    PER_RENDITION: (214, 120, 40),
    CHAINED: (240, 180, 90),
    NAIVE: (120, 120, 120),
}
_HEIGHT, _LEFT, _TOP, _BOTTOM, _PER_CASE = 640, 80, 70, 110, 170


def _axis(draw: ImageDraw.ImageDraw, top_ms: float, size: tuple[int, int], small: ImageFont.FreeTypeFont) -> float:
    """Grid lines and their labels, on a round step; returns the scale's top in ms."""
    step = next(s for s in (10, 20, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000, 1e9) if top_ms / s <= 8)
    scale_max = math.ceil(top_ms / step) * step
    width, chart_h = size
    for k in range(int(scale_max / step) + 1):
        y = _TOP + chart_h - round(k * step / scale_max * chart_h)
        draw.line((_LEFT, y, width - 20, y), fill=(225, 225, 225))
        draw.text((_LEFT - 8, y), f"{k * step:g}", fill=(60, 60, 60), font=small, anchor="rm")
    return scale_max


def _legend(draw: ImageDraw.ImageDraw, impls: list[str], font: ImageFont.FreeTypeFont) -> None:
    lx = _LEFT
    for impl in impls:
        draw.rectangle((lx, _HEIGHT - 32, lx + 14, _HEIGHT - 18), fill=_COLOURS[impl])
        draw.text((lx + 20, _HEIGHT - 25), impl, fill=(0, 0, 0), font=font, anchor="lm")
        lx += 40 + round(draw.textlength(impl, font=font))


def _wrapped(name: str, width: int = 14) -> str:
    """A case's name on lines of about ``width`` characters, broken after its dashes and underscores."""
    lines = [""]
    for part in re.split(r"(?<=[-_])", name):
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part
    return "\n".join(lines)


def draw_plot(figures: dict[str, Any], target: Path) -> Path:
    """Grouped bars: median ms per case and implementation (drawn with Pillow)."""
    cases = figures["cases"]
    impls = [i for i in _COLOURS if any(i in c["impls"] for c in cases)]
    font = ImageFont.truetype(str(FONT_FILE), 15)
    small = ImageFont.truetype(str(FONT_FILE), 12)
    chart_h = _HEIGHT - _TOP - _BOTTOM
    top_ms = max((c["impls"][i]["median_ms"] for c in cases for i in impls if i in c["impls"]), default=1.0)
    width = max(1200, _LEFT + 20 + _PER_CASE * len(cases))
    img = Image.new("RGB", (width, _HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    pinned = figures["settings"].get("cpu_affinity")
    cores = "pinned to one idle core" if pinned else "not pinned"
    title = f"whole job, 2048/1024/320 px JPEG: median wall ms per source ({cores}, one libvips thread)"
    draw.text((_LEFT, 20), title, fill=(0, 0, 0), font=font)
    scale_max = _axis(draw, top_ms, (width, chart_h), small)
    group = (width - 20 - _LEFT) / max(1, len(cases))
    bar = group * 0.8 / max(1, len(impls))
    for n, case in enumerate(cases):
        x0 = _LEFT + n * group + group * 0.1
        for m, impl in enumerate(impls):
            if impl not in case["impls"]:
                continue
            ms = case["impls"][impl]["median_ms"]
            y = _TOP + chart_h - round(ms / scale_max * chart_h)
            bx = x0 + m * bar
            draw.rectangle((bx, y, bx + bar - 3, _TOP + chart_h), fill=_COLOURS[impl])
            draw.text((bx + (bar - 3) / 2, y - 3), f"{ms:.0f}", fill=(0, 0, 0), font=small, anchor="md")
        label = _wrapped(case["case"])
        draw.multiline_text((x0 + group * 0.4, _TOP + chart_h + 8), label, fill=(0, 0, 0), font=small, anchor="ma")
    _legend(draw, impls, font)
    draw.line((_LEFT, _TOP + chart_h, width - 20, _TOP + chart_h), fill=(0, 0, 0))
    target.parent.mkdir(parents=True, exist_ok=True)
    img.save(target, "PNG")
    return target
