"""Pixel decoders faster than Pillow's for the formats most uploads come in: JPEG, PNG and WebP.

Pillow stays the reference. Each decoder here takes only the images it decodes to the samples
Pillow would give (JPEG: at a DCT scale Pillow offers only in part), and returns None for anything
else: other modes and bit depths, animations, or data its library rejects. Pillow then decodes,
and its verdict on the data stands. Each library is imported on the first image that needs it,
never at a cold start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Pixels = npt.NDArray[np.uint8]

#: Modes Pillow gives 8-bit PNGs; libspng decodes them to the same samples.
PNG_MODES: Final = frozenset({"L", "LA", "RGB", "RGBA"})
_CHANNELS: Final = {"L": 1, "LA": 2, "RGB": 4, "RGBA": 4}


def jpeg_scaled(data: bytes, grey: bool, min_width: int, min_height: int) -> Pixels | None:
    """Decode a YCbCr or greyscale JPEG with libjpeg-turbo's DCT scaling.

    The result is the smallest scale (an M/8 of the stored size) that is still at least
    ``min_width`` x ``min_height``; ``imaging.decode`` asks for 1/2, 1/4 or 1/8, the scales with
    SIMD paths (a 12 MP JPEG takes longer at 6/8 than whole). One byte a pixel (``grey``) or four
    (RGBX, the layout Pillow keeps RGB in). None for data libjpeg-turbo rejects in strict mode.
    """
    import simplejpeg

    try:
        pixels: Pixels = simplejpeg.decode_jpeg(
            data, colorspace="GRAY" if grey else "RGBX", min_width=min_width, min_height=min_height
        )
    except ValueError:
        return None
    return pixels


def png(data: bytes, mode: str) -> Pixels | None:
    """Decode an 8-bit PNG (``mode`` one of ``PNG_MODES``) with libspng, in about half Pillow's time.

    libspng checks what Pillow checks (the zlib stream and its checksum); it ignores chunk CRCs, as
    Pillow does for the image data. Grey and grey-alpha come in the PNG's own layout; RGB and RGBA
    in four bytes a pixel (RGB with an opaque fourth byte). None for data it rejects, or samples
    that are not in ``mode``'s layout.
    """
    import numpy as np
    import pyspng

    try:
        pixels: Pixels = pyspng.load(data, format="RGBA" if mode in ("RGB", "RGBA") else None)
    except (RuntimeError, ValueError):
        return None
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if pixels.dtype != np.uint8 or channels != _CHANNELS[mode]:
        return None
    return pixels


def webp(data: bytes) -> Pixels | None:
    """Decode a still WebP whole with libwebp's one-shot decoder, to four bytes a pixel (RGBA; an
    opaque image gets an opaque fourth byte).

    Pillow decodes every WebP through libwebp's animation decoder, which holds the frame three
    times over (the canvas, a copy and the converted image); this holds it once, in about half the
    time. None for data libwebp rejects.
    """
    import webp as libwebp

    try:
        return libwebp.WebPData.from_buffer(data).decode(libwebp.WebPColorMode.RGBA)
    except libwebp.WebPError:
        return None
