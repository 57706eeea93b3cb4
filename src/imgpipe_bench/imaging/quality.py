"""Quality of the implementations' renditions: PSNR against a full-decode LANCZOS reference."""

from __future__ import annotations

import io
import math
from typing import Any

from PIL import Image, ImageChops

from imgpipe_bench.imaging.cases import OURS, PYVIPS, QUALITY_WIDTH, QUALITY_WIDTHS, REFERENCE, settings
from imgpipe_bench.imaging.implementations import ours_renditions, vips_thumbnail
from pipeline import encoding


def flat_rgb(img: Image.Image) -> Image.Image:
    """The image as RGB, alpha flattened over white."""
    if img.mode in ("RGBA", "LA"):
        base = Image.new("RGB", img.size, (255, 255, 255))
        base.paste(img.convert("RGBA"), mask=img.getchannel("A"))
        return base
    return img.convert("RGB")


def psnr(a: Image.Image, b: Image.Image) -> float:
    """PSNR in dB of two same-sized images, compared as RGB (alpha flattened over white)."""
    a, b = flat_rgb(a), flat_rgb(b)
    if a.size != b.size:
        raise ValueError(f"sizes differ: {a.size} and {b.size}")
    histogram = ImageChops.difference(a, b).histogram()  # 256 bins per band
    squared = sum(count * (value % 256) ** 2 for value, count in enumerate(histogram))
    mse = squared / (a.width * a.height * 3)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def reference(data: bytes, size: tuple[int, int]) -> Image.Image:
    """Full decode (no draft), LANCZOS straight to ``size`` (no reducing_gap)."""
    with Image.open(io.BytesIO(data)) as source:
        source.load()
        full = source.convert("RGBA" if "A" in source.getbands() else "RGB")
    return full.resize(size, Image.Resampling.LANCZOS)


def _jpeg_round_trip(body: bytes) -> Image.Image:
    with Image.open(io.BytesIO(body)) as img:
        img.load()
        return img.copy()


class _References:
    """The reference of each size, made once."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._made: dict[tuple[int, int], Image.Image] = {}

    def __call__(self, size: tuple[int, int]) -> Image.Image:
        if size not in self._made:
            self._made[size] = reference(self.data, size)
        return self._made[size]


def _pyvips_quality(vips: Any, data: bytes, width: int, ref: _References, figures: dict[str, Any]) -> None:
    """pyvips' rendition of ``width``: its JPEG's PSNR, and at ``QUALITY_WIDTH`` its pixels' PSNR."""
    _, enc = settings()
    thumb = vips_thumbnail(vips, data, width).copy_memory()  # read twice below
    mode = {1: "L", 3: "RGB"}[thumb.bands]
    pixels = Image.frombytes(mode, (thumb.width, thumb.height), thumb.write_to_memory())
    body = thumb.jpegsave_buffer(Q=enc.jpeg_quality, optimize_coding=True, keep="icc")
    figures["psnr_jpeg_by_width_db"][str(width)] = psnr(_jpeg_round_trip(body), ref(pixels.size))
    if width == QUALITY_WIDTH:
        figures["psnr_db"] = psnr(pixels, ref(pixels.size))


def quality(data: bytes, vips: Any) -> dict[str, dict[str, Any]]:
    """PSNR (dB) against the reference of the same size, per implementation, of its renditions:

    - ``psnr_db``: the 1024 px rendition's pixels (before watermark and encoding); the naive
      rendition *is* the reference, so it has none;
    - ``psnr_jpeg_db``: the 1024 px rendition encoded as each implementation encodes it (JPEG q85,
      no watermark) and decoded again; under ``reference``, the reference's own JPEG q85 (what a
      full-decode LANCZOS pipeline, the naive one with alpha flattened, outputs);
    - ``psnr_jpeg_by_width_db``: the same for each of ``QUALITY_WIDTHS`` the source has.
    """
    _, enc = settings()
    ref = _References(data)
    ours: dict[str, Any] = {"psnr_jpeg_by_width_db": {}}
    own: dict[str, Any] = {"psnr_jpeg_by_width_db": {}}
    theirs: dict[str, Any] = {"psnr_jpeg_by_width_db": {}}
    for width, img, icc in ours_renditions(data):
        if width not in QUALITY_WIDTHS:
            continue
        target = ref(img.size)
        body = encoding.encode(img, "jpeg", enc, icc)
        ours["psnr_jpeg_by_width_db"][str(width)] = psnr(_jpeg_round_trip(body), target)
        buf = io.BytesIO()
        flat_rgb(target).save(buf, "JPEG", quality=enc.jpeg_quality)
        own["psnr_jpeg_by_width_db"][str(width)] = psnr(_jpeg_round_trip(buf.getvalue()), target)
        if width == QUALITY_WIDTH:
            ours["psnr_db"] = psnr(img, target)
        if vips is not None:
            _pyvips_quality(vips, data, width, ref, theirs)
    if not ours["psnr_jpeg_by_width_db"]:
        return {}
    key = str(QUALITY_WIDTH)
    figures = {OURS: ours, REFERENCE: own} | ({PYVIPS: theirs} if vips is not None else {})
    for values in figures.values():
        if key in values["psnr_jpeg_by_width_db"]:
            values["psnr_jpeg_db"] = values["psnr_jpeg_by_width_db"][key]
    return figures
