"""The implementations of the whole job (decode, the three renditions, the watermark, JPEG encoding): ours
(the layer's functions), pyvips per rendition, pyvips chained and naive Pillow. Each turns a source's bytes
into the JPEG of each rendition, by width; ``*_renditions`` give each one's renditions before the watermark
(what ``quality`` measures)."""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from imgpipe_bench.imaging.cases import CHAINED, NAIVE, OURS, PER_RENDITION, STAGED, defaults, settings
from pipeline import encoding, imaging, renditions, watermark
from pipeline.settings import WatermarkSettings


def ours_renditions(data: bytes) -> Iterator[tuple[int, Image.Image, bytes | None]]:
    """The resize step's work, as ``steps.resize`` calls it (widths planned on the display width)."""
    chain, icc = renditions.of(data, defaults().max_pixels, defaults().widths)
    for rendition in chain:
        yield rendition.width, rendition.image, icc


def run_ours(data: bytes, staged: bool = False) -> dict[int, bytes]:
    """Resize, then watermark and encode each rendition as ``steps.watermark_and_encode`` does.

    With ``staged``, each rendition also goes through the lossless (TIFF) intermediate that carries it
    from the resize function to the watermark function in the pipeline.
    """
    marks, enc = settings()
    outputs: dict[int, bytes] = {}
    for width, rendition, rendition_icc in ours_renditions(data):
        image, icc = rendition, rendition_icc
        if staged:
            image, icc = imaging.from_lossless(imaging.to_lossless(rendition, rendition_icc))
        marked = watermark.apply(image, marks)
        for fmt in enc.formats:
            outputs[width] = encoding.encode(marked, fmt, enc, icc)
    return outputs


def ours_resize_step(data: bytes, staging: Path) -> None:
    """The resize function's work: renditions written one by one as lossless intermediates."""
    for stale in staging.glob("*.tiff"):
        stale.unlink()
    for width, rendition, icc in ours_renditions(data):
        (staging / f"{width}.tiff").write_bytes(imaging.to_lossless(rendition, icc))


def ours_watermark_step(staging: Path) -> dict[int, bytes]:
    """The watermark function's work: each intermediate read, watermarked and encoded."""
    marks, enc = settings()
    outputs: dict[int, bytes] = {}
    for path in sorted(staging.glob("*.tiff"), key=lambda p: -int(p.stem)):
        img, icc = imaging.from_lossless(path.read_bytes())
        marked = watermark.apply(img, marks)
        del img
        for fmt in enc.formats:
            outputs[int(path.stem)] = encoding.encode(marked, fmt, enc, icc)
    return outputs


def staged_bytes(data: bytes) -> int:
    """Bytes of the lossless intermediates (``imaging.to_lossless``) the resize step stages for one source."""
    return sum(len(imaging.to_lossless(rendition, icc)) for _, rendition, icc in ours_renditions(data))


def pyvips_module() -> tuple[Any, str | None]:
    """``(pyvips, None)``, or ``(None, why it cannot be used)``."""
    try:
        vips = importlib.import_module("pyvips")
    except Exception as exc:  # noqa: BLE001 - ImportError, or OSError/cffi errors when libvips is missing
        why = f"pyvips is not importable ({type(exc).__name__}: {exc})"
        return None, why + " (pyvips and pyvips-binary are dependencies of the project: pip install -e .)"
    vips.cache_set_max(0)  # no operation cache: every repetition does the whole work
    return vips, None


def _vips_watermark(vips: Any, img: Any, marks: WatermarkSettings) -> Any:
    """The same mark as ``watermark.apply``: white text, dark outline, opacity, bottom-right margin."""
    size = max(10, round(img.width * watermark.TEXT_SCALE))
    stroke = max(1, size // 12)
    text = vips.Image.text(marks.text, font=f"DejaVu Sans Bold {size}", fontfile=str(watermark.FONT_FILE), dpi=72)
    text = text.embed(stroke, stroke, text.width + 2 * stroke, text.height + 2 * stroke)
    outline = text.rank(2 * stroke + 1, 2 * stroke + 1, (2 * stroke + 1) ** 2 - 1)  # max filter: the stroke
    colour = text if img.bands < 3 else text.bandjoin([text, text])
    overlay = colour.bandjoin((outline * marks.opacity).cast("uchar"))
    overlay = overlay.copy(interpretation="srgb" if img.bands >= 3 else "b-w")
    margin = round(img.width * watermark.MARGIN_SCALE)
    x = max(0, img.width - overlay.width - margin)
    y = max(0, img.height - overlay.height - margin)
    w, h = min(overlay.width, img.width - x), min(overlay.height, img.height - y)
    region = img.crop(x, y, w, h)
    blended = region.composite2(overlay.crop(0, 0, w, h), "over").extract_band(0, n=img.bands).cast("uchar")
    return img.insert(blended, x, y)


def _vips_display_size(vips: Any, data: bytes) -> tuple[int, int]:
    """The source's size as displayed (EXIF orientation applied, as ``thumbnail`` does), from its header."""
    header = vips.Image.new_from_buffer(data, "")
    transposed = header.get_typeof("orientation") != 0 and header.get("orientation") in (5, 6, 7, 8)
    return (header.height, header.width) if transposed else (header.width, header.height)


def vips_per_rendition(vips: Any, data: bytes) -> Iterator[tuple[int, Any]]:
    """Each rendition by its own ``thumbnail_buffer`` (a decode each, with shrink-on-load)."""
    for width in imaging.plan_widths(_vips_display_size(vips, data)[0], defaults().widths):
        yield width, vips_thumbnail(vips, data, width)


def vips_chained(vips: Any, data: bytes) -> Iterator[tuple[int, Any]]:
    """One decode: ``thumbnail_buffer`` to the largest width (shrink-on-load), then each smaller rendition
    resized (lanczos3) from the previous one. Each rendition is made in memory once (libvips is lazy: a
    rendition saved and then resized from would otherwise run its whole pipeline, decode included, twice)."""
    source_width, source_height = _vips_display_size(vips, data)
    widths = imaging.plan_widths(source_width, defaults().widths)
    current = vips_thumbnail(vips, data, widths[0]).copy_memory()
    yield widths[0], current
    for width in widths[1:]:
        height = imaging.scaled_height(source_width, source_height, width)
        current = current.resize(width / current.width, vscale=height / current.height, kernel="lanczos3")
        current = current.copy_memory()
        yield width, current


def run_vips(renditions: Iterator[tuple[int, Any]], vips: Any) -> dict[int, bytes]:
    """Renditions watermarked with ``composite2`` and saved as JPEG (same quality, optimised coding)."""
    marks = settings()[0]
    outputs: dict[int, bytes] = {}
    for width, rendition in renditions:
        img = _vips_watermark(vips, rendition, marks) if watermark.applies(rendition.width, marks) else rendition
        outputs[width] = vips_jpeg(img)
    return outputs


def vips_jpeg(img: Any) -> bytes:
    """``img`` as JPEG at the pipeline's quality, with optimised Huffman coding, ICC profile kept."""
    body: bytes = img.jpegsave_buffer(Q=settings()[1].jpeg_quality, optimize_coding=True, keep="icc")
    return body


def vips_thumbnail(vips: Any, data: bytes, width: int) -> Any:
    """A ``width``-wide rendition, alpha flattened over white (as ``encoding.encode`` does for JPEG)."""
    img = vips.Image.thumbnail_buffer(data, width, height=10_000_000, size="down")
    return img.flatten(background=[255] * (img.bands - 1)) if img.hasalpha() else img


def _naive_watermark(img: Image.Image, marks: WatermarkSettings) -> Image.Image:
    size = max(10, round(img.width * watermark.TEXT_SCALE))
    font = ImageFont.truetype(str(watermark.FONT_FILE), size)
    stroke = max(1, size // 12)
    layer = Image.new("RGBA", img.size, (255, 255, 255, 0))
    draw = ImageDraw.Draw(layer)
    _, _, right, bottom = draw.textbbox((0, 0), marks.text, font=font, stroke_width=stroke)
    margin = round(img.width * watermark.MARGIN_SCALE)
    alpha = round(255 * marks.opacity)
    xy = (img.width - right - margin, img.height - bottom - margin)
    draw.text(xy, marks.text, font=font, fill=(255, 255, 255, alpha), stroke_width=stroke, stroke_fill=(0, 0, 0, alpha))
    return Image.alpha_composite(img.convert("RGBA"), layer)


def naive_renditions(data: bytes) -> Iterator[tuple[int, Image.Image]]:
    """A full decode, and ``resize(LANCZOS)`` from it for each rendition."""
    full = Image.open(io.BytesIO(data))
    full.load()
    for width in imaging.plan_widths(full.width, defaults().widths):
        height = imaging.scaled_height(full.width, full.height, width)
        yield width, full.resize((width, height), Image.Resampling.LANCZOS)


def run_naive(data: bytes) -> dict[int, bytes]:
    """``naive_renditions``, an RGBA text overlay where the watermark applies, ``save`` as JPEG."""
    marks, enc = settings()
    outputs: dict[int, bytes] = {}
    for width, rendition in naive_renditions(data):
        img = _naive_watermark(rendition, marks) if watermark.applies(width, marks) else rendition
        buf = io.BytesIO()
        img.convert("RGB").save(buf, "JPEG", quality=enc.jpeg_quality)
        outputs[width] = buf.getvalue()
    return outputs


def runner(impl: str, vips: Any) -> Callable[[bytes], dict[int, bytes]]:
    """The function that runs ``impl`` on a source (``vips``: the pyvips module, for pyvips)."""
    if impl == OURS:
        return run_ours
    if impl == STAGED:
        return lambda data: run_ours(data, staged=True)
    if impl == PER_RENDITION:
        return lambda data: run_vips(vips_per_rendition(vips, data), vips)
    if impl == CHAINED:
        return lambda data: run_vips(vips_chained(vips, data), vips)
    if impl == NAIVE:
        return run_naive
    raise ValueError(f"unknown implementation {impl!r}")
