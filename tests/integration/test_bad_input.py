"""A corpus of hostile, broken and unusual uploads, all at once, on the embedded local cloud.

Every body is made here (tests/images.py helpers and hand-made bytes; nothing is downloaded).
Each case declares its outcome:

* ``error=None``: the execution SUCCEEDED; the destination holds exactly the expected renditions
  (dimensions as declared, never upscaled, upright, JPEG in the declared mode) and a manifest
  naming this source; exactly one success message.
* ``error="..."``: the execution FAILED with that error; exactly one failure message with the same
  error; no output under the case's stem; nothing left in staging for it.

In both cases the source object is untouched. The cases are uploaded together (a thread pool),
then followed to their end; the last tests check the local cloud is still healthy afterwards.
The over-the-limit case is one byte over the default MaxUploadBytes (50 MiB), so the module needs
no second deployment.

Product bugs this corpus found: a corrupt PNG whose header and trailer are valid was stored as a
black image (``png-corrupt-idat``), and the 1024w rendition of every 3:2 photo larger than 2048 px
was 682 px high instead of 683 (``large-3x2-jpeg``: heights were chained from the previous rounded
rendition); both are fixed in layers/shared/pipeline/imaging.py. Distinct keys that differed only by
``.``/``..``/empty segments shared one destination folder (the test at the end); pipeline.keys.stem now
tags every cleaned key with a hash of the whole key (tests/unit/test_keys_properties.py).
"""

from __future__ import annotations

import gzip
import io
import json
import random
import re
import struct
import time
import warnings
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
from PIL import Image, ImageChops

from localcloud.manual import state_path
from pipeline.keys import manifest_key, rendition_key, source_digest
from tests import images
from tests.integration.conftest import Deployed

pytestmark = pytest.mark.slow

#: How long one case may take from its upload to a finished execution (all run at once on 2 cores).
CASE_TIMEOUT_S = 300.0
#: The template's default MaxUploadBytes (the over-the-limit case needs no deployment of its own).
MAX_UPLOAD_BYTES = 52_428_800
#: Stems leave room for "/<revision tag>/<width>w.<ext>" and "/manifest.json" (pipeline.keys).
MAX_STEM_BYTES = 1024 - 48
WHITE = (255, 255, 255)
#: A 32-bit BMP's channel masks with alpha (BGRA in memory).
BGRA_MASKS = (0xFF0000, 0xFF00, 0xFF, 0xFF000000)

Check = Callable[[Image.Image, bytes], None]


# -- bodies ------------------------------------------------------------------------------------


def _jpeg(size: tuple[int, int] = (200, 150), seed: int = 0, **params: Any) -> bytes:
    return images.encode(images.photo(size, seed), "JPEG", quality=90, **params)


def _png(img: Image.Image) -> bytes:
    return images.encode(img, "PNG")


def _noise(n: int, seed: int) -> bytes:
    data = random.Random(seed).randbytes(n)
    return data.replace(b";", b":")  # never ends like a GIF trailer


def _png_with(ihdr: bytes, idat: bytes) -> bytes:
    """A PNG from its IHDR fields and raw IDAT bytes, with valid checksums."""
    chunks = images.png_chunk(b"IHDR", ihdr) + images.png_chunk(b"IDAT", idat) + images.png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def _bad_crc_png() -> bytes:
    good = _png(images.photo((64, 48)))
    crc_at = 8 + 8 + 13  # signature, IHDR length and type, IHDR data
    (crc,) = struct.unpack(">I", good[crc_at : crc_at + 4])
    return good[:crc_at] + struct.pack(">I", crc ^ 0xDEADBEEF) + good[crc_at + 4 :]


def _zero_width_png() -> bytes:
    return _png_with(struct.pack(">IIBBBBB", 0, 16, 8, 0, 0, 0, 0), zlib.compress(b"\x00" * 17))


def _corrupt_idat_png() -> bytes:
    """Header, checksums and trailer are valid; the compressed pixels are not zlib at all."""
    return _png_with(struct.pack(">IIBBBBB", 64, 48, 8, 2, 0, 0, 0), _noise(600, 7))


def _gif_bomb() -> bytes:
    """A GIF whose logical screen and image claim 65535 x 65535 pixels, in a few bytes."""
    screen = struct.pack("<HHBBB", 65535, 65535, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    image = b"," + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0) + b"\x02\x02\x4c\x01\x00"
    return b"GIF89a" + screen + image + b";"


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("photo.jpg", _jpeg())
    return buf.getvalue()


def _webp_garbage() -> bytes:
    body = b"WEBP" + _noise(2000, 3)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]


def _too_large() -> bytes:
    """One byte over the default MaxUploadBytes (a valid JPEG start, then zeros)."""
    head = _jpeg()
    return head + b"\x00" * (MAX_UPLOAD_BYTES + 1 - len(head))


def ycck_jpeg(cmyk: Image.Image, quality: int = 95) -> bytes:
    """A YCCK JPEG (Adobe APP14 transform 2) whose decoded CMYK pixels are ``cmyk``.

    Pillow writes CMYK JPEGs only (transform 0, components stored inverted, as Adobe does).
    YCCK stores the inverted CMY as YCbCr and K as is, so we let Pillow write those four
    planes as a "CMYK" image and then flip the APP14 transform byte from 0 to 2: libjpeg
    converts YCbCr back to CMY on decoding.
    """
    c, m, y, k = cmyk.split()
    luma, cb, cr = Image.merge("RGB", (c, m, y)).convert("YCbCr").split()
    invert = ImageChops.invert  # undone by Pillow's inverted (Adobe) CMYK encoding
    data = bytearray(
        images.encode(Image.merge("CMYK", (invert(luma), invert(cb), invert(cr), k)), "JPEG", quality=quality)
    )
    app14 = data.find(b"\xff\xee")
    assert app14 > 0
    assert data[app14 + 4 : app14 + 9] == b"Adobe"
    transform = app14 + 4 + 5 + 2 + 2 + 2  # marker, length, "Adobe", version, flags0, flags1
    assert data[transform] == 0, "Pillow wrote a plain CMYK JPEG"
    data[transform] = 2
    return bytes(data)


def _oriented(orientation: int) -> bytes:
    return images.oriented_jpeg(orientation, MARKER_SIZE)


def _bad_orientation_tag() -> bytes:
    return images.encode(images.markers(MARKER_SIZE), "JPEG", quality=95, exif=images.exif(orientation=9))


def _trailing_bytes_jpeg() -> bytes:
    return _jpeg((400, 300)) + b"\x00" * 64 + b"camera maker's trailer"


# -- checks on the largest rendition ---------------------------------------------------------------

MARKER_SIZE = (480, 320)


def upright(img: Image.Image, body: bytes) -> None:
    """Red block top-left, blue block top-right, grey below: the markers image, upright."""
    rgb = img.convert("RGB")
    w, h = rgb.size
    block = round(24 * w / MARKER_SIZE[0])
    inset = 3
    assert images.near(images.mean(rgb, (inset, inset, block - inset, block - inset)), images.RED, 40), "red corner"
    assert images.near(images.mean(rgb, (w - block + inset, inset, w - inset, block - inset)), images.BLUE, 40), (
        "blue corner"
    )
    bottom = (w // 2 - 10, h - 20, w // 2 + 10, h - 4)
    assert images.near(images.mean(rgb, bottom), images.GREY, 20), "grey bottom"


def like_source(min_psnr: float = 27.0) -> Check:
    """The rendition looks like the upload's first frame as Pillow decodes it (same size: no resize)."""

    def check(img: Image.Image, body: bytes) -> None:
        got = img.convert("RGB")
        frames = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about the broken EXIF blocks of some cases
            with images.reopen(body) as source:
                for index in range(min(2, getattr(source, "n_frames", 1))):
                    source.seek(index)
                    frames.append(source.convert("RGB"))
        assert got.size == frames[0].size
        assert images.psnr(got, frames[0]) > min_psnr
        if len(frames) > 1:  # an animation: the first frame, not a later one
            assert images.psnr(got, frames[0]) > images.psnr(got, frames[1]) + 3

    return check


def white_where_transparent(box: Callable[[int, int], tuple[int, int, int, int]]) -> Check:
    """Transparent pixels are flattened over white for JPEG."""

    def check(img: Image.Image, body: bytes) -> None:
        rgb = img.convert("RGB")
        assert images.near(images.mean(rgb, box(*rgb.size)), WHITE, 6)

    return check


def red_dot(img: Image.Image, body: bytes) -> None:
    assert images.near(images.mean(img.convert("RGB")), images.RED, 30)


def grey_levels(img: Image.Image, body: bytes) -> None:
    """A grey image using the whole range (not clipped to white by a naive 16-bit conversion)."""
    low, high = images.extrema(img.convert("L"))
    mean = images.mean(img.convert("L"))[0]
    assert low < 40
    assert high > 215
    assert 40 < mean < 215


# -- the corpus --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    name: str
    """The key below the upload prefix."""
    make: Callable[[], bytes]
    error: str | None = None
    sizes: tuple[tuple[int, int], ...] = ()
    """Expected renditions, largest first (success only)."""
    mode: str = "RGB"
    """Mode of the JPEG outputs."""
    check: Check | None = None
    """Applied to the largest rendition."""
    stem: str | None = ""
    """Destination folder: "" means the name itself; None means shortened (checked by its properties)."""
    failed_in: str = "Validate"
    """The task whose error the execution ends with (failure only)."""
    xfail: str | None = None

    @property
    def expected_stem(self) -> str | None:
        return self.name if self.stem == "" else self.stem


def _fail(case_id: str, name: str, make: Callable[[], bytes], error: str, failed_in: str = "Validate") -> Case:
    return Case(case_id, "bad/" + name, make, error=error, failed_in=failed_in)


ORIENTED = (MARKER_SIZE, (320, 213))
SMALL = ((200, 150),)
LONG_ASCII = "keys/long " + "x" * (1024 - len("uploads/keys/long ") - len(".jpg")) + ".jpg"
LONG_CJK = "keys/" + "長" * 335 + ".jpg"

CASES: list[Case] = [
    # -- not images, or not the images they claim to be
    _fail("zero-bytes", "empty.jpg", lambda: b"", "EmptyObject"),
    _fail("text-as-jpg", "notes.jpg", lambda: b"plain text, not a photo\n" * 40, "UnsupportedFormat"),
    _fail(
        "pdf-as-jpg",
        "report.jpg",
        lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n%%EOF\n",
        "UnsupportedFormat",
    ),
    _fail("zip-as-jpg", "archive.jpg", _zip, "UnsupportedFormat"),
    _fail("gzip-as-jpg", "compressed.jpg", lambda: gzip.compress(_jpeg()), "UnsupportedFormat"),
    _fail(
        "svg",
        "vector.svg",
        lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        "UnsupportedFormat",
    ),
    _fail(
        "heif-of-no-known-coding",
        "unknown.heif",
        lambda: images.ftyp(b"mif1", [b"mif1", b"miaf"]) + _noise(500, 1),
        "UnsupportedFormat",
    ),
    # -- truncated
    _fail("truncated-jpeg", "cut.jpg", lambda: _truncated(_jpeg((800, 600))), "CorruptImage"),
    _fail("truncated-png", "cut.png", lambda: _truncated(_png(images.photo((400, 300)))), "CorruptImage"),
    _fail(
        "truncated-webp",
        "cut.webp",
        lambda: _truncated(images.encode(images.photo((400, 300)), "WEBP")),
        "CorruptImage",
    ),
    _fail("truncated-gif", "cut.gif", lambda: _truncated(images.animated_gif(3, (120, 80)), 0.6), "CorruptImage"),
    _fail(
        "truncated-tiff",
        "cut.tif",
        lambda: _truncated(images.encode(images.photo((400, 300)), "TIFF")),
        "CorruptImage",
        failed_in="Resize",  # TIFF has no end marker: the header passes, decoding fails
    ),
    _fail(
        "truncated-avif",
        "cut.avif",
        lambda: _truncated(images.encode(images.photo((400, 300)), "AVIF")),
        "CorruptImage",
    ),
    _fail(
        "truncated-bmp", "cut.bmp", lambda: _truncated(images.encode(images.photo((400, 300)), "BMP")), "CorruptImage"
    ),
    _fail(
        "truncated-heic",
        "cut.heic",
        lambda: _truncated(images.encode(images.photo((400, 300)), "HEIF"), 0.9),
        "CorruptImage",
    ),
    # -- broken headers, garbage after a valid magic number
    _fail("corrupt-jpeg-header", "header.jpg", lambda: b"\xff\xd8\xff" + _noise(3000, 2) + b"\xff\xd9", "CorruptImage"),
    _fail("png-ihdr-bad-crc", "crc.png", _bad_crc_png, "CorruptImage"),
    _fail("png-magic-then-garbage", "magic.png", lambda: b"\x89PNG\r\n\x1a\n" + _noise(3000, 4), "CorruptImage"),
    _fail("gif-magic-then-garbage", "magic.gif", lambda: b"GIF89a\x10\x00\x10\x00" + _noise(3000, 5), "CorruptImage"),
    _fail("webp-magic-then-garbage", "magic.webp", _webp_garbage, "CorruptImage"),
    _fail("tiff-magic-then-garbage", "magic.tif", lambda: b"II*\x00" + _noise(3000, 6), "CorruptImage"),
    _fail(
        "heic-magic-then-garbage",
        "magic.heic",
        lambda: images.ftyp(b"heic", [b"mif1", b"heic"]) + _noise(3000, 8),
        "CorruptImage",
    ),
    _fail(
        "bmp-magic-then-garbage",
        "magic.bmp",
        lambda: b"BM" + bytes(12) + b"\x28\x00\x00\x00" + _noise(3000, 9),
        "CorruptImage",
    ),
    _fail("png-zero-width", "zero-width.png", _zero_width_png, "CorruptImage"),
    # Header and trailer pass validation; decoding fails. Found here: imaging.decode read the orientation first,
    # and for a PNG getexif() loads the pixels, so the load error was swallowed and a black image stored.
    _fail("png-corrupt-idat", "idat.png", _corrupt_idat_png, "CorruptImage", failed_in="Resize"),
    # -- limits
    _fail("png-bomb-100000x100000", "bomb.png", images.png_bomb, "TooManyPixels"),
    _fail("gif-bomb-65535x65535", "bomb.gif", _gif_bomb, "TooManyPixels"),
    _fail("over-the-byte-limit", "huge.jpg", _too_large, "ObjectTooLarge"),
    # -- unusual but valid images
    Case(
        "large-3x2-jpeg",
        "ok/large.jpg",
        lambda: _jpeg((2400, 1600)),
        sizes=((2048, 1365), (1024, 683), (320, 213)),
    ),
    Case("narrower-than-every-width", "ok/narrow.jpg", lambda: _jpeg((200, 150)), sizes=SMALL),
    Case(
        "animated-gif",
        "ok/animated.gif",
        lambda: images.animated_gif(3, (360, 240)),
        sizes=((360, 240), (320, 213)),
        check=like_source(20),  # dithered palette frames: JPEG codes their grain poorly
    ),
    Case(
        "animated-webp",
        "ok/animated.webp",
        lambda: images.animated_webp(3, (360, 240)),
        sizes=((360, 240), (320, 213)),
        check=like_source(),
    ),
    Case(
        "cmyk-jpeg",
        "ok/cmyk.jpg",
        lambda: images.encode(images.markers(MARKER_SIZE).convert("CMYK"), "JPEG", quality=95),
        sizes=ORIENTED,
        check=upright,
    ),
    Case(
        "ycck-jpeg",
        "ok/ycck.jpg",
        lambda: ycck_jpeg(images.markers(MARKER_SIZE).convert("CMYK")),
        sizes=ORIENTED,
        check=upright,
    ),
    Case(
        "png-16-bit",
        "ok/sixteen.png",
        lambda: _png(images.in_mode("I;16", (400, 300))),
        sizes=((400, 300), (320, 240)),
        mode="L",
        check=grey_levels,
    ),
    Case(
        "palette-png-with-transparency",
        "ok/palette.png",
        lambda: _png(images.in_mode("PT", (400, 300))),
        sizes=((400, 300), (320, 240)),
        check=white_where_transparent(lambda w, h: (2, 2, w // 4 - 2, h - 2)),
    ),
    Case(
        "grey-alpha-png",
        "ok/grey-alpha.png",
        lambda: _png(images.in_mode("LA", (400, 300))),
        sizes=((400, 300), (320, 240)),
        mode="L",
        check=white_where_transparent(lambda w, h: (2, 2, w // 3 - 2, h - 2)),
    ),
    Case(
        "rgba-png",
        "ok/rgba.png",
        lambda: _png(images.in_mode("RGBA", (400, 300))),
        sizes=((400, 300), (320, 240)),
        check=white_where_transparent(lambda w, h: (2, 2, w // 3 - 2, h - 2)),
    ),
    Case(
        "one-bit-png",
        "ok/one-bit.png",
        lambda: _png(images.in_mode("1", (400, 300))),
        sizes=((400, 300), (320, 240)),
        mode="L",
        check=grey_levels,
    ),
    Case("1x1", "ok/dot.png", lambda: _png(Image.new("RGB", (1, 1), images.RED)), sizes=((1, 1),), check=red_dot),
    Case("1x20000", "ok/tall.png", lambda: _png(images.photo((1, 20000), noise=0)), sizes=((1, 20000),)),
    Case(
        "20000x1",
        "ok/wide.jpg",
        lambda: images.encode(images.photo((20000, 1), noise=0), "JPEG"),
        sizes=((2048, 1), (1024, 1), (320, 1)),
    ),
    *[
        Case(f"exif-orientation-{o}", f"ok/orientation-{o}.jpg", partial(_oriented, o), sizes=ORIENTED, check=upright)
        for o in range(1, 9)
    ],
    Case("exif-orientation-9-ignored", "ok/orientation-9.jpg", _bad_orientation_tag, sizes=ORIENTED, check=upright),
    Case(
        "broken-exif-block",
        "ok/broken-exif.jpg",
        lambda: images.broken_exif_jpeg(b"not a TIFF header at all" * 4, (400, 300)),
        sizes=((400, 300), (320, 240)),
        check=like_source(),
    ),
    Case(
        "exif-ifd-offset-out-of-range",
        "ok/exif-offset.jpg",
        lambda: images.broken_exif_jpeg(b"II*\x00\xff\xff\xff\x7f" + b"\x00" * 16, (400, 300)),
        sizes=((400, 300), (320, 240)),
        check=like_source(),
    ),
    Case(
        "exif-block-past-64-kib",
        "ok/big-header.jpg",
        lambda: images.big_header_jpeg(60_000, (400, 300)),
        sizes=((400, 300), (320, 240)),
        check=like_source(),
    ),
    Case("bytes-after-jpeg-end", "ok/trailer.jpg", _trailing_bytes_jpeg, sizes=((400, 300), (320, 240))),
    Case(
        "progressive-jpeg",
        "ok/progressive.jpg",
        lambda: _jpeg((400, 300), progressive=True),
        sizes=((400, 300), (320, 240)),
        check=like_source(),
    ),
    Case(
        "tiff",
        "ok/photo.tif",
        lambda: images.encode(images.photo((400, 300)), "TIFF", compression="tiff_lzw"),
        sizes=((400, 300), (320, 240)),
        check=like_source(),
    ),
    Case(
        "avif",
        "ok/photo.avif",
        lambda: images.encode(images.photo((400, 300)), "AVIF", quality=90),
        sizes=((400, 300), (320, 240)),
        check=like_source(),
    ),
    Case(
        "bmp",
        "ok/bitmap.bmp",
        lambda: images.encode(images.photo((400, 300)), "BMP"),
        sizes=((400, 300), (320, 240)),
        check=like_source(),
    ),
    Case(
        "bmp-rle8",
        "ok/rle8.bmp",
        lambda: images.bmp(images.photo((400, 300)).quantize(64), 8, rle=True),
        sizes=((400, 300), (320, 240)),
        check=like_source(),
    ),
    Case(
        "bmp-bitfields-alpha",
        "ok/alpha.bmp",
        lambda: images.bmp(images.in_mode("RGBA", (400, 300)), 32, header=124, masks=BGRA_MASKS),
        sizes=((400, 300), (320, 240)),
        check=white_where_transparent(lambda w, h: (2, 2, w // 3 - 2, h - 2)),
    ),
    Case(
        "bmp-top-down",
        "ok/top-down.bmp",
        lambda: images.bmp(images.markers(MARKER_SIZE), 24, top_down=True),
        sizes=ORIENTED,
        check=upright,
    ),
    Case(
        "heic",
        "ok/photo.heic",
        lambda: images.encode(images.photo((400, 300)), "HEIF", quality=90),
        sizes=((400, 300), (320, 240)),
        check=like_source(),
    ),
    Case(
        "heic-orientation-6",
        "ok/orientation-6.heic",
        lambda: images.oriented_jpeg(6, MARKER_SIZE, fmt="HEIF"),
        sizes=ORIENTED,
        check=upright,
    ),
    Case(
        "heic-two-images",
        "ok/burst.heic",
        lambda: images.encode(
            images.photo((400, 300)),
            "HEIF",
            quality=90,
            save_all=True,
            append_images=[images.photo((400, 300), seed=5)],
        ),
        sizes=((400, 300), (320, 240)),
        check=like_source(),
    ),
    # -- keys
    Case("key-with-spaces", "keys/my holiday photo.jpg", _jpeg, sizes=SMALL),
    Case("key-with-plus", "keys/plus+sign.jpg", lambda: _jpeg(seed=1), sizes=SMALL),
    Case("key-with-percent", "keys/100% sure.jpg", lambda: _jpeg(seed=2), sizes=SMALL),
    Case("key-with-literal-%20", "keys/literal%20twenty.jpg", lambda: _jpeg(seed=3), sizes=SMALL),
    Case("key-with-literal-%2B", "keys/literal%2Bplus.jpg", lambda: _jpeg(seed=4), sizes=SMALL),
    Case("key-with-emoji", "keys/sunset 🌅📷.jpg", lambda: _jpeg(seed=5), sizes=SMALL),
    Case("key-with-cjk", "keys/東京の写真.jpg", lambda: _jpeg(seed=6), sizes=SMALL),
    Case("key-with-rtl", "keys/صورة שלום.jpg", lambda: _jpeg(seed=7), sizes=SMALL),
    Case("key-with-url-characters", "keys/a&b=c;d?e#f@g!.jpg", lambda: _jpeg(seed=8), sizes=SMALL),
    Case("key-1024-bytes-ascii", LONG_ASCII, lambda: _jpeg(seed=9), sizes=SMALL, stem=None),
    Case("key-near-1024-bytes-cjk", LONG_CJK, lambda: _jpeg(seed=10), sizes=SMALL, stem=None),
    Case(
        "key-with-dot-dot-segment",
        "keys/dots/../escaped.jpg",
        lambda: _jpeg(seed=11),
        sizes=SMALL,
        stem="keys/dots/escaped.jpg~8dacda2919bf6b86",  # cleaned, then SHA-256 of uploads/keys/dots/../escaped.jpg
    ),
    Case(
        "key-with-leading-dot-slash",
        "./leading-dot.jpg",
        lambda: _jpeg(seed=12),
        sizes=SMALL,
        stem="leading-dot.jpg~51130e61fc4a9b25",  # cleaned, then SHA-256 of uploads/./leading-dot.jpg
    ),
]


# -- running the corpus ------------------------------------------------------------------------


@dataclass
class Outcome:
    case: Case
    key: str
    body: bytes
    uploaded_at: float = 0.0
    executions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Corpus:
    deployed: Deployed
    s3: Any
    outcomes: dict[str, Outcome]
    execution_count: int
    seconds: float

    def messages_for(self, key: str) -> list[dict[str, Any]]:
        return self.deployed.messages_for(key)

    def keys_under(self, bucket: str, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _input_key(described: dict[str, Any]) -> str | None:
    document = json.loads(described.get("input") or "{}")
    key = document.get("detail", {}).get("object", {}).get("key") or document.get("key")
    return key if isinstance(key, str) else None


def wait_for_executions(
    deployed: Deployed, keys: set[str], deadline: float
) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """Finished executions by the key of their input, once every key has one (or at the deadline)."""
    sfn = deployed.sfn
    key_of: dict[str, str | None] = {}
    finished: dict[str, dict[str, Any]] = {}
    while True:
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=deployed.stack.state_machine_arn):
            for summary in page["executions"]:
                arn = summary["executionArn"]
                if arn not in key_of:
                    key_of[arn] = _input_key(sfn.describe_execution(executionArn=arn))
                if summary["status"] != "RUNNING" and arn not in finished:
                    finished[arn] = dict(sfn.describe_execution(executionArn=arn))
        by_key: dict[str, list[dict[str, Any]]] = {}
        for arn, described in finished.items():
            by_key.setdefault(key_of[arn] or "", []).append(described)
        running = [arn for arn in key_of if arn not in finished]
        if (keys <= set(by_key) and not running) or time.monotonic() > deadline:
            return by_key, len(key_of)
        time.sleep(0.5)


@pytest.fixture(scope="module")
def corpus(deployed: Deployed) -> Corpus:
    prefix = deployed.stack.upload_prefix
    outcomes = {case.id: Outcome(case, prefix + case.name, case.make()) for case in CASES}
    assert len({o.key for o in outcomes.values()}) == len(outcomes), "every case has its own key"
    s3 = deployed.s3
    started = time.monotonic()

    def upload(outcome: Outcome) -> None:
        s3.put_object(Bucket=deployed.stack.source_bucket, Key=outcome.key, Body=outcome.body)
        outcome.uploaded_at = time.monotonic()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(upload, outcomes.values()))
    deadline = max(o.uploaded_at for o in outcomes.values()) + CASE_TIMEOUT_S
    by_key, count = wait_for_executions(deployed, {o.key for o in outcomes.values()}, deadline)
    for outcome in outcomes.values():
        outcome.executions = by_key.get(outcome.key, [])
    return Corpus(deployed, s3, outcomes, count, time.monotonic() - started)


def _params() -> list[Any]:
    return [
        pytest.param(case, id=case.id, marks=[pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else [])
        for case in CASES
    ]


def test_the_corpus_has_at_least_thirty_kinds() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.error for c in CASES} >= {
        None,
        "EmptyObject",
        "UnsupportedFormat",
        "CorruptImage",
        "TooManyPixels",
        "ObjectTooLarge",
    }


@pytest.mark.parametrize("case", _params())
def test_each_case_ends_as_declared(corpus: Corpus, case: Case) -> None:
    outcome = corpus.outcomes[case.id]
    deployed, key = corpus.deployed, outcome.key
    stack = deployed.stack
    assert outcome.executions, f"no finished execution for {key!r} within {CASE_TIMEOUT_S} s of its upload"
    assert len(outcome.executions) == 1, "one upload, one execution"
    [execution] = outcome.executions

    source = corpus.s3.get_object(Bucket=stack.source_bucket, Key=key)
    assert source["Body"].read() == outcome.body, "the source object is untouched"
    etag = source["ETag"].strip('"')
    version = source["VersionId"]
    # Each execution stages under a digest of the source revision (its VersionId) and the execution.
    digest = source_digest(stack.source_bucket, key, version + "\0" + execution["executionArn"])
    assert corpus.keys_under(stack.staging_bucket, f"staging/{digest}/") == [], "nothing left in staging"

    messages = corpus.messages_for(key)
    assert len(messages) == 1, f"exactly one message, got {len(messages)}"
    [message] = messages
    assert message["Message"]["execution"] == execution["executionArn"]

    if case.error is not None:
        _assert_failed(corpus, case, key, execution, message)
    else:
        _assert_succeeded(corpus, case, outcome, etag, version, execution, message)


def _assert_failed(corpus: Corpus, case: Case, key: str, execution: dict[str, Any], message: dict[str, Any]) -> None:
    assert execution["status"] == "FAILED", f"expected {case.error}, got {execution['status']}"
    assert execution.get("error") == case.error, execution.get("cause")
    assert execution.get("cause")
    assert message["MessageAttributes"]["status"]["Value"] == "FAILED"
    assert message["MessageAttributes"]["error"]["Value"] == case.error
    assert message["Message"]["status"] == "FAILED"
    assert message["Message"]["error"] == case.error
    assert message["Message"]["source"]["key"] == key
    assert message["Message"]["step"] == case.failed_in.lower()
    assert "upload" not in message["Message"]
    assert "cause" not in message["Message"]
    stem = case.expected_stem
    assert stem is not None
    assert corpus.keys_under(corpus.deployed.stack.destination_bucket, stem + "/") == [], "no outputs"
    history: list[dict[str, Any]] = []
    for page in corpus.deployed.sfn.get_paginator("get_execution_history").paginate(
        executionArn=execution["executionArn"]
    ):
        history.extend(page["events"])
    steps = state_path(history)
    path = [step["state"] for step in steps]
    assert path[-4:] == ["Cleanup", "Failed or Superseded", "Publish Failure", "Failed"]
    assert path.count("Validate") == 1
    if case.failed_in == "Validate":
        # Validate finds the error and returns it (REJECTED); Route sends it to Cleanup.
        assert path == ["Validate", "Route", "Cleanup", "Failed or Superseded", "Publish Failure", "Failed"]
    else:
        assert path[-5] == case.failed_in
    [failed] = [step for step in steps if step["state"] == case.failed_in]
    assert failed["attempts"] == 1, "validation errors are never retried"


def _assert_succeeded(
    corpus: Corpus,
    case: Case,
    outcome: Outcome,
    etag: str,
    version: str,
    execution: dict[str, Any],
    message: dict[str, Any],
) -> None:
    stack, key = corpus.deployed.stack, outcome.key
    assert execution["status"] == "SUCCEEDED", f"{execution.get('error')}: {execution.get('cause')}"
    body = message["Message"]
    assert message["MessageAttributes"]["status"]["Value"] == "SUCCEEDED"
    assert body["status"] == "SUCCEEDED"
    assert body["source"]["key"] == key
    assert body["source"]["etag"] == etag
    assert body["source"]["revision"] == version

    manifest_name = body["manifest"]["key"]
    assert manifest_name.endswith("/manifest.json")
    stem = manifest_name.removesuffix("/manifest.json")
    if case.expected_stem is not None:
        assert stem == case.expected_stem
    else:  # a key too long to keep: shortened, unique, within S3's limit once suffixed
        assert len(stem.encode()) <= MAX_STEM_BYTES
        name = case.name
        head, digest = stem.rsplit("~", 1)
        assert re.fullmatch(r"[0-9a-f]{16}", digest)
        assert name.startswith(head)
        assert len(head) > len(name) // 2
    assert manifest_name == manifest_key(stem)
    rendition_keys = [rendition_key(stem, version, w, "jpg") for w, _ in case.sizes]
    expected = sorted([*rendition_keys, manifest_name])
    assert corpus.keys_under(stack.destination_bucket, stem + "/") == expected
    assert all(len(k.encode()) <= 1024 for k in expected)

    manifest = json.loads(corpus.s3.get_object(Bucket=stack.destination_bucket, Key=manifest_name)["Body"].read())
    assert manifest["source"]["key"] == key
    assert manifest["source"]["etag"] == etag
    assert manifest["source"]["revision"] == manifest["source"]["version_id"] == version
    assert [r["key"] for r in manifest["renditions"]] == rendition_keys
    assert [r["key"] for r in body["renditions"]] == rendition_keys
    assert [(r["width"], r["height"]) for r in manifest["renditions"]] == list(case.sizes)
    assert [(r["width"], r["height"]) for r in body["renditions"]] == list(case.sizes)

    for (width, height), rendition in zip(case.sizes, rendition_keys, strict=True):
        got = corpus.s3.get_object(Bucket=stack.destination_bucket, Key=rendition)
        assert got["ContentType"] == "image/jpeg"
        with Image.open(io.BytesIO(got["Body"].read())) as img:
            assert img.format == "JPEG"
            assert img.size == (width, height)
            assert img.mode == case.mode
            if case.check is not None and (width, height) == case.sizes[0]:
                img.load()
                case.check(img, outcome.body)


def test_the_corpus_is_what_it_claims() -> None:
    """The hand-made bodies are what their cases say (checked without the cloud)."""
    by_id = {case.id: case for case in CASES}
    with images.reopen(by_id["ycck-jpeg"].make()) as ycck:
        assert ycck.mode == "CMYK"
        assert ycck.info["adobe_transform"] == 2, "YCCK, not plain CMYK"
        upright(ycck.convert("RGB"), b"")
    with images.reopen(by_id["cmyk-jpeg"].make()) as cmyk:
        assert cmyk.mode == "CMYK"
        assert cmyk.info["adobe_transform"] == 0
    bomb = by_id["png-bomb-100000x100000"].make()
    assert len(bomb) < 4096
    assert struct.unpack(">II", bomb[16:24]) == (100_000, 100_000)
    assert len(by_id["over-the-byte-limit"].make()) == MAX_UPLOAD_BYTES + 1
    assert len(LONG_ASCII.encode()) == 1024 - len("uploads/")
    assert len(("uploads/" + LONG_CJK).encode()) > MAX_STEM_BYTES
    for orientation in range(1, 9):
        with images.reopen(by_id[f"exif-orientation-{orientation}"].make()) as img:
            assert img.getexif()[274] == orientation
    for case_id, mode in (
        ("png-16-bit", ("I;16", "I")),
        ("palette-png-with-transparency", ("P",)),
        ("one-bit-png", ("1",)),
    ):
        with images.reopen(by_id[case_id].make()) as img:
            assert img.mode in mode


def test_every_upload_ran_exactly_once(corpus: Corpus) -> None:
    assert corpus.execution_count == len(CASES)
    assert corpus.keys_under(corpus.deployed.stack.staging_bucket, "") == [], "staging is empty"
    stats = corpus.deployed.cloud.stats
    assert stats.delivery_failures == []


def test_the_local_cloud_survives_the_corpus(corpus: Corpus) -> None:
    """A worker never crashes the local cloud: a fresh valid upload still goes through."""
    deployed = corpus.deployed
    key = deployed.stack.upload_prefix + "after the corpus/photo.jpg"
    body = _jpeg((900, 600), seed=42)
    deployed.upload(key, body)
    by_key, _ = wait_for_executions(deployed, {key}, time.monotonic() + CASE_TIMEOUT_S)
    [execution] = by_key[key]
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    [message] = deployed.messages_for(key)
    assert message["Message"]["status"] == "SUCCEEDED"
    assert [(r["width"], r["height"]) for r in message["Message"]["renditions"]] == [(900, 600), (320, 213)]
    sqs = deployed.cloud.client("sqs")
    depth = sqs.get_queue_attributes(
        QueueUrl=deployed.stack.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    assert depth == "0", "no event was dead-lettered"


def test_distinct_source_keys_never_share_outputs(corpus: Corpus) -> None:
    deployed = corpus.deployed
    prefix, bucket = deployed.stack.upload_prefix, deployed.stack.destination_bucket
    first, second = prefix + "twins/a.jpg", prefix + "twins/./a.jpg"
    deployed.upload(first, _jpeg((2400, 1600), seed=20))
    by_key, _ = wait_for_executions(deployed, {first}, time.monotonic() + CASE_TIMEOUT_S)
    assert by_key[first][0]["status"] == "SUCCEEDED"
    deployed.upload(second, _jpeg((200, 150), seed=21))
    by_key, _ = wait_for_executions(deployed, {first, second}, time.monotonic() + CASE_TIMEOUT_S)
    assert by_key[second][0]["status"] == "SUCCEEDED"
    manifests = {
        json.loads(corpus.s3.get_object(Bucket=bucket, Key=m["Message"]["manifest"]["key"])["Body"].read())["source"][
            "key"
        ]
        for k in (first, second)
        for m in deployed.messages_for(k)
    }
    assert manifests == {first, second}, "each source keeps a manifest of its own"
