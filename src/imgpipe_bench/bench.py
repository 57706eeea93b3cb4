"""Imaging figures: the pipeline's resize + watermark work against pyvips and naive Pillow, side by side.

``run()`` measures, in one run on the same sources, the work of the resize and watermark steps for one
source with the default renditions (2048, 1024 and 320 px wide, JPEG q85, the default text watermark on
renditions of at least 600 px), three ways:

- **ours**: exactly the layer's pure functions as ``steps.resize`` and ``steps.watermark_and_encode`` call
  them (``imaging.open_image``/``decode``/``renditions``, ``watermark.apply``, ``encoding.encode``),
  without the lossless intermediate (uncompressed TIFF) between the two steps. That intermediate
  (``imaging.to_lossless``/``from_lossless``) is timed separately as **ours+staging**;
- **pyvips**: ``thumbnail_buffer`` per rendition at the target width, the watermark rendered with
  ``Image.text`` and blended with ``composite2``, ``jpegsave_buffer`` q85 (operation cache off, so that
  repetitions do not measure the cache);
- **naive**: ``Image.open``, a full decode, ``resize(LANCZOS)`` from the full image for each rendition,
  the text drawn on an RGBA overlay (``alpha_composite``), ``save`` q85.

Sources are synthetic and made in memory (gradients, shapes, fine lines and seeded grain), so that every
run sees the same pixels and nothing is downloaded. Times are medians of interleaved repetitions in this
process, pinned to one core (a Lambda function below 1769 MB has less than one vCPU). Peak memory is
measured in a fresh subprocess per (case, implementation); ours per Lambda function, as the pipeline runs
it: the resize step (writing its intermediates) and the watermark step (reading them) each in its own
process, the larger peak compared. The kernel's resident-set high-water mark (``VmHWM``,
the figure ``ru_maxrss`` reports) is reset through ``/proc/self/clear_refs`` after the warm-up, and the
figure is the peak minus the resident set at that point. ``ru_maxrss`` itself cannot be used in a
subprocess: Linux carries the parent's high-water mark across ``exec``. Quality is the PSNR of each
implementation's 1024 px rendition (before watermark and encoding) against a full-decode LANCZOS
resize of the same source to the same size.

    .venv/bin/python benchmarks/bench_imaging.py [--json] [--plot out/bench-imaging.png]
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import io
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from PIL import Image, ImageChops, ImageDraw, ImageFont

from imgpipe_bench.photos import photo
from localcloud import sam

if TYPE_CHECKING:
    from rich.console import Console

    from pipeline.settings import EncodeSettings, WatermarkSettings

LAYER: Final = sam.ROOT / "layers" / "shared"

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


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    label: str
    size: tuple[int, int]
    format: str  # Pillow format name of the source
    save: tuple[tuple[str, object], ...]  # Pillow save parameters
    alpha: bool = False
    seed: int = 1

    def scaled(self, size: tuple[int, int]) -> Case:
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


# -- sources -------------------------------------------------------------------------------------


def encode_source(case: Case) -> bytes:
    buf = io.BytesIO()
    photo(case.size, case.seed, case.alpha).save(buf, case.format, **dict(case.save))
    return buf.getvalue()


# -- the three implementations -----------------------------------------------------------------


def _pipeline() -> None:
    """Put the layer's ``pipeline`` package on the path (pytest's pythonpath does it for the tests)."""
    if importlib.util.find_spec("pipeline") is None:
        sys.path.insert(0, str(LAYER))


@dataclass(frozen=True)
class Defaults:
    """The pipeline's settings at template.yaml's parameter defaults: what the bench measures."""

    widths: tuple[int, ...]
    max_pixels: int
    marks: WatermarkSettings
    enc: EncodeSettings


@cache
def defaults() -> Defaults:
    _pipeline()
    from pipeline.settings import EncodeSettings, Limits, WatermarkSettings

    resize, watermark = sam.function_environment("ResizeFunction"), sam.function_environment("WatermarkFunction")
    limits = Limits.from_env(resize)
    return Defaults(
        limits.widths, limits.max_pixels, WatermarkSettings.from_env(watermark), EncodeSettings.from_env(watermark)
    )


def _settings() -> tuple[WatermarkSettings, EncodeSettings]:
    return defaults().marks, defaults().enc


def ours_renditions(data: bytes) -> Iterator[tuple[int, Image.Image, bytes | None]]:
    """The resize step's work, as ``steps.resize`` calls it (the source has no EXIF orientation, so
    its display width is its stored width)."""
    _pipeline()
    from pipeline import imaging

    with imaging.open_image(data, defaults().max_pixels) as img:
        widths = imaging.plan_widths(img.width, defaults().widths)
        decoded, icc = imaging.decode(img, widths[0], data)
    chain = imaging.renditions(decoded, widths)
    del decoded
    for rendition in chain:
        yield rendition.width, rendition.image, icc


def run_ours(data: bytes, staged: bool = False) -> dict[int, bytes]:
    """Resize, then watermark and encode each rendition as ``steps.watermark_and_encode`` does.

    With ``staged``, each rendition also goes through the lossless (TIFF) intermediate that carries it
    from the resize function to the watermark function in the pipeline.
    """
    _pipeline()
    from pipeline import encoding, imaging, watermark

    marks, enc = _settings()
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
    _pipeline()
    from pipeline import imaging

    for stale in staging.glob("*.tiff"):
        stale.unlink()
    for width, rendition, icc in ours_renditions(data):
        (staging / f"{width}.tiff").write_bytes(imaging.to_lossless(rendition, icc))


def ours_watermark_step(staging: Path) -> dict[int, bytes]:
    """The watermark function's work: each intermediate read, watermarked and encoded."""
    _pipeline()
    from pipeline import encoding, imaging, watermark

    marks, enc = _settings()
    outputs: dict[int, bytes] = {}
    for path in sorted(staging.glob("*.tiff"), key=lambda p: -int(p.stem)):
        img, icc = imaging.from_lossless(path.read_bytes())
        marked = watermark.apply(img, marks)
        del img
        for fmt in enc.formats:
            outputs[int(path.stem)] = encoding.encode(marked, fmt, enc, icc)
    return outputs


def pyvips_module() -> tuple[Any, str | None]:
    """``(pyvips, None)``, or ``(None, why it cannot be used)``."""
    try:
        vips = importlib.import_module("pyvips")
    except Exception as exc:  # noqa: BLE001 - ImportError, or OSError/cffi errors when libvips is missing
        why = f"pyvips is not importable ({type(exc).__name__}: {exc})"
        return None, why + "; install the bench extra: pip install -e '.[bench]'"
    vips.cache_set_max(0)  # no operation cache: every repetition does the whole work
    return vips, None


def _vips_watermark(vips: Any, img: Any, marks: WatermarkSettings) -> Any:
    """The same mark as ``watermark.apply``: white text, dark outline, opacity, bottom-right margin."""
    _pipeline()
    from pipeline import watermark

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


def run_pyvips(data: bytes, vips: Any) -> dict[int, bytes]:
    _pipeline()
    from pipeline import imaging, watermark

    marks, enc = _settings()
    source_width = vips.Image.new_from_buffer(data, "").width  # header only
    outputs: dict[int, bytes] = {}
    for width in imaging.plan_widths(source_width, defaults().widths):
        img = _vips_thumbnail(vips, data, width)
        if watermark.applies(img.width, marks):
            img = _vips_watermark(vips, img, marks)
        outputs[width] = img.jpegsave_buffer(Q=enc.jpeg_quality, optimize_coding=True, keep="icc")
    return outputs


def _vips_thumbnail(vips: Any, data: bytes, width: int) -> Any:
    """A ``width``-wide rendition, alpha flattened over white (as ``encoding.encode`` does for JPEG)."""
    img = vips.Image.thumbnail_buffer(data, width, height=10_000_000, size="down")
    return img.flatten(background=[255] * (img.bands - 1)) if img.hasalpha() else img


def _naive_watermark(img: Image.Image, marks: WatermarkSettings) -> Image.Image:
    _pipeline()
    from pipeline import watermark

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


def run_naive(data: bytes) -> dict[int, bytes]:
    _pipeline()
    from pipeline import imaging, watermark

    marks, enc = _settings()
    full = Image.open(io.BytesIO(data))
    full.load()
    outputs: dict[int, bytes] = {}
    for width in imaging.plan_widths(full.width, defaults().widths):
        img = full.resize((width, imaging.scaled_height(full.width, full.height, width)), Image.Resampling.LANCZOS)
        if watermark.applies(width, marks):
            img = _naive_watermark(img, marks)
        buf = io.BytesIO()
        img.convert("RGB").save(buf, "JPEG", quality=enc.jpeg_quality)
        outputs[width] = buf.getvalue()
    return outputs


def _runner(impl: str, vips: Any) -> Callable[[bytes], dict[int, bytes]]:
    if impl == OURS:
        return run_ours
    if impl == STAGED:
        return lambda data: run_ours(data, staged=True)
    if impl == PYVIPS:
        return lambda data: run_pyvips(data, vips)
    if impl == NAIVE:
        return run_naive
    raise ValueError(f"unknown implementation {impl!r}")


# -- quality -------------------------------------------------------------------------------------


def _flat_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA"):
        base = Image.new("RGB", img.size, (255, 255, 255))
        base.paste(img.convert("RGBA"), mask=img.getchannel("A"))
        return base
    return img.convert("RGB")


def psnr(a: Image.Image, b: Image.Image) -> float:
    """PSNR in dB of two same-sized images, compared as RGB (alpha flattened over white)."""
    a, b = _flat_rgb(a), _flat_rgb(b)
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


def quality(data: bytes, vips: Any) -> dict[str, dict[str, Any]]:
    """PSNR (dB) against the reference of the same size, per implementation, of its renditions:

    - ``psnr_db``: the 1024 px rendition's pixels (before watermark and encoding); the naive
      rendition *is* the reference, so it has none;
    - ``psnr_jpeg_db``: the 1024 px rendition encoded as each implementation encodes it (JPEG q85,
      no watermark) and decoded again; under ``reference``, the reference's own JPEG q85 (what a
      full-decode LANCZOS pipeline, the naive one with alpha flattened, outputs);
    - ``psnr_jpeg_by_width_db``: the same for each of ``QUALITY_WIDTHS`` the source has.
    """
    _pipeline()
    from pipeline import encoding

    _, enc = _settings()
    refs: dict[tuple[int, int], Image.Image] = {}

    def ref(size: tuple[int, int]) -> Image.Image:
        if size not in refs:
            refs[size] = reference(data, size)
        return refs[size]

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
        _flat_rgb(target).save(buf, "JPEG", quality=enc.jpeg_quality)
        own["psnr_jpeg_by_width_db"][str(width)] = psnr(_jpeg_round_trip(buf.getvalue()), target)
        if width == QUALITY_WIDTH:
            ours["psnr_db"] = psnr(img, target)
        if vips is not None:
            thumb = _vips_thumbnail(vips, data, width).copy_memory()  # read twice below
            mode = {1: "L", 3: "RGB"}[thumb.bands]
            pixels = Image.frombytes(mode, (thumb.width, thumb.height), thumb.write_to_memory())
            body = thumb.jpegsave_buffer(Q=enc.jpeg_quality, optimize_coding=True, keep="icc")
            theirs["psnr_jpeg_by_width_db"][str(width)] = psnr(_jpeg_round_trip(body), ref(pixels.size))
            if width == QUALITY_WIDTH:
                theirs["psnr_db"] = psnr(pixels, ref(pixels.size))
    if not ours["psnr_jpeg_by_width_db"]:
        return {}
    key = str(QUALITY_WIDTH)
    figures = {OURS: ours, REFERENCE: own} | ({PYVIPS: theirs} if vips is not None else {})
    for values in figures.values():
        if key in values["psnr_jpeg_by_width_db"]:
            values["psnr_jpeg_db"] = values["psnr_jpeg_by_width_db"][key]
    return figures


# -- memory (fresh subprocess per case and implementation) -------------------------------------


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")  # resets VmHWM to the current RSS (Linux 4.0+)
    except OSError:
        return False
    return True


#: Memory of ``ours`` is measured per Lambda function: the resize and the watermark step run in
#: different functions (each its own process and memory size), joined by the staged intermediates.
OURS_STEPS: Final = (f"{OURS}:resize", f"{OURS}:watermark")


def _memory_runner(impl: str, staging: Path) -> Callable[[bytes], object]:
    if impl == OURS_STEPS[0]:
        return lambda data: ours_resize_step(data, staging)
    if impl == OURS_STEPS[1]:
        return lambda data: ours_watermark_step(staging)
    vips, why = pyvips_module() if impl == PYVIPS else (None, None)
    if why:
        raise RuntimeError(why)
    return _runner(impl, vips)


def child(impl: str, case_name: str, source: Path, staging: Path | None = None) -> dict[str, Any]:
    """Run one implementation (or one step of ours) once on ``source``, after a warm-up on a small
    copy; peak added RSS in MiB. The source bytes are read before the measurement, for every
    implementation. The watermark step reads the intermediates in ``staging``, which another
    process wrote, as the resize function does in the pipeline."""
    with tempfile.TemporaryDirectory(prefix="imgpipe-warm-") as tmp:
        warm = Path(tmp)
        small = encode_source(CASES_BY_NAME[case_name].scaled((640, 480)))
        if impl == OURS_STEPS[1]:
            ours_resize_step(small, warm)
        _memory_runner(impl, warm)(small)  # codecs, font, caches loaded
        run = _memory_runner(impl, staging or warm)
        data = source.read_bytes()
        gc.collect()
        if _reset_peak() and (before := _status_kb("VmRSS")) is not None:
            method = "VmHWM after /proc/self/clear_refs, minus VmRSS at reset"
            run(data)
            peak = _status_kb("VmHWM") or 0
        else:  # no /proc: ru_maxrss, valid only when the run's peak exceeds everything before it
            method = "ru_maxrss delta"
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            run(data)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_added_mb": round((peak - before) / 1024, 1), "method": method}


def peak_memory(impl: str, case: Case, source: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(sam.ROOT / "src"), str(LAYER)])}
    with tempfile.TemporaryDirectory(prefix="imgpipe-staging-") as staging:
        command = [sys.executable, "-m", "imgpipe_bench.bench", "--child", impl, case.name, str(source)]
        if impl == OURS_STEPS[1]:
            ours_resize_step(source.read_bytes(), Path(staging))  # in this process: the resize function's output
            command.append(staging)
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=600)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"memory run {case.name}/{impl} failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- one case ------------------------------------------------------------------------------------


def measure_case(
    case: Case,
    data: bytes,
    *,
    impls: Sequence[str] = (*IMPLEMENTATIONS, *TIME_ONLY),
    repeats: int = REPEATS,
    memory: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Times (interleaved), peak memory (subprocess) and PSNR of ``impls`` on one source.

    ``pyvips`` is left out, with the reason, when it cannot be imported.
    """
    vips, why = pyvips_module() if PYVIPS in impls else (None, None)
    skipped = {PYVIPS: why} if why else {}
    impls = [impl for impl in impls if impl not in skipped]
    runners = {impl: _runner(impl, vips) for impl in impls}
    bytes_out: dict[str, int] = {}
    for impl, run in runners.items():  # warm-up, untimed; keeps the outputs' sizes
        bytes_out[impl] = sum(len(body) for body in run(data).values())
    times: dict[str, list[float]] = {impl: [] for impl in impls}
    cpu: dict[str, list[float]] = {impl: [] for impl in impls}
    for rep in range(repeats):
        shift = rep % len(impls)
        for impl in impls[shift:] + impls[:shift]:  # rotate the order every repetition
            gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            runners[impl](data)
            times[impl].append((time.perf_counter() - start) * 1000)
            cpu[impl].append((time.process_time() - start_cpu) * 1000)  # all threads of this process
        if progress:
            progress(f"{case.name}: repetition {rep + 1}/{repeats}")
    figures: dict[str, Any] = {
        "case": case.name,
        "label": case.label,
        "width": case.size[0],
        "height": case.size[1],
        "format": case.format,
        "source_bytes": len(data),
        "skipped": skipped,
        "impls": {
            impl: {
                "median_ms": round(statistics.median(times[impl]), 1),
                "min_ms": round(min(times[impl]), 1),
                "times_ms": [round(t, 1) for t in times[impl]],
                "cpu_ms": round(statistics.median(cpu[impl]), 1),
                "bytes_out": bytes_out[impl],
            }
            for impl in impls
        },
    }
    for impl, values in quality(data, vips).items():
        rounded = {key: _rounded(value) for key, value in values.items()}
        if impl == REFERENCE:
            figures[REFERENCE] = rounded
        elif impl in figures["impls"]:
            figures["impls"][impl].update(rounded)
    if memory:
        with tempfile.TemporaryDirectory(prefix="imgpipe-bench-") as tmp:
            source = Path(tmp) / f"source.{case.format.lower()}"
            source.write_bytes(data)
            for impl in impls:
                if impl in TIME_ONLY:
                    continue
                peaks: dict[str, float] = {}
                for part in OURS_STEPS if impl == OURS else (impl,):
                    if progress:
                        progress(f"{case.name}: peak memory of {part}")
                    mem = peak_memory(part, case, source)
                    peaks[part] = mem["peak_added_mb"]
                    figures["memory_method"] = mem["method"]
                figures["impls"][impl]["peak_added_mb"] = max(peaks.values())
                if impl == OURS:
                    figures["impls"][impl]["peak_by_function_mb"] = {k.split(":")[1]: v for k, v in peaks.items()}
    figures["ratios"], figures["targets_met"] = _judge(figures["impls"], figures.get(REFERENCE, {}))
    return figures


def _rounded(value: Any) -> Any:
    return {k: _rounded(v) for k, v in value.items()} if isinstance(value, dict) else round(value, 2)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def _judge(
    impls: dict[str, dict[str, Any]], ref: dict[str, Any]
) -> tuple[dict[str, float | None], dict[str, bool | None]]:
    """Ratios and targets: time on median wall time (CPU time alongside), memory on peak added RSS,
    quality on the JPEG of each measured rendition against the reference (ours within 0.5 dB of the
    reference pipeline's own JPEG at every width; the worst width is the one reported)."""
    ours, vips, naive = impls.get(OURS, {}), impls.get(PYVIPS, {}), impls.get(NAIVE, {})
    ratios: dict[str, float | None] = {
        "time_ours_vs_pyvips": _ratio(ours.get("median_ms"), vips.get("median_ms")),
        "cpu_ours_vs_pyvips": _ratio(ours.get("cpu_ms"), vips.get("cpu_ms")),
        "time_ours_vs_naive": _ratio(ours.get("median_ms"), naive.get("median_ms")),
        "memory_ours_vs_naive": _ratio(ours.get("peak_added_mb"), naive.get("peak_added_mb")),
        "memory_ours_vs_pyvips": _ratio(ours.get("peak_added_mb"), vips.get("peak_added_mb")),
    }
    ours_by_width: dict[str, float] = ours.get("psnr_jpeg_by_width_db", {})
    ref_by_width: dict[str, float] = ref.get("psnr_jpeg_by_width_db", {})
    gaps = {  # two exact round trips (inf dB each) differ by nothing
        width: 0.0 if value == ref_by_width[width] else value - ref_by_width[width]
        for width, value in ours_by_width.items()
        if width in ref_by_width
    }
    worst = min(gaps, key=lambda width: gaps[width]) if gaps else None
    ratios["psnr_jpeg_ours_minus_reference_db"] = None if worst is None else round(gaps[worst], 2)
    ratios["psnr_jpeg_worst_width"] = None if worst is None else int(worst)
    gap = ours["psnr_db"] - vips["psnr_db"] if "psnr_db" in ours and "psnr_db" in vips else None
    ratios["psnr_ours_minus_pyvips_db"] = None if gap is None else round(gap, 2)
    time_ratio, mem_ratio = ratios["time_ours_vs_pyvips"], ratios["memory_ours_vs_naive"]
    psnr_gap = ratios["psnr_jpeg_ours_minus_reference_db"]
    met = {
        "time": None if time_ratio is None else time_ratio <= TIME_RATIO_TARGET,
        "memory": None if mem_ratio is None else mem_ratio <= MEMORY_RATIO_TARGET,
        "psnr": None if psnr_gap is None else psnr_gap >= -PSNR_MARGIN_DB,
    }
    return ratios, met


# -- the whole run -------------------------------------------------------------------------------


@contextmanager
def _one_core() -> Iterator[list[int] | None]:
    """Pin this process (and the memory subprocesses it starts) to one core, then restore."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {allowed[-1]})
    try:
        yield [allowed[-1]]
    finally:
        os.sched_setaffinity(0, allowed)


def _versions(vips: Any) -> dict[str, str | None]:
    from PIL import __version__ as pillow

    return {
        "python": platform.python_version(),
        "pillow": pillow,
        "pyvips": None if vips is None else str(vips.__version__),
        "libvips": None if vips is None else ".".join(str(vips.version(i)) for i in range(3)),
    }


def _summary(cases: list[dict[str, Any]], key: str) -> dict[str, Any]:
    verdicts = {c["case"]: c["targets_met"][key] for c in cases}
    return {
        "met": [name for name, met in verdicts.items() if met is True],
        "not_met": [name for name, met in verdicts.items() if met is False],
        "not_measured": [name for name, met in verdicts.items() if met is None],
    }


def run(json_output: bool, plot: Path | None, repeats: int = REPEATS) -> dict[str, Any]:
    """Measure every case; print the figures as JSON on stdout when ``json_output`` (progress goes to
    stderr either way), draw the time chart to ``plot`` when given, and return the figures.

    ``render()`` prints them as a table.
    """
    from rich.console import Console

    repeats = max(MIN_REPEATS, repeats)
    status = Console(stderr=True)
    vips, why = pyvips_module()
    figures: dict[str, Any] = {
        "versions": _versions(vips),
        "settings": {
            "widths": list(defaults().widths),
            "jpeg_quality": defaults().enc.jpeg_quality,
            "watermark": (
                f"text {defaults().marks.text!r}, {defaults().marks.position}, opacity {defaults().marks.opacity}, "
                f"on renditions >= {defaults().marks.min_width} px"
            ),
            "repeats": repeats,
            "sources": "synthetic, made in memory: gradients, shapes, fine lines, seeded grain",
            "timing": "median wall time of interleaved repetitions in one process, after one warm-up run",
            "staging": f"{STAGED!r} adds the lossless intermediate between resize and watermark (time only)",
            "memory": "peak added RSS in a fresh process per implementation; ours per Lambda function (the resize "
            "step, and the watermark step reading the intermediates), the larger of the two compared",
            "quality": "PSNR against a full-decode LANCZOS resize of the source to the same size (alpha "
            "flattened over white) of the 1024 px rendition: its pixels before watermark and encoding "
            "(psnr_db), and as JPEG q85 without watermark (psnr_jpeg_db; naive: the reference's own JPEG); "
            f"the JPEG figure also for each of {list(QUALITY_WIDTHS)} px (psnr_jpeg_by_width_db), the "
            "target judged on the worst",
        },
        "targets": {
            "time_ours_vs_pyvips_max": TIME_RATIO_TARGET,
            "memory_ours_vs_naive_max": MEMORY_RATIO_TARGET,
            "psnr_jpeg_ours_below_reference_max_db": PSNR_MARGIN_DB,
        },
        "skipped": {PYVIPS: why} if why else {},
        "cases": [],
    }
    with _one_core() as cpus:
        figures["settings"]["cpu_affinity"] = cpus
        with status.status("benchmark") as spinner:
            for case in CASES:
                spinner.update(f"{case.name}: making the source")
                data = encode_source(case)
                figures["cases"].append(measure_case(case, data, repeats=repeats, progress=spinner.update))
    figures["summary"] = {key: _summary(figures["cases"], key) for key in ("time", "memory", "psnr")}
    if plot is not None:
        draw_plot(figures, plot)
        figures["plot"] = str(plot)
    if json_output:
        print(json.dumps(figures, indent=2))
    return figures


# -- output --------------------------------------------------------------------------------------

_COLOURS: Final = {OURS: (46, 110, 190), STAGED: (140, 175, 220), PYVIPS: (214, 120, 40), NAIVE: (120, 120, 120)}


def draw_plot(figures: dict[str, Any], target: Path) -> Path:
    """Grouped bars: median ms per case and implementation (drawn with Pillow)."""
    _pipeline()
    from pipeline.watermark import FONT_FILE

    cases = figures["cases"]
    impls = [i for i in (OURS, STAGED, PYVIPS, NAIVE) if any(i in c["impls"] for c in cases)]
    font = ImageFont.truetype(str(FONT_FILE), 15)
    small = ImageFont.truetype(str(FONT_FILE), 12)
    width, height, left, top, bottom = 1200, 640, 80, 70, 90
    chart_h = height - top - bottom
    top_ms = max((c["impls"][i]["median_ms"] for c in cases for i in impls if i in c["impls"]), default=1.0)
    step = next(s for s in (10, 20, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000, 1e9) if top_ms / s <= 8)
    scale_max = math.ceil(top_ms / step) * step
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    cpus = figures["settings"].get("cpu_affinity")
    cores = "1 pinned core" if cpus else "all cores"
    title = f"resize + watermark + encode, 2048/1024/320 px JPEG q85: median wall ms per source ({cores})"
    draw.text((left, 20), title, fill=(0, 0, 0), font=font)
    for k in range(int(scale_max / step) + 1):
        y = top + chart_h - round(k * step / scale_max * chart_h)
        draw.line((left, y, width - 20, y), fill=(225, 225, 225))
        draw.text((left - 8, y), f"{k * step:g}", fill=(60, 60, 60), font=small, anchor="rm")
    group = (width - 20 - left) / max(1, len(cases))
    bar = group * 0.8 / max(1, len(impls))
    for n, case in enumerate(cases):
        x0 = left + n * group + group * 0.1
        for m, impl in enumerate(impls):
            if impl not in case["impls"]:
                continue
            ms = case["impls"][impl]["median_ms"]
            y = top + chart_h - round(ms / scale_max * chart_h)
            bx = x0 + m * bar
            draw.rectangle((bx, y, bx + bar - 3, top + chart_h), fill=_COLOURS[impl])
            draw.text((bx + (bar - 3) / 2, y - 3), f"{ms:.0f}", fill=(0, 0, 0), font=small, anchor="md")
        draw.text((x0 + group * 0.4, top + chart_h + 8), case["label"], fill=(0, 0, 0), font=small, anchor="ma")
    lx = left
    for impl in impls:
        draw.rectangle((lx, height - 32, lx + 14, height - 18), fill=_COLOURS[impl])
        draw.text((lx + 20, height - 25), impl, fill=(0, 0, 0), font=font, anchor="lm")
        lx += 40 + round(draw.textlength(impl, font=font))
    draw.line((left, top + chart_h, width - 20, top + chart_h), fill=(0, 0, 0))
    target.parent.mkdir(parents=True, exist_ok=True)
    img.save(target, "PNG")
    return target


def _mark(met: bool | None) -> str:
    return "n/a" if met is None else ("[green]yes[/]" if met else "[red]no[/]")


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _by_function(ours: dict[str, Any]) -> str:
    parts = ours.get("peak_by_function_mb")
    if not parts:
        return _num(ours.get("peak_added_mb"), ".1f")
    return f"{ours['peak_added_mb']:.1f} ({parts['resize']:.1f} / {parts['watermark']:.1f})"


def render(figures: dict[str, Any], console: Console) -> None:
    """Print the figures as two tables and the verdict on each target."""
    from rich.table import Table

    v = figures["versions"]
    cpus = figures["settings"].get("cpu_affinity")
    console.print(
        f"Python {v['python']}, Pillow {v['pillow']}, pyvips {v['pyvips'] or '-'} (libvips {v['libvips'] or '-'}); "
        f"{figures['settings']['repeats']} interleaved repetitions per case, "
        + (f"pinned to CPU {cpus[0]}" if cpus else "not pinned")
    )
    for impl, why in figures["skipped"].items():
        console.print(f"[yellow]{impl} skipped:[/] {why}")
    impls = (OURS, STAGED, PYVIPS, NAIVE)
    times = Table(title="wall time per source, ms: median (CPU median); bytes of the three JPEGs")
    times.add_column("case")
    for column in (*impls, "ours/pyvips wall (cpu)", f"<= {TIME_RATIO_TARGET}"):
        times.add_column(column, justify="right")
    quality = Table(
        title="peak added RSS, MiB (fresh subprocess each); PSNR, dB: 1024 px rendition, and the worst width"
    )
    quality.add_column("case")
    for column in (
        f"RSS {OURS} (resize / watermark)",
        f"RSS {PYVIPS}",
        f"RSS {NAIVE}",
        "ours/naive",
        f"<= {MEMORY_RATIO_TARGET}",
        "px ours",
        "px pyvips",
        "jpeg ours",
        "jpeg pyvips",
        "jpeg ref",
        "worst: width, ours - ref",
        f"ours >= ref - {PSNR_MARGIN_DB}",
    ):
        quality.add_column(column, justify="right")
    for case in figures["cases"]:
        found, ratios, met = case["impls"], case["ratios"], case["targets_met"]

        def cell(impl: str, found: dict[str, Any] = found) -> str:
            if impl not in found:
                return "-"
            f = found[impl]
            return f"{f['median_ms']:.0f} ({f['cpu_ms']:.0f})\n{f['bytes_out']:,} B"

        def field(impl: str, key: str, fmt: str, found: dict[str, Any] = found) -> str:
            return _num(found.get(impl, {}).get(key), fmt)

        times.add_row(
            f"{case['label']}\n{case['width']}x{case['height']}, {case['source_bytes']:,} B",
            *(cell(i) for i in impls),
            f"{_num(ratios['time_ours_vs_pyvips'], '.2f')} ({_num(ratios['cpu_ours_vs_pyvips'], '.2f')})",
            _mark(met["time"]),
        )
        quality.add_row(
            case["case"],
            _by_function(found.get(OURS, {})),
            *(field(i, "peak_added_mb", ".1f") for i in (PYVIPS, NAIVE)),
            _num(ratios["memory_ours_vs_naive"], ".2f"),
            _mark(met["memory"]),
            field(OURS, "psnr_db", ".2f"),
            field(PYVIPS, "psnr_db", ".2f"),
            field(OURS, "psnr_jpeg_db", ".2f"),
            field(PYVIPS, "psnr_jpeg_db", ".2f"),
            _num(case.get(REFERENCE, {}).get("psnr_jpeg_db"), ".2f"),
            f"{_num(ratios['psnr_jpeg_worst_width'], 'd')}: "
            f"{_num(ratios['psnr_jpeg_ours_minus_reference_db'], '+.2f')}",
            _mark(met["psnr"]),
        )
    console.print(times)
    console.print(quality)
    methods = {c["memory_method"] for c in figures["cases"] if "memory_method" in c}
    console.print(f"memory: {', '.join(sorted(methods)) or 'not measured'}")
    console.print(
        "px: the rendition's pixels; jpeg: the rendition as JPEG q85 without watermark; both against a "
        "full-decode LANCZOS resize (jpeg ref: that reference's own JPEG q85)"
    )
    for key, verdict in figures.get("summary", {}).items():
        parts = []
        if verdict["met"]:
            parts.append(f"[green]met[/] for {', '.join(verdict['met'])}")
        if verdict["not_met"]:
            parts.append(f"[red]not met[/] for {', '.join(verdict['not_met'])}")
        if verdict["not_measured"]:
            parts.append(f"not measured for {', '.join(verdict['not_measured'])}")
        console.print(f"target {key}: " + "; ".join(parts))
    if figures.get("plot"):
        console.print(f"plot: {figures['plot']}")


# -- the whole benchmark: imaging, cold starts, orchestration, throughput ---------------------------

PARTS: Final = ("imaging", "cold-start", "orchestration", "throughput")
#: The project issue's targets for the local cloud.
ORCHESTRATION_TARGET_MS: Final = 30.0
THROUGHPUT_TARGET: Final = 4.0  # images/s, 12 MP JPEGs, on 2 cores


def run_all(
    parts: Sequence[str] = PARTS,
    *,
    plot: Path | None,
    repeats: int = REPEATS,
    cold_start_repeats: int = 7,
    executions: int = 30,
    images: int = 40,
) -> dict[str, Any]:
    """Every figure of ``imgpipe bench`` as one object: ``imaging`` (``run()``), ``cold_start``
    (``coldstart.measure()``: import + init per function, packaged), ``orchestration``
    (``overhead.measure_orchestration_overhead()``) and ``throughput`` (``overhead.measure_throughput()``
    on 12 MP JPEGs), each with its target verdicts."""
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown part(s): {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    from rich.console import Console

    status = Console(stderr=True)
    figures: dict[str, Any] = {"machine": {"cores": os.cpu_count(), "platform": platform.platform()}}
    if "imaging" in parts:
        figures["imaging"] = run(False, plot, repeats=repeats)
    if "cold-start" in parts:
        from imgpipe_bench import coldstart

        with status.status("cold starts: import + init of each packaged function, fresh processes"):
            measured = coldstart.measure(repeats=cold_start_repeats)
        figures["cold_start"] = {
            name: {**values, "met": values["median_ms"] <= values["budget_ms"]} for name, values in measured.items()
        }
    if "orchestration" in parts:
        from imgpipe_bench import overhead

        with status.status("orchestration overhead: five trivial tasks per execution"):
            orchestration = overhead.measure_orchestration_overhead(executions)
        figures["orchestration"] = {
            **orchestration,
            "target_ms": ORCHESTRATION_TARGET_MS,
            "met": orchestration["median_ms"] <= ORCHESTRATION_TARGET_MS,
        }
    if "throughput" in parts:
        from imgpipe_bench import overhead

        with status.status(f"throughput: {images} uploads of 12 MP JPEGs at once"):
            throughput = overhead.measure_throughput(images)
        figures["throughput"] = {
            **throughput,
            "target_images_per_s": THROUGHPUT_TARGET,
            "met": throughput["images_per_s"] >= THROUGHPUT_TARGET,
        }
    return figures


def render_all(figures: dict[str, Any], console: Console) -> None:
    from rich.table import Table

    if "imaging" in figures:
        render(figures["imaging"], console)
    if "cold_start" in figures:
        table = Table(title="cold start: import + init, packaged code with .pyc, fresh processes, ms")
        for column in ("function", "median", "min", "budget", "met"):
            table.add_column(column, justify="left" if column == "function" else "right")
        for name, values in figures["cold_start"].items():
            table.add_row(
                name,
                f"{values['median_ms']:.0f}",
                f"{values['min_ms']:.0f}",
                f"{values['budget_ms']:.0f}",
                _mark(values["met"]),
            )
        console.print(table)
    local = Table(title=f"local cloud ({figures['machine']['cores']} cores)")
    for column in ("figure", "value", "target", "met"):
        local.add_column(column, justify="left" if column == "figure" else "right")
    if "orchestration" in figures:
        o = figures["orchestration"]
        local.add_row(
            f"orchestration overhead per execution, median of {o['executions']:.0f} (p95)",
            f"{o['median_ms']:.1f} ms ({o['p95_ms']:.1f})",
            f"<= {o['target_ms']:.0f} ms",
            _mark(o["met"]),
        )
    if "throughput" in figures:
        t = figures["throughput"]
        local.add_row(
            f"throughput, {t['images']:.0f} 12 MP JPEGs uploaded at once (latency p50 / p95)",
            f"{t['images_per_s']:.2f} images/s ({t['p50_s']:.1f} / {t['p95_s']:.1f} s)",
            f">= {t['target_images_per_s']:.0f}",
            _mark(t["met"]),
        )
        cpu = t["worker_cpu_s"] + t["cloud_cpu_s"]
        local.add_row(
            "  CPU per image: Lambda workers + local services",
            f"{t['worker_cpu_s'] / t['images'] * 1000:.0f} + {t['cloud_cpu_s'] / t['images'] * 1000:.0f} ms",
            "",
            f"{cpu / (cpu + t['idle_cpu_s']) * 100:.0f}% busy",
        )
    if local.row_count:
        console.print(local)


def _child_main(argv: Sequence[str]) -> int:
    impl, case_name, source, *staging = argv
    print(json.dumps(child(impl, case_name, Path(source), Path(staging[0]) if staging else None)))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.exit(_child_main(sys.argv[2:]))
    sys.exit("usage: benchmarks/bench_imaging.py (this module only runs the memory subprocesses itself)")
