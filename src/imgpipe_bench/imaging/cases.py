"""What the imaging benchmark measures: the implementations' names, the pipeline's settings at template.yaml's
defaults, the targets the figures are judged against, and the synthetic source cases."""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache
from typing import Final

from imgpipe_bench.photos import photo
from localcloud import sam
from pipeline.settings import EncodeSettings, Limits, WatermarkSettings

#: Renditions whose quality is measured, and judged: the target holds for the worst of them.
QUALITY_WIDTHS: Final = (2048, 1024)
REPEATS: Final = 7
MIN_REPEATS: Final = 5

OURS: Final = "ours"
STAGED: Final = "ours+staging"
PER_RENDITION: Final = "pyvips per rendition"
CHAINED: Final = "pyvips chained"
NAIVE: Final = "naive"
REFERENCE: Final = "reference"
#: The implementations measured for time, memory and quality, in the order the tables show them.
IMPLEMENTATIONS: Final = (OURS, PER_RENDITION, CHAINED, NAIVE)
VIPS_IMPLEMENTATIONS: Final = (PER_RENDITION, CHAINED)
#: Timed, not measured for memory: the two steps run in different Lambda functions.
TIME_ONLY: Final = (STAGED,)
#: Memory of ``ours`` is measured per Lambda function: the resize and the watermark step run in
#: different functions (each its own process and memory size), joined by the staged intermediates.
OURS_STEPS: Final = (f"{OURS}:resize", f"{OURS}:watermark")

#: The targets, by the name of the figure in ``--json`` (ratios: at most; the PSNR gap: at least).
TIME_VS_PER_RENDITION: Final = "time_ours_vs_pyvips_per_rendition"
TIME_VS_CHAINED: Final = "time_ours_vs_pyvips_chained"
MEMORY_VS_NAIVE: Final = "memory_ours_vs_naive"
PSNR_GAP: Final = "psnr_worst_gap_db"
TARGETS: Final = {TIME_VS_PER_RENDITION: 0.5, TIME_VS_CHAINED: 1.0, MEMORY_VS_NAIVE: 0.5, PSNR_GAP: -0.3}
AT_LEAST: Final = frozenset({PSNR_GAP})

#: Kinds of case: a photograph as found, one made from the largest photograph, a synthetic image.
PHOTO: Final = "photo"
DERIVED: Final = "derived"
SYNTHETIC: Final = "synthetic"


@dataclass(frozen=True, slots=True)
class Case:
    """One source: its size, its format and, for a synthetic one, how it is made and saved."""

    name: str
    label: str
    size: tuple[int, int]
    format: str  # Pillow format name of the source
    save: tuple[tuple[str, object], ...] = ()  # Pillow save parameters
    alpha: bool = False
    seed: int = 1
    kind: str = SYNTHETIC

    def scaled(self, size: tuple[int, int]) -> Case:
        """The same synthetic case at another size."""
        return Case(self.name, self.label, size, self.format, self.save, self.alpha, self.seed, self.kind)


CASES: Final = (
    Case("jpeg-24mp", "24 MP baseline JPEG", (6000, 4000), "JPEG", (("quality", 90),)),
    Case("jpeg-12mp", "12 MP baseline JPEG", (4000, 3000), "JPEG", (("quality", 90),), seed=2),
    Case(
        "jpeg-12mp-progressive",
        "12 MP progressive JPEG",
        (4000, 3000),
        "JPEG",
        (("quality", 90), ("progressive", True)),
        seed=2,
    ),
    Case("png-rgba-12mp", "12 MP RGBA PNG", (4000, 3000), "PNG", (("compress_level", 6),), alpha=True, seed=3),
    Case("webp-12mp", "12 MP WebP", (4000, 3000), "WEBP", (("quality", 90), ("method", 4)), seed=2),
)
CASES_BY_NAME: Final = {case.name: case for case in CASES}


def encode_source(case: Case) -> bytes:
    """The case's synthetic photo, encoded in its format."""
    buf = io.BytesIO()
    photo(case.size, case.seed, case.alpha).save(buf, case.format, **dict(case.save))
    return buf.getvalue()


def warm_up_source(fmt: str) -> bytes:
    """A small synthetic image in ``fmt`` (with alpha for PNG), to load codecs, fonts and caches."""
    case = next((c for c in CASES if c.format == fmt), None)
    return encode_source((case or Case("warm", "warm", (640, 480), fmt)).scaled((640, 480)))


@dataclass(frozen=True)
class Defaults:
    """The pipeline's settings at template.yaml's parameter defaults: what the bench measures."""

    widths: tuple[int, ...]
    max_pixels: int
    marks: WatermarkSettings
    enc: EncodeSettings


@cache
def defaults() -> Defaults:
    """The resize and watermark functions' settings, read from their environment in template.yaml."""
    resize, watermark = sam.function_environment("ResizeFunction"), sam.function_environment("WatermarkFunction")
    limits = Limits.from_env(resize)
    return Defaults(
        limits.widths, limits.max_pixels, WatermarkSettings.from_env(watermark), EncodeSettings.from_env(watermark)
    )


def settings() -> tuple[WatermarkSettings, EncodeSettings]:
    """The watermark and encoding settings of ``defaults()``."""
    return defaults().marks, defaults().enc
