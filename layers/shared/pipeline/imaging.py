"""Decoding and resizing: one decode per source, renditions chained from the largest."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache

from PIL import Image, ImageCms

from pipeline.errors import CorruptImage, TooManyPixels

#: Orientations (EXIF tag 274) that swap width and height when applied.
_TRANSPOSED = frozenset({5, 6, 7, 8})
#: Modes every rendition is normalised to.
_WORKING_MODES = frozenset({"L", "LA", "RGB", "RGBA"})


@dataclass(frozen=True, slots=True)
class Rendition:
    width: int
    height: int
    image: Image.Image


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


@cache
def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Open (lazily) with the pixel limit enforced.

    The limit is ``max_pixels`` (checked below, before any pixel is decoded), as in
    ``inspection.inspect``: Pillow's own warning threshold is ignored so that an image
    the validate step accepted is not rejected here.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise TooManyPixels(str(exc)) from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise CorruptImage(f"the image cannot be read: {exc}") from None
    if img.width * img.height > max_pixels:
        raise TooManyPixels(f"{img.width}x{img.height} exceeds {max_pixels} pixels")
    return img


def decode(img: Image.Image, target_width: int) -> tuple[Image.Image, bytes | None]:
    """Decode the first frame once, at the smallest JPEG scale that still covers ``target_width``.

    Applies the EXIF orientation, normalises the colour mode and returns the image with
    the ICC profile that describes its pixels (None for untagged images).
    """
    orientation = _orientation(img) if img.format in ("JPEG", "MPO") else 1  # PNG's getexif() loads the pixels
    if img.format in ("JPEG", "MPO"):  # MPO: a JPEG with more images after it (many phone photos)
        # draft() picks the largest DCT scale (1/2, 1/4, 1/8) whose result is still at
        # least this big, in the stored (not yet rotated) orientation.
        stored_w, stored_h = img.size
        want_w = target_width if orientation not in _TRANSPOSED else scaled_height(stored_h, stored_w, target_width)
        want_h = scaled_height(stored_w, stored_h, want_w)
        img.draft(img.mode if img.mode in ("RGB", "L", "CMYK") else None, (want_w, want_h))
    icc = img.info.get("icc_profile") or None
    try:
        img.seek(0)
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptImage(f"the {img.format} data cannot be decoded: {exc}") from None
    # Some readers (Pillow's TIFF reader) apply the orientation themselves while loading and
    # drop the tag: read it again so that it is applied exactly once.
    orientation = _orientation(img)
    out, icc = _normalise_mode(img, icc)
    return _apply_orientation(out, orientation), icc


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(274, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block means no orientation, not a broken image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


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
    """Bring any decoded mode to L, LA, RGB or RGBA, keeping colours and transparency."""
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


def renditions(img: Image.Image, widths: Sequence[int]) -> Iterator[Rendition]:
    """Yield renditions for ``widths`` (largest first), each resized from the previous one.

    The caller passes widths from ``plan_widths``; a width equal to the image's yields the
    image itself.
    """
    current = img
    for width in widths:
        height = scaled_height(img.width, img.height, width)
        if width != current.width:
            current = current.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
        yield Rendition(width=width, height=height, image=current)


def to_lossless(img: Image.Image, icc: bytes | None) -> bytes:
    """Serialise an intermediate rendition (PNG, fast compression, ICC kept, no EXIF)."""
    buf = io.BytesIO()
    params: dict[str, object] = {"compress_level": 1}
    if icc:
        params["icc_profile"] = icc
    img.save(buf, format="PNG", **params)
    return buf.getvalue()


def from_lossless(data: bytes) -> tuple[Image.Image, bytes | None]:
    img = Image.open(io.BytesIO(data), formats=["PNG"])
    img.load()
    return img, img.info.get("icc_profile") or None
