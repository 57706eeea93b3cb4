"""What the imaging benchmark measures: the source cases, the implementations' names, the pipeline's
settings at template.yaml's defaults, and the targets the figures are judged against."""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache
from typing import Final

from imgpipe_bench.photos import photo
from localcloud import sam
from pipeline.settings import EncodeSettings, Limits, WatermarkSettings

QUALITY_WIDTH: Final = 1024
#: Renditions whose quality is measured, and judged: the target holds for the worst of them.
QUALITY_WIDTHS: Final = (2048, 1024)
REPEATS: Final = 7
MIN_REPEATS: Final = 5

#: The project issue's targets.
TIME_RATIO_TARGET: Final = 0.7  # ours / pyvips, wall time
MEMORY_RATIO_TARGET: Final = 0.5  # ours / naive Pillow, peak added RSS
PSNR_MARGIN_DB: Final = 0.5  # ours' 1024 px JPEG at most this much below the reference pipeline's

OURS: Final = "ours"
STAGED: Final = "ours+staging"
PYVIPS: Final = "pyvips"
NAIVE: Final = "naive"
REFERENCE: Final = "reference"
IMPLEMENTATIONS: Final = (OURS, PYVIPS, NAIVE)
#: Timed, not measured for memory: the two steps run in different Lambda functions.
TIME_ONLY: Final = (STAGED,)
#: Memory of ``ours`` is measured per Lambda function: the resize and the watermark step run in
#: different functions (each its own process and memory size), joined by the staged intermediates.
OURS_STEPS: Final = (f"{OURS}:resize", f"{OURS}:watermark")


@dataclass(frozen=True, slots=True)
class Case:
    """One source: its size, its format and how it is saved."""

    name: str
    label: str
    size: tuple[int, int]
    format: str  # Pillow format name of the source
    save: tuple[tuple[str, object], ...]  # Pillow save parameters
    alpha: bool = False
    seed: int = 1

    def scaled(self, size: tuple[int, int]) -> Case:
        """The same case at another size."""
        return Case(self.name, self.label, size, self.format, self.save, self.alpha, self.seed)


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
