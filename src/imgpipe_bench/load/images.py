"""The load's uploads: distinct photo-like JPEGs at a few sizes, made in memory."""

from __future__ import annotations

import io
import random
from typing import Final

from PIL import Image, ImageChops, ImageDraw

SIZES: Final[tuple[tuple[int, int], ...]] = ((1200, 800), (640, 480), (1600, 1200))
BASES_PER_SIZE: Final = 4


def photo(size: tuple[int, int], seed: int) -> Image.Image:
    """Gradients, hard-edged shapes and grain: something for the resampler and the encoder to work on."""
    width, height = size
    rnd = random.Random(seed)  # noqa: S311 - deterministic test pixels, not secrets
    across = Image.linear_gradient("L").rotate(90).resize(size)
    down = Image.linear_gradient("L").resize(size)
    radial = Image.radial_gradient("L").resize(size)
    img = Image.merge("RGB", (across, down, radial))
    draw = ImageDraw.Draw(img)
    for i in range(14):
        x0, y0 = rnd.randrange(width), rnd.randrange(height)
        box = (x0, y0, x0 + rnd.randrange(width // 8, width // 2), y0 + rnd.randrange(height // 8, height // 2))
        fill = (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))
        (draw.ellipse if i % 2 else draw.rectangle)(box, fill=fill, outline=(0, 0, 0), width=max(1, width // 300))
    grain = Image.frombytes("L", size, rnd.randbytes(width * height)).point(lambda v: v * 20 // 255)
    return ImageChops.add(img, Image.merge("RGB", (grain, grain, grain)), 1.0, -10)


def make_bodies(count: int) -> list[tuple[tuple[int, int], bytes]]:
    """``count`` distinct JPEGs: a few base photos per size, each copy stamped with its own index."""
    bases = {(size, b): photo(size, seed=size[0] * 100 + b) for size in SIZES for b in range(BASES_PER_SIZE)}
    bodies = []
    for index in range(count):
        size = SIZES[index % len(SIZES)]
        img = bases[(size, index // len(SIZES) % BASES_PER_SIZE)].copy()
        ImageDraw.Draw(img).text((8, 8), f"#{index:05d}", fill=(255, 255, 255))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=88)
        bodies.append((size, buf.getvalue()))
    return bodies
