"""Photo-like test images for the measurements (seeded: the same pixels on every run)."""

from __future__ import annotations

import random

from PIL import Image, ImageChops, ImageDraw, ImageFilter


def photo(size: tuple[int, int], seed: int, alpha: bool = False) -> Image.Image:
    """A photo-like image: smooth gradients, hard-edged shapes, fine lines, soft seeded grain."""
    width, height = size
    rnd = random.Random(seed)  # noqa: S311 - seeded pixels, not secrets
    across = Image.linear_gradient("L").rotate(90).resize(size, Image.Resampling.BILINEAR)
    down = Image.linear_gradient("L").resize(size, Image.Resampling.BILINEAR)
    radial = Image.radial_gradient("L").resize(size, Image.Resampling.BILINEAR)
    img = Image.merge("RGB", (across, down, radial))
    draw = ImageDraw.Draw(img)
    edge = max(1, width // 400)
    for i in range(24):
        x0, y0 = rnd.randrange(width), rnd.randrange(height)
        x1 = x0 + rnd.randrange(max(2, width // 10), max(3, width // 3))
        y1 = y0 + rnd.randrange(max(2, height // 10), max(3, height // 3))
        fill = (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))
        shape = draw.ellipse if i % 2 else draw.rectangle
        shape((x0, y0, x1, y1), fill=fill, outline=(0, 0, 0), width=edge)
    # A patch of fine detail (fabric, foliage): 1-2 px lines, where resamplers differ most.
    px, py = rnd.randrange(width // 2), rnd.randrange(height // 2)
    for k in range(0, min(width, height) // 4, 3):
        draw.line((px + k, py, px, py + k), fill=(250, 250, 240), width=1)
    for _ in range(12):
        points = (rnd.randrange(width), rnd.randrange(height), rnd.randrange(width), rnd.randrange(height))
        draw.line(points, fill=(255, 255, 255), width=edge)
    grain = Image.frombytes("L", size, rnd.randbytes(width * height)).filter(ImageFilter.GaussianBlur(0.6))
    grain = grain.point(lambda v: v * 20 // 255)
    img = ImageChops.add(img, Image.merge("RGB", (grain, grain, grain)), 1.0, -10)
    if alpha:
        # Opaque in the middle, fading to fully transparent towards the corners.
        mask = Image.radial_gradient("L").resize(size, Image.Resampling.BILINEAR).point(lambda v: 255 - v)
        img.putalpha(mask.point(lambda v: min(255, max(0, (v - 40) * 2))))
    return img
