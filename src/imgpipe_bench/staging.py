"""``imgpipe bench staging``: the lossless intermediate between the resize and watermark steps, by measurement.

For each source (the benchmark's real photographs and the cases derived from them, or ``--images DIR``;
a synthetic photo when there is none), the layer decodes once and makes the default renditions, as the
resize step does. Each candidate serialisation of those renditions is then timed writing (in the resize
step) and reading (in the watermark step), CPU time, median of ``--repeats``, with libvips on one thread;
its bytes are summed and checked to come back identical. Beside them: the CPU the two steps spend on
their own work (decode, resize, watermark, encode), the final outputs' bytes, and the time the staged
bytes take to cross S3 twice (written, then read) at one connection's throughput.

The targets: staged bytes at most ``BYTES_TARGET`` times the final outputs, at most ``CPU_TARGET`` more
CPU in the two steps than the uncompressed intermediate.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final

from PIL import Image
from rich.console import Console
from rich.table import Table

from imgpipe_bench.arguments import at_least

HELP: Final = "the lossless intermediate between resize and watermark: bytes staged, CPU, transfer time"
DESCRIPTION: Final = (
    "Candidate lossless intermediates for the renditions the resize step stages for the watermark step: "
    "bytes against the final outputs, CPU to write and read them, and their S3 transfer time."
)
#: One S3 connection's throughput: "make one concurrent request for each 85-90 MB/s of desired network
#: throughput" (Amazon S3 performance guidelines, horizontal scaling:
#: https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance-guidelines.html).
S3_MB_PER_S: Final = 85.0
BYTES_TARGET: Final = 3.0
CPU_TARGET: Final = 0.10
WIDTHS: Final = (2048, 1024, 320)

Write = Callable[[Image.Image, bytes | None], bytes]
Read = Callable[[bytes], Image.Image]


@dataclass(frozen=True)
class Candidate:
    name: str
    write: Write
    read: Read


def _pillow(fmt: str, **params: Any) -> Write:
    def write(img: Image.Image, icc: bytes | None) -> bytes:
        buf = io.BytesIO()
        img.save(buf, fmt, **params, **({"icc_profile": icc} if icc else {}))
        return buf.getvalue()

    return write


def _pillow_read(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def _vips(suffix: str, **params: Any) -> Write:
    def write(img: Image.Image, icc: bytes | None) -> bytes:
        from pipeline import renditions

        image = renditions.to_vips(img)
        if icc:
            image = image.copy()
            image.set_type(renditions.vips().GValue.blob_type, "icc-profile-data", icc)
        body: bytes = image.write_to_buffer(suffix, **params)
        return body

    return write


def _vips_read(data: bytes) -> Image.Image:
    from pipeline import renditions

    image = renditions.vips().Image.new_from_buffer(data, "", access="sequential")
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[image.bands]
    return renditions.from_vips(image, mode)


def candidates() -> list[Candidate]:
    """The intermediates measured: the layer's own first, then the lossless formats Pillow and libvips write."""
    from pipeline import imaging

    return [
        Candidate("TIFF, uncompressed (the layer's)", imaging.to_lossless, lambda d: imaging.from_lossless(d)[0]),
        Candidate("PNG, zlib level 1 (Pillow)", _pillow("PNG", compress_level=1), _pillow_read),
        Candidate("PNG, zlib level 1 (libvips)", _vips(".png", compression=1), _vips_read),
        Candidate(
            "TIFF, deflate + predictor (libvips)",
            _vips(".tif", compression="deflate", predictor="horizontal", level=1),
            _vips_read,
        ),
        Candidate("WebP lossless, effort 0 (libvips)", _vips(".webp", lossless=True, effort=0), _vips_read),
    ]


def _cpu_ms(work: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        work()
        times.append(time.process_time() - start)
    return statistics.median(times) * 1000


def _renditions(data: bytes) -> tuple[list[Image.Image], bytes | None]:
    from pipeline import renditions

    chain, icc = renditions.of(data, 1 << 31, WIDTHS)
    return [r.image for r in chain], icc


def _steps(data: bytes) -> tuple[Callable[[], object], int]:
    """The two steps' own work on one source (as the layer does it, without the intermediate), and the
    final outputs' bytes (JPEG at the template's default quality)."""
    from imgpipe_bench.imaging.cases import settings
    from pipeline import encoding, watermark

    marks, enc = settings()

    def work() -> int:
        images, icc = _renditions(data)
        return sum(len(encoding.encode(watermark.apply(img, marks), "jpeg", enc, icc)) for img in images)

    return work, work()


def _write_all(candidate: Candidate, images: list[Image.Image], icc: bytes | None) -> list[bytes]:
    return [candidate.write(img, icc) for img in images]


def _read_all(candidate: Candidate, staged: list[bytes]) -> list[Image.Image]:
    return [candidate.read(body) for body in staged]


def measure_source(name: str, data: bytes, repeats: int) -> dict[str, Any]:
    """Every candidate on one source: bytes, write and read CPU, transfer time, against the targets."""
    images, icc = _renditions(data)
    work, final = _steps(data)
    steps_ms = _cpu_ms(work, repeats)
    rows: list[dict[str, Any]] = []
    for candidate in candidates():
        staged = [candidate.write(img, icc) for img in images]
        identical = all(
            candidate.read(body).tobytes() == img.tobytes() for body, img in zip(staged, images, strict=True)
        )
        write_ms = _cpu_ms(partial(_write_all, candidate, images, icc), repeats)
        read_ms = _cpu_ms(partial(_read_all, candidate, staged), repeats)
        staged_bytes = sum(map(len, staged))
        rows.append(
            {
                "intermediate": candidate.name,
                "staged_bytes": staged_bytes,
                "staged_vs_final": staged_bytes / final,
                "write_ms": write_ms,
                "read_ms": read_ms,
                "transfer_ms": 2 * staged_bytes / (S3_MB_PER_S * 1e6) * 1000,
                "lossless": identical,
            }
        )
    base = rows[0]["write_ms"] + rows[0]["read_ms"]
    for row in rows:
        row["extra_cpu_vs_steps"] = (row["write_ms"] + row["read_ms"] - base) / steps_ms
        row["met"] = (
            row["lossless"] and row["staged_vs_final"] <= BYTES_TARGET and row["extra_cpu_vs_steps"] <= CPU_TARGET
        )
    return {"source": name, "final_bytes": final, "steps_cpu_ms": steps_ms, "intermediates": rows}


def table(figures: dict[str, Any]) -> Table:
    out = Table(
        title=f"staged between resize and watermark (targets: <= {BYTES_TARGET:g}x the final outputs, "
        f"<= {CPU_TARGET:.0%} more CPU in the two steps; S3 at {S3_MB_PER_S:g} MB/s a connection)"
    )
    for column in ("source", "intermediate", "MB staged", "x final", "write ms", "read ms", "+CPU", "S3 ms", "met"):
        out.add_column(column, justify="left" if column in ("source", "intermediate") else "right")
    for source in figures["sources"]:
        for index, row in enumerate(source["intermediates"]):
            label = f"{source['source']} ({source['steps_cpu_ms']:.0f} ms in the steps)" if index == 0 else ""
            out.add_row(
                label,
                row["intermediate"],
                f"{row['staged_bytes'] / 1e6:.2f}",
                f"{row['staged_vs_final']:.1f}",
                f"{row['write_ms']:.0f}",
                f"{row['read_ms']:.0f}",
                f"{row['extra_cpu_vs_steps']:+.0%}",
                f"{row['transfer_ms']:.0f}",
                ("yes" if row["met"] else "no") + ("" if row["lossless"] else " (lossy!)"),
                end_section=index == len(source["intermediates"]) - 1,
            )
    return out


def _inputs(images: Path | None) -> tuple[list[tuple[str, bytes]], str]:
    from imgpipe_bench.imaging.cases import DERIVED, PHOTO
    from imgpipe_bench.imaging.sources import sources

    found = sources(images, synthetic=())
    real = [(case.name, make()) for case, make in found.cases if case.kind in (PHOTO, DERIVED)]
    if real:
        return real, found.note
    from imgpipe_bench.photos import photo

    buf = io.BytesIO()
    photo((4000, 3000), seed=1).save(buf, "JPEG", quality=90)
    return [("synthetic 12 MP photo", buf.getvalue())], found.note


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", type=Path, default=None, help="a directory of photographs (default: out/photos)")
    p.add_argument("--repeats", type=at_least(1), default=3, help="repetitions per figure (median; default 3)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")


def run(args: argparse.Namespace, out: Console) -> int:
    os.environ.setdefault("VIPS_CONCURRENCY", "1")  # a Lambda function below 1769 MB has less than one vCPU
    inputs, note = _inputs(args.images)
    figures = {
        "s3_mb_per_s": S3_MB_PER_S,
        "targets": {"staged_vs_final": BYTES_TARGET, "extra_cpu_vs_steps": CPU_TARGET},
        "note": note,
        "sources": [measure_source(name, data, args.repeats) for name, data in inputs],
    }
    if args.json:
        out.print(json.dumps(figures), highlight=False, soft_wrap=True)
    else:
        out.print(note, highlight=False)
        out.print(table(figures))
    return 0
