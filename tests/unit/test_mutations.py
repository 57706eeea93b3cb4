"""Damaged uploads of every readable format end in a named validation error, or in outputs that decode.

Each source is a real image made by Pillow's encoders, pillow-heif's for HEIC (libheif and x265), or, for
the BMP variants Pillow does not write (RLE, bit fields with alpha), written field by field (small: the
point is the parsers, not the pixels).
Each mutation is deterministic (seeded by the source's name): cuts at several points, bytes flipped at
several offsets, a structural unit (chunk, segment, box, scan) duplicated, header fields (sizes, depths,
counts, offsets) zeroed or set to all ones. Each mutated object then goes through what the validate,
resize and watermark steps do (``images.process``): every exception must be one of the validation
errors the state machine names, and an accepted upload must give outputs that decode to their planned
sizes.
"""

from __future__ import annotations

import io
import random
import re
import struct
import warnings
from collections.abc import Callable, Iterator
from typing import Final

import pytest
from PIL import Image, PngImagePlugin

from pipeline import errors, formats, inspection
from pipeline.settings import Limits
from tests import images
from tests.conftest import ROOT

#: The errors an upload's content may end in (SourceMissing and SourceChanged come from S3, InvalidInput
#: from the execution input).
NAMED: Final = (
    errors.EmptyObject,
    errors.UnsupportedFormat,
    errors.CorruptImage,
    errors.ObjectTooLarge,
    errors.TooManyPixels,
    errors.UnsupportedDimensions,
)
#: Small renditions in both outputs with alpha handling (JPEG flattens, WebP keeps it), a low pixel
#: limit so that a mutated size cannot make a case slow.
ADOBE: Final = images.adobe_rgb_profile()
LIMITS: Final = Limits(
    max_upload_bytes=1 << 20, max_pixels=2_000_000, upload_prefix="", widths=(96, 40), formats=("jpeg", "webp")
)


def _sources() -> dict[str, bytes]:
    """One file per kind of input. Three are larger than validate's first read (metadata of 70 KB before a
    JPEG's or a PNG's pixels, a TIFF's later pages), so that the reads that grow are exercised too."""
    photo = images.photo((96, 64), seed=1)
    meta = images.exif(orientation=6, make="Maker", gps=True)
    big_meta = images.exif(orientation=6, make="Maker", description="d" * 60_000)
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "c" * 70_000)
    pages = [images.photo((160, 120), seed=i) for i in range(3)]
    sources = {
        "jpeg-baseline": images.encode(
            photo, "JPEG", quality=90, exif=big_meta, xmp=b"<x:xmpmeta/>" + b" " * 10_000, icc_profile=ADOBE
        ),
        "jpeg-progressive": images.encode(photo, "JPEG", quality=90, progressive=True),
        "png-rgba": images.encode(images.in_mode("RGBA", (96, 64)), "PNG", exif=meta, pnginfo=text),
        "png-palette": images.encode(images.in_mode("PT", (96, 64)), "PNG"),
        "webp-lossy": images.encode(photo, "WEBP", quality=80, exif=meta),
        "webp-lossless": images.encode(images.in_mode("RGBA", (96, 64)), "WEBP", lossless=True),
        "webp-animated": images.animated_webp(3, (64, 48)),
        "gif-animated": images.animated_gif(3, (64, 48)),
        "tiff-multipage": images.encode(pages[0], "TIFF", save_all=True, append_images=pages[1:]),
        "avif": images.encode(images.in_mode("RGBA", (96, 64)), "AVIF", quality=60, exif=meta),
        "bmp-rle8": images.bmp(photo.quantize(40), 8, rle=True),
        "bmp-bitfields-alpha": images.bmp(
            images.in_mode("RGBA", (96, 64)), 32, header=124, masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000), profile=ADOBE
        ),
        "heic": images.encode(
            photo, "HEIF", quality=60, exif=meta.tobytes(), icc_profile=ADOBE, save_all=True, append_images=pages[:1]
        ),
    }
    for name in ("jpeg-baseline", "png-rgba", "tiff-multipage"):
        assert len(sources[name]) > inspection.HEAD_BYTES, name
    return sources


SOURCES: Final = _sources()


# -- mutations ---------------------------------------------------------------------------------


Mutation = tuple[str, bytes]


def units(data: bytes, fmt: str) -> list[tuple[int, int]]:
    """The structural units of a file, as (start, end): chunks, segments and scans, boxes, blocks."""
    if fmt == "PNG":
        return list(_walk(data, 8, lambda at: 12 + int.from_bytes(data[at : at + 4], "big")))
    if fmt == "WEBP":
        return list(_walk(data, 12, lambda at: 8 + (int.from_bytes(data[at + 4 : at + 8], "little") + 1) // 2 * 2))
    if fmt in ("AVIF", "HEIF"):
        return list(_walk(data, 0, lambda at: int.from_bytes(data[at : at + 4], "big")))
    if fmt == "JPEG":
        return _jpeg_units(data)
    # GIF, TIFF and BMP: runs of bytes between their structures' usual sizes.
    step = max(16, len(data) // 12)
    return [(at, min(len(data), at + step)) for at in range(0, len(data), step)]


def _walk(data: bytes, start: int, size_at: Callable[[int], int]) -> Iterator[tuple[int, int]]:
    at = start
    while at + 8 <= len(data):
        size = size_at(at)
        if size <= 0:
            return
        yield at, min(len(data), at + size)
        at += size


def _jpeg_units(data: bytes) -> list[tuple[int, int]]:
    spans = []
    at = 2
    while at + 4 <= len(data) and data[at] == 0xFF and data[at + 1] != 0xD9:
        end = at + 2 + int.from_bytes(data[at + 2 : at + 4], "big")
        if data[at + 1] == 0xDA:  # a scan: the segment and its entropy-coded data
            while (end := data.index(b"\xff", end)) and data[end + 1] in (0x00, *range(0xD0, 0xD8)):
                end += 2
        spans.append((at, end))
        at = end
    return spans


def _header_fields(data: bytes, fmt: str) -> list[tuple[int, int]]:
    """(offset, length) of the fields a reader sizes things by: dimensions, depths, counts, offsets."""
    if fmt == "PNG":
        return [(16, 4), (20, 4), (24, 1), (25, 1)]  # IHDR width, height, bit depth, colour type
    if fmt == "JPEG":
        sof = max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2"))
        return [(sof + 2, 2), (sof + 5, 2), (sof + 7, 2), (sof + 9, 1), (sof + 11, 1)]  # length, h, w, n, sampling
    if fmt == "WEBP":
        return [(4, 4), (16, 4), (24, 3), (27, 3)]  # RIFF size, first chunk size, VP8X canvas / bitstream header
    if fmt == "GIF":
        return [(6, 2), (8, 2), (10, 1), (data.find(b",") + 5, 4)]  # screen size, flags, first image's size
    if fmt == "TIFF":
        ifd = int.from_bytes(data[4:8], "little")
        return [(4, 4), (ifd, 2), (ifd + 2 + 8, 4), (ifd + 2 + 12 + 8, 4)]  # IFD offset, entry count, values
    if fmt == "BMP":
        return [(2, 4), (10, 4), (18, 4), (22, 4), (28, 2), (30, 4), (34, 4)]  # sizes, offset, w, h, depth, compression
    ispe = data.find(b"ispe")
    return [(ispe + 8, 4), (ispe + 12, 4), (data.find(b"iloc") + 8, 4), (0, 4)]  # AVIF, HEIF: ispe, iloc, ftyp size


def mutations(name: str, data: bytes) -> list[Mutation]:
    fmt = formats.sniff(data)
    assert fmt is not None
    rnd = random.Random(name)
    cases: list[Mutation] = []
    for fraction in (0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98):
        cut = int(len(data) * fraction)
        cases.append((f"cut at {cut}", data[:cut]))
    cases += [("cut 1 byte", data[:-1]), ("cut 2 bytes", data[:-2]), ("cut 13 bytes", data[:-13])]
    header = min(len(data), 200)
    offsets = sorted({rnd.randrange(header) for _ in range(10)} | {rnd.randrange(len(data)) for _ in range(8)})
    for at in offsets:
        flipped = bytearray(data)
        flipped[at] ^= rnd.randrange(1, 256)
        cases.append((f"flip at {at}", bytes(flipped)))
    spans = units(data, fmt)
    for start, end in rnd.sample(spans, min(5, len(spans))):
        cases.append((f"duplicate {start}-{end}", data[:end] + data[start:end] + data[end:]))
    for at, length in _header_fields(data, fmt):
        if at >= 0 and at + length <= len(data):
            cases.append((f"zero {length} at {at}", data[:at] + bytes(length) + data[at + length :]))
            cases.append((f"max {length} at {at}", data[:at] + b"\xff" * length + data[at + length :]))
    return cases


# -- the test ----------------------------------------------------------------------------------


def _check_outputs(processed: images.Processed) -> None:
    assert processed.outputs, "accepted, but no output"
    assert processed.frames >= 1
    for width, height, fmt, body in processed.outputs:
        with Image.open(io.BytesIO(body), formats=[fmt.upper()]) as out:
            out.load()
            assert out.size == (width, height), (fmt, out.size, (width, height))


def outcome(data: bytes) -> str:
    """What processing ``data`` ends in: "accepted", the name of a validation error, or an escape (a text
    starting with "!")."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns of much of what it reads in damaged files
            processed = images.process(data, LIMITS)
        _check_outputs(processed)
    except NAMED as exc:
        if "\n" in str(exc):
            return f"! {type(exc).__name__} in more than one line: {exc!r}"
        return type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - that is what this test looks for
        return f"! {type(exc).__name__}: {exc}"
    return "accepted"


@pytest.mark.parametrize("name", SOURCES)
def test_every_mutation_ends_in_a_named_error_or_in_decodable_outputs(name: str) -> None:
    assert outcome(SOURCES[name]) == "accepted"
    results = {label: outcome(mutated) for label, mutated in mutations(name, SOURCES[name])}
    escapes = {label: result for label, result in results.items() if result.startswith("!")}
    assert not escapes, "\n".join(f"{name}, {label}: {result}" for label, result in escapes.items())
    assert "accepted" in results.values(), "no mutation was harmless: the test exercises no decode"
    assert set(results.values()) - {"accepted"}, "no mutation was refused"


def test_the_mutations_are_deterministic_and_cover_every_format() -> None:
    first = {name: mutations(name, data) for name, data in SOURCES.items()}
    assert first == {name: mutations(name, data) for name, data in SOURCES.items()}
    assert {formats.sniff(data) for data in SOURCES.values()} == formats.READABLE
    total = sum(len(cases) for cases in first.values())
    assert 300 <= total <= 600, total


def test_an_escape_would_be_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check itself: a raw exception or an InternalError is an escape, a validation error is not."""
    raised: list[Exception] = [
        struct.error("unpack requires a buffer of 4 bytes"),
        errors.InternalError("a defect"),
        errors.CorruptImage("first line\nsecond line"),
        errors.CorruptImage("the PNG data cannot be decoded"),
    ]

    def failing(data: bytes, limits: Limits) -> images.Processed:
        raise raised.pop(0)

    monkeypatch.setattr(images, "process", failing)
    assert outcome(b"") == "! error: unpack requires a buffer of 4 bytes"
    assert outcome(b"") == "! InternalError: a defect"
    assert outcome(b"").startswith("! CorruptImage in more than one line")
    assert outcome(b"") == "CorruptImage"


def test_the_named_errors_are_in_the_documented_error_list() -> None:
    """The names the mutations may end in are documented, as errors that are never retried."""
    doc = (ROOT / "docs" / "errors-and-outcomes.md").read_text(encoding="utf-8")
    table = doc[doc.index("## Error names") :].split("\n## ", 1)[0]
    documented = dict(re.findall(r"^\| `(\w+)` \| (yes|no) \|", table, flags=re.MULTILINE))
    assert {error.__name__ for error in NAMED} <= {name for name, retried in documented.items() if retried == "no"}
    # Every error the pipeline raises on purpose is in the list.
    raised = {cls.__name__ for cls in _subclasses(errors.PipelineError)} - {"PipelineError", "ValidationError"}
    assert raised - {"ConfigurationError"} <= set(documented)


def _subclasses(cls: type[Exception]) -> set[type[Exception]]:
    children: list[type[Exception]] = cls.__subclasses__()
    return {cls} | {sub for child in children for sub in _subclasses(child)}
