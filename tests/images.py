"""Real images for the unit tests, made in memory with Pillow, HEIC with pillow-heif's encoder (libheif and
x265), the BMP variants Pillow does not write field by field (nothing is downloaded or committed).

The content is photo-like (gradients, shapes, fine noise) so that resizing and lossy
coding have something to work on, and deterministic (the noise comes from a seeded
``random.Random``), so that every run sees the same pixels.
"""

from __future__ import annotations

import io
import math
import random
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, ImageChops, ImageCms, ImageDraw, ImageStat

from pipeline import encoding, heif, imaging, inspection, renditions, watermark
from pipeline.models import ImageInfo
from pipeline.settings import EncodeSettings, Limits, WatermarkSettings

SAMPLES = Path(__file__).parent.parent / "samples"

RED = (220, 30, 30)
BLUE = (30, 30, 220)
GREY = (128, 128, 128)

# -- pixels ------------------------------------------------------------------------------------


def photo(size: tuple[int, int] = (160, 120), seed: int = 0, noise: int = 24) -> Image.Image:
    """An RGB image that looks enough like a photo: smooth gradients, hard edges, grain."""
    width, height = size
    rnd = random.Random(seed)
    across = Image.linear_gradient("L").rotate(90).resize(size)
    down = Image.linear_gradient("L").resize(size)
    radial = Image.radial_gradient("L").resize(size)
    img = Image.merge("RGB", (across, down, radial))
    draw = ImageDraw.Draw(img)
    edge = max(1, width // 200)
    for i in range(12):
        x0, y0 = rnd.randrange(width), rnd.randrange(height)
        x1 = x0 + rnd.randrange(max(2, width // 8), max(3, width // 2))
        y1 = y0 + rnd.randrange(max(2, height // 8), max(3, height // 2))
        fill = (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))
        shape = draw.ellipse if i % 2 else draw.rectangle
        shape((x0, y0, x1, y1), fill=fill, outline=(0, 0, 0), width=edge)
    for _ in range(6):
        points = (rnd.randrange(width), rnd.randrange(height), rnd.randrange(width), rnd.randrange(height))
        draw.line(points, fill=(255, 255, 255), width=edge)
    if noise:
        grain = Image.frombytes("L", size, rnd.randbytes(width * height)).point(lambda v: v * noise // 255)
        img = ImageChops.add(img, Image.merge("RGB", (grain, grain, grain)), 1.0, -(noise // 2))
    return img


def alpha_mask(size: tuple[int, int]) -> Image.Image:
    """Left third fully transparent, middle third a ramp, right third fully opaque."""
    width, height = size
    mask = Image.new("L", size, 255)
    third = width // 3
    mask.paste(0, (0, 0, third, height))
    ramp = Image.linear_gradient("L").rotate(90).resize((max(1, width - 2 * third), height))
    mask.paste(ramp, (third, 0))
    return mask


def in_mode(mode: str, size: tuple[int, int] = (160, 120), seed: int = 0) -> Image.Image:
    """The photo in a colour mode: RGB, RGBA, L, LA, P, PT (P with a transparent index), 1, I;16, CMYK."""
    base = photo(size, seed)
    if mode == "RGB":
        return base
    if mode == "RGBA":
        rgba = base.copy()
        rgba.putalpha(alpha_mask(size))
        return rgba
    if mode == "L":
        return base.convert("L")
    if mode == "LA":
        la = base.convert("L")
        la.putalpha(alpha_mask(size))
        return la
    if mode in ("P", "PT"):
        pal = base.quantize(63, method=Image.Quantize.MEDIANCUT)
        if mode == "PT":
            # A 64th palette entry, used nowhere else, is transparent: paint the left quarter with it.
            palette = pal.getpalette() or []
            pal.putpalette([*palette[: 63 * 3], 0, 0, 0])
            pal.paste(63, (0, 0, size[0] // 4, size[1]))
            pal.info["transparency"] = 63
        return pal
    if mode == "1":
        return base.convert("1")
    if mode == "I;16":
        return sixteen_bit(size, seed)
    if mode == "CMYK":
        return base.convert("CMYK")
    raise ValueError(mode)


def sixteen_bit(size: tuple[int, int] = (160, 120), seed: int = 0) -> Image.Image:
    """A 16-bit grayscale image using the whole 0..65535 range (with a black and a white pixel)."""
    grey = photo(size, seed).convert("L")
    fine = random.Random(seed).randbytes(size[0] * size[1])
    raw = bytearray()
    for value, low in zip(grey.tobytes(), fine, strict=True):
        raw += struct.pack("<H", value * 256 + low)
    img = Image.frombytes("I;16", size, bytes(raw))
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 65535)
    return img


def markers(size: tuple[int, int] = (96, 64), block: int = 24) -> Image.Image:
    """An upright image: a red block in the top-left corner, a blue one in the top-right, grey elsewhere."""
    img = Image.new("RGB", size, GREY)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, block - 1, block - 1), fill=RED)
    draw.rectangle((size[0] - block, 0, size[0] - 1, block - 1), fill=BLUE)
    return img


def store_with_orientation(upright: Image.Image, orientation: int) -> Image.Image:
    """The pixels a camera stores for ``upright`` with EXIF orientation ``orientation``.

    Built pixel by pixel from the EXIF definition of the tag (which side of the upright
    image is the stored 0th row and 0th column), independently of Pillow's transposes.
    """
    w, h = upright.size
    # stored (x, y) -> upright (x, y)
    mappings: dict[int, Callable[[int, int], tuple[int, int]]] = {
        1: lambda x, y: (x, y),
        2: lambda x, y: (w - 1 - x, y),
        3: lambda x, y: (w - 1 - x, h - 1 - y),
        4: lambda x, y: (x, h - 1 - y),
        5: lambda x, y: (y, x),
        6: lambda x, y: (w - 1 - y, x),
        7: lambda x, y: (w - 1 - y, h - 1 - x),
        8: lambda x, y: (y, h - 1 - x),
    }
    mapping = mappings[orientation]
    stored_size = (h, w) if orientation >= 5 else (w, h)
    stored = Image.new(upright.mode, stored_size)
    src = upright.load()
    dst = stored.load()
    assert src is not None
    assert dst is not None
    for y in range(stored_size[1]):
        for x in range(stored_size[0]):
            dst[x, y] = src[mapping(x, y)]
    return stored


# -- files -------------------------------------------------------------------------------------


def encode(img: Image.Image, fmt: str, **params: Any) -> bytes:
    """``img`` written by Pillow in ``fmt``; HEIF by pillow-heif's encoder (libheif and x265: a real HEIC)."""
    if fmt == "HEIF":
        heif.register()
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def reopen(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif(
    orientation: int | None = None,
    make: str | None = None,
    model: str | None = None,
    taken: str | None = None,
    gps: bool = False,
    description: str | None = None,
) -> Image.Exif:
    data = Image.Exif()
    if orientation is not None:
        data[ExifTags.Base.Orientation] = orientation
    if make is not None:
        data[ExifTags.Base.Make] = make
    if model is not None:
        data[ExifTags.Base.Model] = model
    if description is not None:
        data[ExifTags.Base.ImageDescription] = description
    if taken is not None:
        data.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = taken
    if gps:
        info = data.get_ifd(ExifTags.IFD.GPSInfo)
        info[ExifTags.GPS.GPSLatitudeRef] = "N"
        info[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 24.0)
        info[ExifTags.GPS.GPSLongitudeRef] = "E"
        info[ExifTags.GPS.GPSLongitude] = (2.0, 21.0, 7.0)
    return data


def oriented_jpeg(orientation: int, size: tuple[int, int] = (96, 64), fmt: str = "JPEG") -> bytes:
    """The marker image stored rotated/flipped, tagged with the orientation that makes it upright.

    A HEIF carries it as a HEIF does, in its transformations (irot, imir: pillow-heif writes them from an
    EXIF block given as bytes), and in its EXIF too, as cameras write it.
    """
    stored = store_with_orientation(markers(size), orientation)
    params: dict[str, Any] = {"quality": 95} if fmt in ("JPEG", "WEBP", "HEIF") else {}
    meta = exif(orientation=orientation)
    return encode(stored, fmt, exif=meta.tobytes() if fmt == "HEIF" else meta, **params)


def broken_exif_jpeg(payload: bytes, size: tuple[int, int] = (64, 48)) -> bytes:
    """A valid JPEG whose APP1 EXIF block holds ``payload`` (after the ``Exif\\0\\0`` header)."""
    return encode(photo(size), "JPEG", exif=b"Exif\x00\x00" + payload)


def big_header_jpeg(block: int = 60_000, size: tuple[int, int] = (64, 48)) -> bytes:
    """A JPEG whose EXIF block is ``block`` bytes long, so the SOF marker comes after it."""
    return encode(photo(size), "JPEG", exif=exif(make="BigHeader", description="x" * block))


def animated_gif(frames: int = 3, size: tuple[int, int] = (48, 32)) -> bytes:
    images = [photo(size, seed=i).convert("P") for i in range(frames)]
    return encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)


def animated_webp(frames: int = 3, size: tuple[int, int] = (48, 32)) -> bytes:
    images = [photo(size, seed=i) for i in range(frames)]
    return encode(images[0], "WEBP", save_all=True, append_images=images[1:], duration=100)


# -- hand-made bytes ---------------------------------------------------------------------------


def bmp(
    img: Image.Image,
    bits: int = 24,
    *,
    rle: bool = False,
    top_down: bool = False,
    header: int = 40,
    masks: tuple[int, ...] = (),
    profile: bytes | None = None,
) -> bytes:
    """A BMP written field by field, in the variants Pillow reads but does not write: 4 and 16 bits, RLE8
    and RLE4 (runs and literal spans), top-down rows (a negative height), bit fields (``masks``: 16-bit
    565; 32-bit with alpha, in a V5 header), OS/2's 12-byte header, an ICC profile embedded after the
    pixels (V5). ``img`` is P for 1, 4 and 8 bits (at most 2**bits colours), RGB or RGBA otherwise."""
    width, height = img.size
    palette = b""
    if bits <= 8:
        rgb = (img.getpalette() or [])[: 3 * (1 << bits)]
        pad = b"" if header == 12 else b"\x00"
        palette = b"".join(bytes(rgb[i : i + 3][::-1]) + pad for i in range(0, len(rgb), 3))
    rows = [_bmp_row(img.crop((0, y, width, y + 1)), bits, masks) for y in range(height)]
    rows = rows if top_down else rows[::-1]
    if rle:
        pixels = b"".join(_rle_row(img.crop((0, y, width, y + 1)).tobytes(), bits) for y in range(height)[::-1])
        pixels = pixels[:-2] + b"\x00\x01"  # the last end of line becomes the end of the bitmap
    else:
        pixels = b"".join(row + bytes(-len(row) % 4) for row in rows)
    compression = (1 if bits == 8 else 2) if rle else 3 if masks else 0
    fields = header == 40 and bits == 16 and masks  # a V3 header's masks follow it
    offset = 14 + header + 12 * bool(fields) + len(palette)
    if header == 12:
        info = struct.pack("<IHHHH", 12, width, height, 1, bits)
    else:
        info = struct.pack("<IiiHHI", header, width, -height if top_down else height, 1, bits, compression)
        info += struct.pack("<IiiII", len(pixels), 2835, 2835, len(palette) // 4, 0)
        info += struct.pack("<3I", *masks) if fields else b""
    if header == 124:
        colour_space = b"DEBM" if profile else b"BGRs"  # PROFILE_EMBEDDED ('MBED'), or sRGB
        at = offset + len(pixels) - 14  # from the V5 header's start
        info += struct.pack("<4I", *(masks or (0, 0, 0, 0))) + colour_space + bytes(48)
        info += struct.pack("<4I", 4, at if profile else 0, len(profile or b""), 0)
    tail = profile if header == 124 and profile else b""
    size = offset + len(pixels) + len(tail)
    return b"BM" + struct.pack("<IHHI", size, 0, 0, offset) + info + palette + pixels + tail


def _bmp_row(row: Image.Image, bits: int, masks: tuple[int, ...]) -> bytes:
    if bits <= 8:
        return row.tobytes("raw", "P" if bits == 8 else f"P;{bits}")
    if bits == 16:
        red, green, blue = (row.convert("RGB").getchannel(band).tobytes() for band in "RGB")
        green_bits = 6 if masks else 5  # 565 with bit fields, 555 without
        return b"".join(
            struct.pack("<H", r >> 3 << (5 + green_bits) | g >> (8 - green_bits) << 5 | b >> 3)
            for r, g, b in zip(red, green, blue, strict=True)
        )
    return row.tobytes("raw", "BGR" if bits == 24 else "BGRA")


def _rle_row(indices: bytes, bits: int) -> bytes:
    """One row in RLE8 (runs, and literal spans of 3 or more) or RLE4 (runs), then an end of line."""
    out, at = bytearray(), 0
    while at < len(indices):
        run = 1
        while at + run < len(indices) and run < 255 and indices[at + run] == indices[at]:
            run += 1
        literal = 0
        if run == 1 and bits == 8:
            while (
                at + literal < len(indices)
                and literal < 255
                and (at + literal + 1 >= len(indices) or indices[at + literal + 1] != indices[at + literal])
            ):
                literal += 1
        if literal >= 3:
            out += bytes((0, literal)) + indices[at : at + literal] + bytes(literal % 2)
            at += literal
        else:
            out += bytes((run, indices[at] if bits == 8 else indices[at] * 17))
            at += run
    return bytes(out + b"\x00\x00")


def heif_media_first(data: bytes) -> bytes:
    """A HEIC as pillow-heif writes it (ftyp, meta, mdat) laid out media data first (ftyp, mdat, meta), as
    some writers do. The items' locations (libheif's: iloc with 4-byte base offsets) move with the data."""
    ftyp_end = int.from_bytes(data[:4], "big")
    meta_end = ftyp_end + int.from_bytes(data[ftyp_end : ftyp_end + 4], "big")
    meta = bytearray(data[ftyp_end:meta_end])
    iloc = meta.index(b"iloc") + 4
    version, at = meta[iloc], iloc + 8
    assert meta[iloc + 4 : iloc + 6] == b"\x44\x40", "4-byte offsets, lengths and base offsets"
    for _ in range(int.from_bytes(meta[iloc + 6 : iloc + 8], "big")):
        in_file = version == 0 or meta[at + 3] & 15 == 0  # construction method 0: an offset in the file
        at += 4 if version == 0 else 6  # item ID, construction method, data reference
        base = int.from_bytes(meta[at : at + 4], "big")
        if in_file:
            assert base >= meta_end
            meta[at : at + 4] = (base - len(meta)).to_bytes(4, "big")
        at += 6 + 8 * int.from_bytes(meta[at + 4 : at + 6], "big")
    return data[:ftyp_end] + data[meta_end:] + bytes(meta)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG (valid signature and CRCs) whose IHDR claims ``width`` x ``height`` grey pixels.

    Its one IDAT holds a single compressed scanline: decoding it would need the full
    canvas, which is exactly what a decompression bomb relies on.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale, no interlace
    idat = zlib.compress(b"\x00" + b"\x00" * min(width, 1024), 9)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def ftyp(major: bytes, compatible: Sequence[bytes] = (), tail: bytes = b"\x00" * 16) -> bytes:
    """An ISO base media ``ftyp`` box (the start of AVIF, HEIC, MP4 ...)."""
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + tail


# -- measures ----------------------------------------------------------------------------------


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB over all bands (inf for identical images)."""
    assert a.size == b.size, (a.size, b.size)
    assert a.mode == b.mode, (a.mode, b.mode)
    rms = ImageStat.Stat(ImageChops.difference(a, b)).rms
    mse = sum(r * r for r in rms) / len(rms)
    return math.inf if mse == 0 else 20 * math.log10(255 / math.sqrt(mse))


def mean(img: Image.Image, box: tuple[int, int, int, int] | None = None) -> tuple[float, ...]:
    """Mean value of each band, over ``box`` or the whole image."""
    return tuple(ImageStat.Stat(img.crop(box) if box else img).mean)


def extrema(img: Image.Image, band: int | str = 0) -> tuple[float, float]:
    """(min, max) of one band."""
    low, high = img.getchannel(band).getextrema()
    assert isinstance(low, (int, float))
    assert isinstance(high, (int, float))
    return low, high


def changed_box(a: Image.Image, b: Image.Image) -> tuple[int, int, int, int] | None:
    """The bounding box of the pixels that differ between ``a`` and ``b`` (None when none do)."""
    assert a.size == b.size
    return ImageChops.difference(a.convert("RGBA"), b.convert("RGBA")).getbbox(alpha_only=False)


def near(actual: Sequence[float], expected: Sequence[float], tolerance: float) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(actual, expected, strict=True))


# -- ICC profiles ------------------------------------------------------------------------------


def adobe_rgb_profile() -> bytes:
    """The Adobe RGB (1998) profile embedded in samples/rocket.jpg (a real camera file, 560 bytes)."""
    with Image.open(SAMPLES / "rocket.jpg") as img:
        profile = img.info["icc_profile"]
    assert isinstance(profile, bytes)
    return profile


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def grey_profile(gamma: float = 2.2, description: str = "Grey gamma 2.2") -> bytes:
    """A grey display profile (ICC v2: description, white point, grey tone curve, copyright).

    LittleCMS can make one, but Pillow exposes only its sRGB, Lab and XYZ profiles; this is the
    same structure, written field by field from the ICC specification.
    """
    d50 = _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    ascii_desc = description.encode("ascii") + b"\x00"
    tags = [
        # textDescriptionType: the ASCII description, then empty Unicode and ScriptCode descriptions.
        (b"desc", b"desc" + bytes(4) + struct.pack(">I", len(ascii_desc)) + ascii_desc + bytes(4 + 4 + 2 + 1 + 67)),
        (b"wtpt", b"XYZ \x00\x00\x00\x00" + d50),
        (b"kTRC", b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, round(gamma * 256))),
        (b"cprt", b"text\x00\x00\x00\x00" + b"No copyright, test data\x00"),
    ]
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    table = struct.pack(">I", len(tags))
    body = b""
    for signature, data in tags:
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data + bytes(-len(data) % 4)
    size = 128 + table_size + len(body)
    header = (
        struct.pack(">I", size)
        + bytes(4)
        + struct.pack(">I", 0x02100000)
        + b"mntrGRAYXYZ "
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0)
        + b"acsp"
        + bytes(4 * 4 + 8)
        + struct.pack(">I", 0)
        + d50
        + bytes(4 + 16 + 28)
    )
    assert len(header) == 128
    return header + table + body


# -- the pipeline on bytes ---------------------------------------------------------------------

#: A text watermark on every rendition, however small.
MARK = WatermarkSettings(text="© imgpipe", logo="", position="bottom-right", opacity=0.6, min_width=0)


@dataclass(frozen=True)
class Processed:
    info: ImageInfo
    frames: int
    #: (width, height, output format, encoded bytes) of every output.
    outputs: list[tuple[int, int, str, bytes]]


def validate(data: bytes, limits: Limits) -> ImageInfo:
    """What the validate step does with an object: its head (read again, larger, while the header does not
    fit) and its tail."""
    read = min(len(data), inspection.HEAD_BYTES)
    tail = data[-inspection.TAIL_BYTES :]
    while True:
        try:
            return inspection.inspect(data[:read], tail, len(data), limits)
        except inspection.NeedMoreBytes as more:
            read = more.wanted


def process(data: bytes, limits: Limits, mark: WatermarkSettings = MARK) -> Processed:
    """The validate, resize and watermark steps on an upload's bytes, without S3: inspect, count the
    frames, decode, make the renditions, stage them losslessly, watermark and encode each in
    ``limits.formats``."""
    info = validate(data, limits)
    frames = imaging.count_frames(data, info["format"])
    shown = info["height"] if info["orientation"] in (5, 6, 7, 8) else info["width"]
    widths = imaging.plan_widths(shown, limits.widths)
    with imaging.open_image(data, limits.max_pixels) as img:
        chain, icc = renditions.from_source(img, data, widths)
    settings = EncodeSettings(formats=limits.formats, jpeg_quality=85, webp_quality=80, avif_quality=60)
    outputs = []
    for rendition in chain:
        staged, staged_icc = imaging.from_lossless(imaging.to_lossless(rendition.image, icc))
        marked = watermark.apply(staged, mark)
        for fmt in limits.formats:
            outputs.append((rendition.width, rendition.height, fmt, encoding.encode(marked, fmt, settings, staged_icc)))
    return Processed(info=info, frames=frames, outputs=outputs)
