"""Decoding: one decode per source (Pillow, pillow-heif and the decoders of ``codecs``), oriented and in
one of a few colour modes; and the lossless intermediate between the resize and watermark steps.
``renditions`` makes the renditions (libvips)."""

from __future__ import annotations

import io
import math
import re
import struct
import warnings
import zlib
from collections.abc import Sequence
from functools import cache
from typing import Final

from PIL import ExifTags, Image, ImageCms, ImageFile, TiffImagePlugin

from pipeline import codecs, formats, heif
from pipeline.errors import CorruptImage, TooManyPixels

#: Orientations (EXIF tag 274) that swap width and height when applied.
TRANSPOSED = frozenset({5, 6, 7, 8})
#: How much larger than the largest rendition a JPEG is decoded, at the least. A DCT-scaled decode is
#: softer than a Lanczos resize by the same factor: a 17.9 MP photograph decoded at 1/2 (1.38x its
#: 2048 px rendition) gave that rendition 43 dB (PSNR) against a float Lanczos resize of the full
#: decode, where the full decode gave 56 dB; at 1.45x and more the resize from the decode does most
#: of the reduction.
DCT_MARGIN: Final = 1.45
#: The largest DCT-domain reduction of a JPEG decode (1/8, libjpeg's smallest scale).
MAX_DCT_SHRINK: Final = 8
#: Modes every rendition is normalised to.
_RENDITION_MODES = frozenset({"L", "LA", "RGB", "RGBA"})
#: Modes a decode may also come in: RGBX is opaque colour in the four bytes a pixel Pillow keeps RGB
#: in, so a decoder's buffer becomes an image without a copy; renditions made from it are RGB.
_WORKING_MODES = _RENDITION_MODES | {"RGBX"}


def plan_widths(source_width: int, widths: Sequence[int]) -> list[int]:
    """Widths to produce for a source, largest first, never upscaling.

    A requested width at or above the source width is served by the source width itself.
    """
    planned = {w for w in widths if w < source_width}
    if any(w >= source_width for w in widths):
        planned.add(source_width)
    return sorted(planned, reverse=True)


def scaled_height(width: int, height: int, new_width: int) -> int:
    return max(1, round(height * new_width / width))


#: The most scans a JPEG may have. Each scan of a progressive JPEG is another pass over the image's
#: coefficients, so a small file of empty scans (a 3.9 MB greyscale 7000x7000 JPEG with 40,000 of them)
#: holds a decoder for minutes. libjpeg-turbo leaves the limit to the application (TurboJPEG's
#: TJPARAM_SCANLIMIT, off by default, "to guard against an exploit of the progressive JPEG format");
#: its own fuzzers and tjbench's -limitscans use 500. Encoders write far fewer: libjpeg's standard
#: progression has 10 scans for colour and 6 for grey, a baseline JPEG one per component at most
#: (4). 100 leaves ten times the scans of any of them, and bounds a decode at the pixel limit to
#: 100 passes (a few seconds) where 500 would allow half a minute.
MAX_JPEG_SCANS: Final = 100
#: The largest ICC profile carried into the renditions. Display and camera RGB profiles are matrix
#: and curve profiles of a few hundred bytes to a few KB (sRGB IEC61966-2.1: 3,144 bytes; Adobe RGB
#: (1998): 560), and even LUT-based RGB profiles stay well below 1 MiB. The profile is copied into
#: every output (a 320 px JPEG is about 20 KB), so a larger one is not worth carrying, and is
#: replaced like an invalid one.
MAX_ICC_BYTES: Final = 1024 * 1024
#: What Pillow and the decoders of ``codecs`` raise on data they cannot decode. Pillow's plugins raise
#: more than OSError: struct and zlib errors, IndexError and TypeError from fields that lie, EOFError.
DECODE_ERRORS: Final = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    KeyError,
    TypeError,
    ArithmeticError,
    RuntimeError,
    ImageCms.PyCMSError,
)
#: The colour space (ICC header) that describes each working mode.
_PROFILE_SPACE: Final = {"L": "GRAY", "LA": "GRAY", "RGB": "RGB ", "RGBA": "RGB ", "RGBX": "RGB "}
#: ICC classes that describe a device's (or a colour space's) colours, as an embedded profile must.
_DEVICE_CLASSES: Final = frozenset({"scnr", "mntr", "prtr", "spac"})


@cache
def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@cache
def srgb_cms_profile() -> ImageCms.ImageCmsProfile:
    """``srgb_profile()`` as LittleCMS reads it, for transforms."""
    return ImageCms.ImageCmsProfile(io.BytesIO(srgb_profile()))


def reason(exc: BaseException) -> str:
    """An exception as one line for an error message: its first line, or its type when it has no text."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Open (lazily) with the pixel limit enforced, with the reader of the format sniffed from the bytes.

    The limit is ``max_pixels`` (checked below, before any pixel is decoded; for a HEIF, on its coded size
    too), as in ``inspection.inspect``: Pillow's own warning threshold is ignored so that an image the
    validate step accepted is not rejected here. A HEIF's reader (pillow-heif) is registered on the first
    one. The ICC profile a BMP embeds, which Pillow does not read, is put in ``info`` as other readers do.
    """
    fmt = formats.sniff(data)
    if fmt is None:
        raise CorruptImage(f"the content is {formats.describe_other(data)}, not an image the pipeline reads")
    if fmt == "HEIF":
        heif.check_coded_size(data, max_pixels)
        heif.register()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=[fmt])
        except Image.DecompressionBombError as exc:
            raise TooManyPixels(str(exc)) from exc
        except DECODE_ERRORS as exc:
            raise CorruptImage(f"the {fmt} header cannot be read: {reason(exc)}") from exc
    if img.width * img.height > max_pixels:
        raise TooManyPixels(f"{img.width}x{img.height} exceeds {max_pixels} pixels")
    profile = formats.bmp_profile(data) if fmt == "BMP" else None
    if profile and profile[1] <= len(data):
        img.info["icc_profile"] = data[profile[0] : profile[1]]
    return img


def count_frames(data: bytes, fmt: str) -> int:
    """The true number of frames (pages) of an image, from the whole object; ``fmt`` as sniffed.

    Multi-page and animated images (GIF, APNG, WebP, TIFF, AVIF sequences, HEIFs of several images) are
    processed from their first frame (a HEIF's primary image) only; this is how many there are. It reads
    the container only (no pixel is decoded): GIF image descriptors, the IFD chain of a TIFF, an APNG's
    frame controls, a WebP's ANMF chunks, the samples of an AVIF sequence's image track, a HEIF's
    top-level images. A JPEG is one frame, whatever an MPO carries after it, and so is a BMP. Never
    raises; at least 1; damaged data gives the frames found before the damage.
    """
    return formats.frame_count(data, fmt)


def check_jpeg_scans(data: bytes) -> None:
    """Refuse a JPEG with more than MAX_JPEG_SCANS scans, from its marker structure, before any decode.

    ``data`` may be a head of the object only: its scans are then a lower bound, still enough to refuse.
    """
    scans = formats.jpeg_scan_count(data, stop_after=MAX_JPEG_SCANS)
    if scans > MAX_JPEG_SCANS:
        raise CorruptImage(f"the JPEG has more than {MAX_JPEG_SCANS} scans (a decoder would pass over it each time)")


_XMP_ORIENTATION: Final = re.compile(rb'tiff:Orientation(?:="|>)([1-8])')


def header_exif(img: Image.Image) -> Image.Exif:
    """The EXIF of an opened image as far as its header gives it, without decoding a pixel.

    The block Pillow leaves in ``img.info["exif"]`` for JPEG, WebP, AVIF and a PNG's eXIf chunk before
    the pixel data (or a PNG's raw EXIF text before it); a TIFF's own tags. An orientation in XMP counts
    where EXIF has none, as with ``Image.getexif()``, which is not called for PNG: it loads the whole
    image to look for an eXIf chunk after the pixels. Metadata after a PNG's pixels is therefore not
    read, here and in ``decode`` alike. A broken block gives an empty (or partial) EXIF, never an error:
    metadata does not make an image unreadable.
    """
    exif = Image.Exif()
    try:
        if isinstance(img, TiffImagePlugin.TiffImageFile):
            exif = img.getexif()  # the IFD tags read with the header
        else:
            raw = img.info.get("exif")
            text = img.info.get("Raw profile type exif")
            if raw is None and isinstance(text, str):
                raw = bytes.fromhex("".join(text.split("\n")[3:]))
            if isinstance(raw, bytes):
                exif.load(raw)
        if ExifTags.Base.Orientation not in exif:
            xmp = img.info.get("XML:com.adobe.xmp") or img.info.get("xmp")
            found = _XMP_ORIENTATION.search(xmp.encode() if isinstance(xmp, str) else xmp or b"")
            if found:
                exif[ExifTags.Base.Orientation] = int(found[1])
    except Exception:  # noqa: BLE001 - a broken EXIF block means no EXIF, not a broken image
        return Image.Exif()
    return exif


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation (1-8) from the header (``header_exif``); 1 where there is none or it is invalid."""
    try:
        value = header_exif(img).get(ExifTags.Base.Orientation, 1)
    except Exception:  # noqa: BLE001 - see header_exif
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def usable_icc(icc: bytes | None, mode: str) -> bytes | None:
    """The ICC profile to carry into renditions of an image in ``mode`` (L, LA, RGB, RGBA or RGBX).

    A profile is kept byte for byte when it is at most MAX_ICC_BYTES, LittleCMS reads it, it is a
    device or colour-space profile (not a device link or an abstract profile) of the colour space of
    ``mode`` (GRAY for L and LA, RGB otherwise), and a transform to sRGB can be built from it. Any
    other is replaced, so that no arbitrary bytes reach an output: by sRGB for a colour image (what
    viewers assume for an image whose profile they cannot use), by none for a grey one (an untagged
    grey image is shown in sRGB's tones). None (untagged) stays None; an image in any other mode gets
    no profile.
    """
    space = _PROFILE_SPACE.get(mode)
    if not icc or space is None:
        return None
    replacement = srgb_profile() if space == "RGB " else None
    if len(icc) > MAX_ICC_BYTES:
        return replacement
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        header = profile.profile
        if header.xcolor_space != space or header.device_class not in _DEVICE_CLASSES:
            return replacement
        ImageCms.buildTransform(profile, srgb_cms_profile(), "L" if space == "GRAY" else "RGB", "RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return replacement
    return icc


def decode(img: Image.Image, target_width: int, data: bytes) -> tuple[Image.Image, bytes | None]:
    """Decode the first frame once: a JPEG at the smallest DCT scale that still covers ``target_width``
    with ``DCT_MARGIN`` to spare, any other image whole.

    ``img`` is ``open_image(data, ...)``. The faster decoders of ``codecs`` decode where they apply,
    Pillow everywhere else. Applies the EXIF orientation (``header_exif``'s, which validate reported),
    normalises the colour mode and returns the image with the ICC profile for its renditions
    (``usable_icc``; None for untagged images). A JPEG with more than MAX_JPEG_SCANS scans is refused
    before any decode. Whatever a decoder raises on bad data becomes CorruptImage, raised from it.
    """
    fmt = img.format
    if fmt in ("JPEG", "MPO"):
        check_jpeg_scans(data)
    orientation = exif_orientation(img)
    icc = img.info.get("icc_profile") or None
    try:
        decoded, orientation = _decode_pixels(img, data, target_width, orientation)
        out, icc = _normalise_mode(decoded, icc)
        out = _apply_orientation(out, orientation)
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(str(exc)) from exc
    except DECODE_ERRORS as exc:
        raise CorruptImage(f"the {fmt} data cannot be decoded: {reason(exc)}") from exc
    return out, usable_icc(icc, out.mode)


def dct_shrink(stored: tuple[int, int], target_width: int, orientation: int) -> int:
    """The reduction a JPEG of ``stored`` size (as stored, not yet oriented) is decoded at for a largest
    rendition ``target_width`` wide once upright: the largest power of two up to MAX_DCT_SHRINK that
    still leaves DCT_MARGIN to spare (libjpeg-turbo's SIMD paths are the power-of-two ones)."""
    stored_w, stored_h = stored
    want = target_width if orientation not in TRANSPOSED else scaled_height(stored_h, stored_w, target_width)
    shrink = 1
    while shrink < MAX_DCT_SHRINK and stored_w / (2 * shrink) >= want * DCT_MARGIN:
        shrink *= 2
    return shrink


def _decode_pixels(img: Image.Image, data: bytes, target_width: int, orientation: int) -> tuple[Image.Image, int]:
    """The first frame's pixels, and the orientation still to apply to them."""
    fmt = img.format
    pixels = None
    if fmt in ("JPEG", "MPO"):  # MPO: a JPEG with more images after it (many phone photos)
        shrink = dct_shrink(img.size, target_width, orientation)
        want_w, want_h = math.ceil(img.width / shrink), math.ceil(img.height / shrink)
        if img.mode in ("RGB", "L"):  # not CMYK/YCCK
            pixels = codecs.jpeg_scaled(data, img.mode == "L", want_w, want_h)
        if pixels is None:
            img.draft(img.mode if img.mode in ("RGB", "L", "CMYK") else None, (want_w, want_h))
    elif fmt == "PNG" and spng_decodes(img, data):
        pixels = codecs.png(data, img.mode)
    elif fmt == "WEBP" and img.mode in ("RGB", "RGBA") and getattr(img, "n_frames", 1) == 1:
        pixels = codecs.webp(data)
    if pixels is not None:
        return _image(pixels, img.mode), orientation
    if fmt == "HEIF":
        # pillow-heif opens a HEIF at its primary image (not always the first), and libheif applies the
        # HEIF's transformations (irot, imir) while decoding: its EXIF orientation is informative only.
        img.load()
        return img, 1
    img.seek(0)
    img.load()
    if fmt == "TIFF":
        # Pillow's TIFF reader applies the orientation itself while loading, and drops the tag.
        orientation = exif_orientation(img)
    return img, orientation


def _image(pixels: codecs.Pixels, mode: str) -> Image.Image:
    """The decoder's buffer as an image: without a copy for one byte a pixel (L) and four (RGBA, and
    RGB as RGBX); LA is unpacked into Pillow's own layout."""
    height, width = pixels.shape[:2]
    raw = "RGBX" if mode == "RGB" else mode
    return Image.frombuffer(raw, (width, height), pixels, "raw", raw, 0, 1)


def spng_decodes(img: Image.Image, data: bytes) -> bool:
    """Whether libspng decodes this PNG to the samples and verdict Pillow would give.

    Not for palette, 1-, 2-, 4- or 16-bit PNGs (the raw mode names the depth: "RGB;16B"), nor
    animated ones; nor where chunks other than IEND follow the pixel data, which Pillow reads (and
    may refuse: an oversized text chunk) only while loading.
    """
    tiles = img.tile if isinstance(img, ImageFile.ImageFile) else []
    tile = tiles[0] if len(tiles) == 1 else None
    return (
        img.mode in codecs.PNG_MODES
        and tile is not None
        and tile.args == img.mode
        and getattr(img, "n_frames", 1) == 1
        and _png_chunks_after_pixels(data) <= {b"IEND"}
    )


def _png_chunks_after_pixels(data: bytes) -> set[bytes]:
    """The chunk types after the last IDAT chunk of a PNG (walking the chunk headers)."""
    after: set[bytes] = set()
    at = 8  # the signature
    while at + 8 <= len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        if kind == b"IDAT":
            after.clear()
        else:
            after.add(kind)
        if kind == b"IEND":
            break
        at += 12 + length
    return after


_ORIENTATION_OPS: dict[int, tuple[Image.Transpose, ...]] = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


def _apply_orientation(img: Image.Image, orientation: int) -> Image.Image:
    for op in _ORIENTATION_OPS.get(orientation, ()):
        img = img.transpose(op)
    return img


def _normalise_mode(img: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """Bring any decoded mode to L, LA, RGB or RGBA (RGBX as it is), keeping colours and transparency."""
    mode = img.mode
    if mode in _WORKING_MODES:
        return img, icc
    if mode == "CMYK":
        if icc:
            try:
                src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
                dst = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
                converted = ImageCms.profileToProfile(img, src, dst, outputMode="RGB")
                if converted is not None:
                    return converted, srgb_profile()
            except (ImageCms.PyCMSError, OSError):  # OSError: bytes that are not a profile at all
                pass
        # Untagged CMYK (or an unusable profile): the naive transform, no profile.
        return img.convert("RGB"), None
    if mode in {"P", "PA"}:
        has_alpha = mode == "PA" or "transparency" in img.info
        return img.convert("RGBA" if has_alpha else "RGB"), icc
    if mode in ("1",):
        return img.convert("L"), None
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit grayscale: scale to 8 bits (convert() alone would clip, not scale).
        return img.convert("I").point(lambda v: v * (1 / 257)).convert("L"), icc
    if mode == "F":
        return img.convert("L"), icc
    if mode in ("La", "RGBa"):
        return img.convert(mode.upper()), icc
    if mode in ("YCbCr", "LAB", "HSV"):
        return img.convert("RGB"), None
    raise CorruptImage(f"unsupported colour mode {mode}")


def to_lossless(img: Image.Image, icc: bytes | None) -> bytes:
    """Serialise an intermediate rendition: uncompressed TIFF, ICC kept, no EXIF.

    Uncompressed: the intermediate lives in the staging bucket for one execution, and deflate
    (PNG, even at level 1) costs more CPU than the resize that made the rendition; raw rows are
    written and read at memory speed.
    """
    buf = io.BytesIO()
    params: dict[str, object] = {"compression": "raw"}
    if icc:
        params["icc_profile"] = icc
    img.save(buf, format="TIFF", **params)
    return buf.getvalue()


def from_lossless(data: bytes) -> tuple[Image.Image, bytes | None]:
    img = Image.open(io.BytesIO(data), formats=["TIFF"])
    img.load()
    return img, img.info.get("icc_profile") or None
