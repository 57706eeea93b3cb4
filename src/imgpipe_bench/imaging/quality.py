"""Quality of the implementations' renditions: PSNR of each one's JPEG against a float reference.

The reference for a rendition size is the source decoded whole (no DCT scaling, EXIF orientation applied),
alpha flattened over white, each channel resized as 32-bit float (Pillow mode ``F``) with LANCZOS straight
from the full image to that size, and clipped to 0-255; never rounded to 8 bits between the two passes of
the resize, as an 8-bit resize is. An implementation's figure at a width is the PSNR of its rendition,
encoded as JPEG as it encodes (without the watermark) and decoded again, against that reference; the
reference pipeline's is the PSNR of the reference itself, rounded to 8 bits and encoded as ours encodes
(``encoding.encode``). The gap is the first minus the second: what the implementation's resampling costs
beyond the JPEG encoding every pipeline pays. It is judged on the worst of ``QUALITY_WIDTHS``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from imgpipe_bench.imaging.cases import CHAINED, OURS, PER_RENDITION, QUALITY_WIDTHS, REFERENCE, settings
from imgpipe_bench.imaging.implementations import ours_renditions, vips_chained, vips_jpeg, vips_per_rendition
from pipeline import encoding

Plane = npt.NDArray[np.float32]
#: Implementations whose quality is measured (naive Pillow is an 8-bit version of the reference itself).
MEASURED = (OURS, PER_RENDITION, CHAINED)


def _flat_channels(data: bytes) -> Iterator[Plane]:
    """The source's channels in float, decoded whole, orientation applied, alpha flattened over white."""
    with Image.open(io.BytesIO(data)) as opened:
        img = ImageOps.exif_transpose(opened)  # loads the whole image: no draft
    alpha = "A" in img.getbands() or "transparency" in img.info
    img = img.convert("RGBA" if alpha else "RGB")
    weight = np.asarray(img.getchannel("A"), dtype=np.float32) / 255 if alpha else None
    for band in "RGB":
        plane = np.asarray(img.getchannel(band), dtype=np.float32)
        yield plane if weight is None else (plane * weight + 255 * (1 - weight)).astype(np.float32)


class References:
    """The float reference of each rendition size of one source, made once per size."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._made: dict[tuple[int, int], Plane] = {}
        self._own: dict[tuple[int, int], float] = {}
        #: The size of each width's rendition, as the first implementation measured made it.
        self.sizes: dict[int, tuple[int, int]] = {}

    def make(self, sizes: Iterable[tuple[int, int]]) -> None:
        """Make the references of ``sizes`` not made yet, in one pass over the source's channels."""
        todo = sorted(set(sizes) - set(self._made))
        if not todo:
            return
        planes: dict[tuple[int, int], list[Plane]] = {size: [] for size in todo}
        for channel in _flat_channels(self.data):
            full = Image.fromarray(channel, "F")
            for size in todo:
                resized = full.resize(size, Image.Resampling.LANCZOS)
                planes[size].append(np.clip(np.asarray(resized, dtype=np.float32), 0, 255))
        for size in todo:
            self._made[size] = np.stack(planes[size], axis=-1)

    def __call__(self, size: tuple[int, int]) -> Plane:
        self.make([size])
        return self._made[size]

    def own_jpeg_psnr(self, size: tuple[int, int]) -> float:
        """PSNR of the reference's own JPEG (rounded to 8 bits, ``encoding.encode``) against itself."""
        if size not in self._own:
            self._own[size] = psnr_float(decode_jpeg(reference_jpeg(self(size))), self(size))
        return self._own[size]


def reference_jpeg(reference: Plane) -> bytes:
    """A float reference rounded to 8 bits and encoded as the pipeline encodes (quality, optimised)."""
    img = Image.fromarray(np.rint(reference).astype(np.uint8), "RGB")
    return encoding.encode(img, "jpeg", settings()[1], None)


def decode_jpeg(body: bytes) -> Image.Image:
    """A JPEG decoded whole, as RGB."""
    with Image.open(io.BytesIO(body)) as img:
        return img.convert("RGB")


def psnr_float(img: Image.Image, reference: Plane) -> float:
    """PSNR in dB of an 8-bit RGB image against a float reference of the same size."""
    if (img.height, img.width) != reference.shape[:2]:
        raise ValueError(f"sizes differ: {img.size} and {reference.shape[1::-1]}")
    diff = np.asarray(img.convert("RGB"), dtype=np.float32) - reference
    mse = float(np.mean(np.square(diff), dtype=np.float64))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def gaps(refs: References, jpegs: dict[int, bytes]) -> dict[str, Any]:
    """PSNR of each JPEG rendition (by width) against the reference, the reference's own, their gap, and
    the worst gap with its width."""
    by_width: dict[str, float] = {}
    gap_by_width: dict[str, float] = {}
    decoded = {width: decode_jpeg(body) for width, body in jpegs.items()}
    refs.make(img.size for img in decoded.values())
    for width, img in sorted(decoded.items(), reverse=True):
        refs.sizes.setdefault(width, img.size)
        value, own = psnr_float(img, refs(img.size)), refs.own_jpeg_psnr(img.size)
        by_width[str(width)] = round(value, 2)
        gap_by_width[str(width)] = 0.0 if value == own else round(value - own, 2)  # two exact copies: no gap
    worst = min(gap_by_width, key=gap_by_width.__getitem__) if gap_by_width else None
    return {
        "psnr_jpeg_by_width_db": by_width,
        "psnr_gap_by_width_db": gap_by_width,
        "psnr_worst_gap_db": None if worst is None else gap_by_width[worst],
        "psnr_worst_gap_width": None if worst is None else int(worst),
    }


def unmarked_jpegs(impl: str, data: bytes, vips: Any) -> dict[int, bytes]:
    """``impl``'s renditions of ``QUALITY_WIDTHS`` as it encodes them, without the watermark."""
    if impl == OURS:
        enc = settings()[1]
        return {
            width: encoding.encode(img, "jpeg", enc, icc)
            for width, img, icc in ours_renditions(data)
            if width in QUALITY_WIDTHS
        }
    made = vips_per_rendition(vips, data) if impl == PER_RENDITION else vips_chained(vips, data)
    return {width: vips_jpeg(img) for width, img in made if width in QUALITY_WIDTHS}


def quality(data: bytes, vips: Any, impls: Sequence[str] = MEASURED) -> dict[str, dict[str, Any]]:
    """``gaps()`` of each of ``impls`` (those of ``MEASURED``; the pyvips ones only with ``vips``), and under
    ``reference`` the reference pipeline's own PSNR by width; empty when the source has none of
    ``QUALITY_WIDTHS`` below its width."""
    refs = References(data)
    figures: dict[str, dict[str, Any]] = {}
    for impl in impls:
        if impl not in MEASURED or (impl != OURS and vips is None):
            continue
        jpegs = unmarked_jpegs(impl, data, vips)
        if not jpegs:
            return {}
        figures[impl] = gaps(refs, jpegs)
    if figures:
        own = {str(width): round(refs.own_jpeg_psnr(size), 2) for width, size in sorted(refs.sizes.items())[::-1]}
        figures[REFERENCE] = {"psnr_jpeg_by_width_db": own}
    return figures
