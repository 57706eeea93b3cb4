"""The sources the imaging benchmark measures: real photographs first, then the synthetic cases.

Photographs come from a directory (``--images``; by default ``out/photos``, where ``make bench-photos``
puts the camera photographs Debian's ``mate-backgrounds`` package ships), each measured as it is. The
largest of them, when it has at least ``DERIVED_MIN_MP`` megapixels, is also scaled (LANCZOS, aspect
kept) to 24 MP and 12 MP and saved as JPEG q90, and to 12 MP as PNG: the sizes and formats uploads come
in, with a real photograph's content. The synthetic cases (``cases.CASES``) are always measured after
them: worst cases of hard edges, fine lines and grain, and RGBA and WebP sources no photograph provides.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Final

from PIL import Image, ImageOps, UnidentifiedImageError

from imgpipe_bench.imaging.cases import CASES, DERIVED, PHOTO, Case, encode_source

#: Where ``make bench-photos`` puts the photographs; the default of ``--images`` when it exists.
DEFAULT_PHOTOS: Final = Path("out/photos")
SUFFIXES: Final = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".avif", ".heic"})
#: The derived cases: (name, megapixels, Pillow format, save parameters).
DERIVED_CASES: Final = (
    ("24mp-jpeg", 24.0, "JPEG", (("quality", 90),)),
    ("12mp-jpeg", 12.0, "JPEG", (("quality", 90),)),
    ("12mp-png", 12.0, "PNG", (("compress_level", 6),)),
)
DERIVED_MIN_MP: Final = 12.0
NO_PHOTOS_HINT: Final = "make bench-photos fetches Debian's mate-backgrounds, or pass --images DIR"


@dataclass
class Sources:
    """The cases to measure, each with what makes its bytes (real photographs first), and one line on
    what was found."""

    cases: list[tuple[Case, Callable[[], bytes]]] = field(default_factory=list)
    note: str = ""
    directory: str | None = None
    photos: list[str] = field(default_factory=list)


def photo_case(path: Path) -> tuple[Case, bytes] | None:
    """A photograph as a case (its name is its file name's stem), or None when Pillow cannot read it."""
    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as img:
            size, fmt = img.size, img.format or path.suffix.lstrip(".").upper()
    except (UnidentifiedImageError, OSError):
        return None
    mp = size[0] * size[1] / 1e6
    label = f"{path.name} ({mp:.1f} MP {fmt})"
    return Case(path.stem, label, size, fmt, kind=PHOTO), data


def derived_size(size: tuple[int, int], megapixels: float) -> tuple[int, int]:
    """``size`` scaled to about ``megapixels``, aspect kept."""
    width, height = size
    scale = math.sqrt(megapixels * 1e6 / (width * height))
    return round(width * scale), round(height * scale)


def derived_cases(
    base: Case, data: bytes, derived: Sequence[tuple[str, float, str, tuple[tuple[str, object], ...]]] = DERIVED_CASES
) -> list[tuple[Case, bytes]]:
    """``base`` (a photograph) scaled to each of ``derived``'s sizes and saved in its format."""
    with Image.open(io.BytesIO(data)) as opened:
        full = ImageOps.exif_transpose(opened).convert("RGB")
    made: list[tuple[Case, bytes]] = []
    for name, megapixels, fmt, save in derived:
        size = derived_size(full.size, megapixels)
        buf = io.BytesIO()
        full.resize(size, Image.Resampling.LANCZOS).save(buf, fmt, **dict(save))
        quality = dict(save).get("quality")
        how = f"{fmt} q{quality}" if quality else fmt
        label = f"{base.name} at {megapixels:g} MP, {how}"
        made.append((Case(f"{base.name}-{name}", label, size, fmt, save, kind=DERIVED), buf.getvalue()))
    return made


def photographs(directory: Path) -> list[tuple[Case, bytes]]:
    """The readable images in ``directory`` (not its subdirectories), the largest first."""
    paths = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    found = [case for case in map(photo_case, paths) if case is not None]
    return sorted(found, key=lambda c: (-c[0].size[0] * c[0].size[1], c[0].name))


def sources(
    images: Path | None,
    synthetic: Sequence[Case] = CASES,
    derived: Sequence[tuple[str, float, str, tuple[tuple[str, object], ...]]] = DERIVED_CASES,
) -> Sources:
    """Every case to measure: the photographs in ``images`` (default ``DEFAULT_PHOTOS`` when it exists),
    the cases derived from the largest of them, then ``synthetic``."""
    directory = images if images is not None else (DEFAULT_PHOTOS if DEFAULT_PHOTOS.is_dir() else None)
    found = photographs(directory) if directory is not None and directory.is_dir() else []
    out = Sources(directory=None if directory is None else str(directory), photos=[c.label for c, _ in found])
    out.cases.extend((case, _given(data)) for case, data in found)
    if not found:
        where = f"in {directory}" if directory is not None else f"({DEFAULT_PHOTOS} does not exist)"
        out.note = f"no real photograph found {where}: synthetic cases only ({NO_PHOTOS_HINT})"
    else:
        base, data = found[0]
        mp = base.size[0] * base.size[1] / 1e6
        out.note = f"{len(found)} real photograph(s) from {directory}"
        if mp >= DERIVED_MIN_MP:
            out.cases.extend((case, _given(made)) for case, made in derived_cases(base, data, derived))
            out.note += f"; {len(derived)} cases derived from {base.name} ({mp:.1f} MP)"
        else:
            out.note += f"; none derived: the largest, {base.name}, has {mp:.1f} MP (< {DERIVED_MIN_MP:g})"
    out.cases.extend((case, partial(encode_source, case)) for case in synthetic)  # made when measured
    return out


def _given(data: bytes) -> Callable[[], bytes]:
    return lambda: data
