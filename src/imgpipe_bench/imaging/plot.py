"""The imaging benchmark's time chart: median wall ms per case and implementation, drawn with Pillow."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Final

from PIL import Image, ImageDraw, ImageFont

from imgpipe_bench.imaging.cases import NAIVE, OURS, PYVIPS, STAGED
from pipeline.watermark import FONT_FILE

_COLOURS: Final = {OURS: (46, 110, 190), STAGED: (140, 175, 220), PYVIPS: (214, 120, 40), NAIVE: (120, 120, 120)}
_WIDTH, _HEIGHT, _LEFT, _TOP, _BOTTOM = 1200, 640, 80, 70, 90


def _axis(draw: ImageDraw.ImageDraw, top_ms: float, chart_h: int, small: ImageFont.FreeTypeFont) -> float:
    """Grid lines and their labels, on a round step; returns the scale's top in ms."""
    step = next(s for s in (10, 20, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000, 1e9) if top_ms / s <= 8)
    scale_max = math.ceil(top_ms / step) * step
    for k in range(int(scale_max / step) + 1):
        y = _TOP + chart_h - round(k * step / scale_max * chart_h)
        draw.line((_LEFT, y, _WIDTH - 20, y), fill=(225, 225, 225))
        draw.text((_LEFT - 8, y), f"{k * step:g}", fill=(60, 60, 60), font=small, anchor="rm")
    return scale_max


def _legend(draw: ImageDraw.ImageDraw, impls: list[str], font: ImageFont.FreeTypeFont) -> None:
    lx = _LEFT
    for impl in impls:
        draw.rectangle((lx, _HEIGHT - 32, lx + 14, _HEIGHT - 18), fill=_COLOURS[impl])
        draw.text((lx + 20, _HEIGHT - 25), impl, fill=(0, 0, 0), font=font, anchor="lm")
        lx += 40 + round(draw.textlength(impl, font=font))


def draw_plot(figures: dict[str, Any], target: Path) -> Path:
    """Grouped bars: median ms per case and implementation (drawn with Pillow)."""
    cases = figures["cases"]
    impls = [i for i in (OURS, STAGED, PYVIPS, NAIVE) if any(i in c["impls"] for c in cases)]
    font = ImageFont.truetype(str(FONT_FILE), 15)
    small = ImageFont.truetype(str(FONT_FILE), 12)
    chart_h = _HEIGHT - _TOP - _BOTTOM
    top_ms = max((c["impls"][i]["median_ms"] for c in cases for i in impls if i in c["impls"]), default=1.0)
    img = Image.new("RGB", (_WIDTH, _HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    cpus = figures["settings"].get("cpu_affinity")
    cores = "1 pinned core" if cpus else "all cores"
    title = f"resize + watermark + encode, 2048/1024/320 px JPEG q85: median wall ms per source ({cores})"
    draw.text((_LEFT, 20), title, fill=(0, 0, 0), font=font)
    scale_max = _axis(draw, top_ms, chart_h, small)
    group = (_WIDTH - 20 - _LEFT) / max(1, len(cases))
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
        draw.text((x0 + group * 0.4, _TOP + chart_h + 8), case["label"], fill=(0, 0, 0), font=small, anchor="ma")
    _legend(draw, impls, font)
    draw.line((_LEFT, _TOP + chart_h, _WIDTH - 20, _TOP + chart_h), fill=(0, 0, 0))
    target.parent.mkdir(parents=True, exist_ok=True)
    img.save(target, "PNG")
    return target
