"""Renditions by libvips: Lanczos-3 resizes chained from the largest, premultiplied alpha, and the
common sources decoded by libvips itself, streaming from the compressed bytes.

A colour or grey JPEG or an 8-bit PNG (most uploads) never becomes a whole image in memory: libvips
decodes it (a JPEG at the power-of-two DCT reduction ``imaging.decode`` would choose) and resizes it
to the largest rendition as its rows arrive (a 12 MP JPEG: about half the memory of a whole decode).
Every other image is decoded by ``imaging.decode`` (Pillow, pillow-heif and the decoders of
``codecs``, which normalise the colour modes libvips would not) and handed to libvips.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from PIL import Image

from pipeline import imaging


@dataclass(frozen=True, slots=True)
class Rendition:
    width: int
    height: int
    image: Image.Image


#: Bands of each rendition mode.
_BANDS: Final = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
#: The EXIF orientations (2-8) as libvips operations, applied to the stored image.
_ORIENT: Final[dict[int, Callable[[Any], Any]]] = {
    2: lambda image: image.fliphor(),
    3: lambda image: image.rot180(),
    4: lambda image: image.flipver(),
    5: lambda image: image.rot90().fliphor(),
    6: lambda image: image.rot90(),
    7: lambda image: image.rot270().fliphor(),
    8: lambda image: image.rot270(),
}


@cache
def vips() -> Any:
    """pyvips, loaded once. Its operation cache is off: a warm worker keeps no image of an earlier invocation."""
    import pyvips

    pyvips.cache_set_max(0)
    return pyvips


def of(data: bytes, max_pixels: int, widths: Sequence[int]) -> tuple[Iterator[Rendition], bytes | None]:
    """``from_source`` on an upload's bytes, its widths planned on its upright width (``imaging.plan_widths``)."""
    with imaging.open_image(data, max_pixels) as img:
        upright = img.height if imaging.exif_orientation(img) in imaging.TRANSPOSED else img.width
        return from_source(img, data, imaging.plan_widths(upright, widths))


def from_source(img: Image.Image, data: bytes, widths: Sequence[int]) -> tuple[Iterator[Rendition], bytes | None]:
    """The renditions of an opened source (``imaging.open_image(data, ...)``) for ``widths`` (from
    ``imaging.plan_widths`` on its upright width), largest first, and the ICC profile they carry.

    The source is decoded once, as ``imaging.decode`` decodes it (orientation applied, colours
    normalised): by libvips itself for a colour or grey JPEG and an 8-bit PNG, else by ``imaging.decode``.
    """
    load = _loader(img, data, widths)
    if load is not None:
        made = _streamed(load, img.mode, imaging.exif_orientation(img), widths)
        if made is not None:
            return made, imaging.usable_icc(img.info.get("icc_profile") or None, img.mode)
    decoded, icc = imaging.decode(img, widths[0], data)
    return chain(decoded, widths), icc


def _loader(img: Image.Image, data: bytes, widths: Sequence[int]) -> Callable[[], Any] | None:
    """How libvips loads this source itself, reading it sequentially; None where ``imaging.decode`` decodes it.

    The JPEGs and PNGs ``imaging.decode`` hands to the decoders of ``codecs`` (libjpeg-turbo, and libpng
    where ``codecs`` has libspng: the same samples), a JPEG at the DCT reduction ``imaging.decode``
    chooses. libvips fails on the decoders' errors (``fail_on="error"``; a corrupt zlib stream in a PNG,
    which it would otherwise fill in), and ``imaging.decode`` then gives its verdict; libjpeg's warnings
    (corrupt data it decodes past, as Pillow does) pass. Not WebP: libwebp decodes a whole image before libvips sees a
    row, and a 12 MP WebP took a third longer through libvips than through ``codecs.webp``.
    """
    fmt, mode = img.format, img.mode
    if fmt in ("JPEG", "MPO") and mode in ("RGB", "L"):
        imaging.check_jpeg_scans(data)
        shrink = imaging.dct_shrink(img.size, widths[0], imaging.exif_orientation(img))
        return lambda: vips().Image.jpegload_buffer(data, shrink=shrink, access="sequential", fail_on="error")
    if fmt == "PNG" and "transparency" not in img.info and imaging.spng_decodes(img, data):
        return lambda: vips().Image.pngload_buffer(data, access="sequential", fail_on="error")
    return None


def _streamed(
    load: Callable[[], Any], mode: str, orientation: int, widths: Sequence[int]
) -> Iterator[Rendition] | None:
    """The renditions of a source libvips loads, the largest made already (the whole decode happens while
    it is made); None where libvips refuses the data or reads it otherwise than Pillow (other bands), which
    ``imaging.decode`` then decodes, its verdict standing (libvips fails on some of what libjpeg only warns
    about, such as a bogus progression)."""
    # Sequential: the rows are resized as they are decoded. The renditions are made in the stored
    # orientation and each is turned upright once made, so no whole decode is ever held.
    try:
        image = load()
        if image.bands != _BANDS[mode] or image.format != "uchar":
            return None
        made = _chained(image, mode, widths, orientation)
        largest = next(made)
    except vips().Error:
        return None
    return itertools.chain([largest], made)


def chain(img: Image.Image, widths: Sequence[int]) -> Iterator[Rendition]:
    """Yield renditions of a decoded image for ``widths`` (largest first), each resized from the previous one.

    The caller passes widths from ``plan_widths``; a width equal to the image's yields the image
    itself. A caller that drops its own reference to ``img`` lets it go once libvips holds its
    samples. With alpha, the chain stays premultiplied (in float) from the first resize on, and each
    rendition is yielded with straight alpha: a resize needs premultiplied samples, and converting
    back and forth would round dark, translucent colours at every step.
    """
    mode = rendition_mode(img.mode)
    if widths and widths[0] == img.width:
        img = img if img.mode == mode else img.convert(mode)  # one copy is held (RGB for RGBX), not two
        yield Rendition(width=img.width, height=img.height, image=img)
        widths = widths[1:]
    if widths:
        image = to_vips(img)
        del img  # from here on the chain holds only libvips' images
        yield from _chained(image, mode, widths)


def _chained(image: Any, mode: str, widths: Sequence[int], orientation: int = 1) -> Iterator[Rendition]:
    """``image`` (libvips, 8-bit, stored with EXIF ``orientation``) resized to each (upright) width in turn,
    each from the previous one; each rendition is turned upright on its own."""
    transposed = orientation in imaging.TRANSPOSED
    upright = (image.height, image.width) if transposed else (image.width, image.height)
    upright_up = _ORIENT.get(orientation, lambda same: same)
    current = _premultiplied(image, mode)
    for width in widths:
        height = imaging.scaled_height(*upright, width)
        size = (height, width) if transposed else (width, height)
        if size != (current.width, current.height):
            current = _resized(current, *size)
        current = current.copy_memory()
        yield Rendition(width=width, height=height, image=from_vips(_straight(upright_up(current), mode), mode))


def rendition_mode(mode: str) -> str:
    """The mode of renditions made from an image of ``mode`` (a working mode of ``imaging.decode``)."""
    return "RGB" if mode == "RGBX" else mode


def resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """One libvips Lanczos-3 resize to ``size``, premultiplied where there is alpha; in the rendition mode."""
    mode = rendition_mode(img.mode)
    resized = _resized(_premultiplied(to_vips(img), mode), *size)
    return from_vips(_straight(resized, mode), mode)


def to_vips(img: Image.Image) -> Any:
    """An image (L, LA, RGB, RGBA or RGBX) as a libvips image of its rendition mode's bands, 8 bits.

    The samples are packed in the rendition mode's layout (RGBX as RGB: Pillow packs it in one pass,
    where libvips would take a band out of every pixel)."""
    mode = rendition_mode(img.mode)
    packed = img.tobytes("raw", mode)
    return vips().Image.new_from_memory(packed, img.width, img.height, _BANDS[mode], "uchar")


def from_vips(image: Any, mode: str) -> Image.Image:
    """A libvips image of 8-bit samples as a Pillow image in ``mode``."""
    return Image.frombuffer(mode, (image.width, image.height), image.write_to_memory(), "raw", mode, 0, 1)


def _premultiplied(image: Any, mode: str) -> Any:
    return image.premultiply() if mode in ("LA", "RGBA") else image


def _straight(image: Any, mode: str) -> Any:
    if mode in ("LA", "RGBA"):
        image = image.unpremultiply()
    return image.rint().cast("uchar") if image.format != "uchar" else image


def _resized(image: Any, width: int, height: int) -> Any:
    """Lanczos-3 to exactly ``width`` x ``height``."""
    return image.resize(width / image.width, vscale=height / image.height, kernel="lanczos3")
