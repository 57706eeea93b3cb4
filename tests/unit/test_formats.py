"""Format sniffing from magic bytes, naming of non-images, and end-of-file checks."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile

import pytest

from pipeline import formats, heif
from tests import images

PHOTO = images.photo((48, 32))
#: Masks of 32-bit BMPs with alpha (BGRA in memory), and of 16-bit ones in 565.
BGRA_MASKS = (0xFF0000, 0xFF00, 0xFF, 0xFF000000)
MASKS_565 = (0xF800, 0x7E0, 0x1F)


def bmp_variants(size: tuple[int, int] = (48, 32)) -> dict[str, bytes]:
    """A BMP of every variant Pillow reads: Pillow's own (1, 8 and 24 bits, 32 without alpha) and hand-made ones."""
    photo, rgba = images.photo(size), images.in_mode("RGBA", size)
    return {
        "pillow-1bit": images.encode(photo.convert("1"), "BMP"),
        "pillow-grey": images.encode(photo.convert("L"), "BMP"),
        "pillow-palette": images.encode(images.in_mode("P", size), "BMP"),
        "pillow-24bit": images.encode(photo, "BMP"),
        "pillow-32bit": images.encode(rgba, "BMP"),
        "4bit": images.bmp(photo.quantize(16), 4),
        "16bit-555": images.bmp(photo, 16),
        "16bit-565-bitfields": images.bmp(photo, 16, masks=MASKS_565),
        "32bit-bitfields-alpha": images.bmp(rgba, 32, header=124, masks=BGRA_MASKS),
        "rle8": images.bmp(photo.quantize(40), 8, rle=True),
        "rle4": images.bmp(photo.quantize(16), 4, rle=True),
        "top-down": images.bmp(photo, 24, top_down=True),
        "os2": images.bmp(photo, 24, header=12),
        "v5-icc": images.bmp(photo, 24, header=124, profile=images.adobe_rgb_profile()),
    }


BMPS = bmp_variants()
#: ftyp boxes of HEVC-coded HEIF: an image or sequence brand as the major one, or mif1/msf1 with one compatible.
HEIF_BRANDS = [
    *[images.ftyp(brand, [b"mif1", brand]) for brand in sorted(heif.HEVC_BRANDS)],
    images.ftyp(b"mif1", [b"mif1", b"heic"]),
    images.ftyp(b"msf1", [b"msf1", b"hevc"]),
]


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("photo.jpg", b"not really")
    return buf.getvalue()


def _empty_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w"):
        pass
    return buf.getvalue()


# -- sniff -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(images.encode(PHOTO, "JPEG"), "JPEG", id="jpeg"),
        pytest.param(images.encode(PHOTO.convert("L"), "JPEG"), "JPEG", id="jpeg-grey"),
        pytest.param(images.encode(PHOTO.convert("CMYK"), "JPEG"), "JPEG", id="jpeg-cmyk"),
        pytest.param(images.encode(PHOTO, "JPEG", progressive=True), "JPEG", id="jpeg-progressive"),
        pytest.param(images.encode(PHOTO, "JPEG", exif=images.exif(make="X")), "JPEG", id="jpeg-exif"),
        pytest.param(images.encode(PHOTO, "PNG"), "PNG", id="png"),
        pytest.param(images.encode(images.in_mode("I;16", (48, 32)), "PNG"), "PNG", id="png-16bit"),
        pytest.param(images.encode(PHOTO, "WEBP"), "WEBP", id="webp-lossy"),
        pytest.param(images.encode(PHOTO, "WEBP", lossless=True), "WEBP", id="webp-lossless"),
        pytest.param(images.encode(images.in_mode("RGBA", (48, 32)), "WEBP"), "WEBP", id="webp-alpha"),
        pytest.param(images.animated_webp(), "WEBP", id="webp-animated"),
        pytest.param(images.encode(PHOTO, "GIF"), "GIF", id="gif"),
        pytest.param(images.animated_gif(), "GIF", id="gif-animated"),
        pytest.param(b"GIF87a" + b"\x00" * 16, "GIF", id="gif87a"),
        pytest.param(images.encode(PHOTO, "TIFF"), "TIFF", id="tiff"),
        pytest.param(b"II*\x00\x08\x00\x00\x00", "TIFF", id="tiff-little-endian"),
        pytest.param(b"MM\x00*\x00\x00\x00\x08", "TIFF", id="tiff-big-endian"),
        pytest.param(images.encode(PHOTO, "AVIF"), "AVIF", id="avif"),
        pytest.param(images.encode(images.in_mode("RGBA", (48, 32)), "AVIF"), "AVIF", id="avif-alpha"),
        pytest.param(images.ftyp(b"avif", [b"mif1", b"miaf"]), "AVIF", id="avif-major-brand"),
        pytest.param(images.ftyp(b"mif1", [b"mif1", b"avif"]), "AVIF", id="avif-compatible-brand"),
        pytest.param(images.ftyp(b"avis", [b"avis", b"msf1"]), "AVIF", id="avif-sequence"),
        *[pytest.param(data, "BMP", id=f"bmp-{name}") for name, data in BMPS.items()],
        pytest.param(images.encode(PHOTO, "HEIF"), "HEIF", id="heic"),
        pytest.param(images.encode(images.in_mode("RGBA", (48, 32)), "HEIF"), "HEIF", id="heic-alpha"),
        *[pytest.param(data, "HEIF", id=f"heif-{data[8:12].decode()}-{data[20:24].decode()}") for data in HEIF_BRANDS],
    ],
)
def test_sniff_reads_the_format_from_the_content(data: bytes, expected: str) -> None:
    assert formats.sniff(data) == expected
    assert expected in formats.READABLE
    assert formats.CONTENT_TYPES[expected] == f"image/{expected.lower()}"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff\xd8", id="jpeg-soi-only"),
        pytest.param(b"\x89PNG\r\n", id="png-signature-cut"),
        pytest.param(b"RIFF\x00\x00\x00\x00WAVEfmt ", id="riff-wave"),
        pytest.param(b"GIF88a" + b"\x00" * 10, id="gif-wrong-version"),
        pytest.param(b"%PDF-1.7\n", id="pdf"),
        pytest.param(_zip(), id="zip"),
        pytest.param(gzip.compress(b"hello"), id="gzip"),
        pytest.param(b"BMW 320d, 2014\n" * 4, id="text-starting-with-bm"),
        pytest.param(b"BM" + bytes(12) + b"\x20\x00\x00\x00" + bytes(40), id="bm-without-a-bmp-header"),
        pytest.param(images.encode(PHOTO, "BMP")[:16], id="bmp-cut-in-its-header-size"),
        pytest.param(images.ftyp(b"mif1", [b"mif1", b"miaf"]), id="heif-of-no-known-coding"),
        pytest.param(images.ftyp(b"miaf", [b"miaf", b"heic"]), id="heic-brand-under-another-major-brand"),
        pytest.param(images.ftyp(b"isom", [b"isom", b"mp41"]), id="mp4"),
        pytest.param(b"hello, world\n", id="text"),
        pytest.param(b"<svg xmlns='http://www.w3.org/2000/svg'/>", id="svg"),
    ],
)
def test_sniff_rejects_everything_else(data: bytes) -> None:
    assert formats.sniff(data) is None


@pytest.mark.parametrize(
    ("major", "compatible", "expected"),
    [
        (b"heic", [b"mif1", b"heic", b"avif"], "HEIF"),  # the major brand names the coding
        (b"avif", [b"mif1", b"avif", b"heic"], "AVIF"),
        (b"mif1", [b"mif1", b"heic", b"avif"], "AVIF"),  # a structural major brand: AVIF first, as before HEIF
        (b"mif1", [b"mif1", b"heic"], "HEIF"),
        (b"msf1", [b"msf1", b"avis"], "AVIF"),
        (b"msf1", [b"msf1", b"hevs"], "HEIF"),
        (b"miaf", [b"miaf", b"avif"], "AVIF"),  # any AVIF brand, as Pillow's AVIF reader takes it
    ],
)
def test_avif_and_heif_brands_decide_in_order(major: bytes, compatible: list[bytes], expected: str) -> None:
    assert formats.sniff(images.ftyp(major, compatible)) == expected


def test_a_brand_in_the_minor_version_field_is_not_a_brand() -> None:
    data = images.ftyp(b"mif1", [b"mif1"])
    assert formats.sniff(data[:12] + b"heic" + data[16:]) is None


def test_sniff_ignores_the_rest_of_a_long_head() -> None:
    data = images.encode(images.photo((300, 200)), "PNG")
    assert formats.sniff(data[:16]) == formats.sniff(data) == "PNG"


# -- describe_other ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "name"),
    [
        pytest.param(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF", id="pdf"),
        pytest.param(_zip(), "ZIP", id="zip"),
        pytest.param(_empty_zip(), "ZIP", id="zip-empty"),
        pytest.param(gzip.compress(b"x" * 100), "GZIP", id="gzip"),
        pytest.param(b"8BPS\x00\x01" + b"\x00" * 20, "PSD", id="psd"),
        pytest.param(b"  \n<svg width='10' height='10'></svg>", "SVG", id="svg-after-whitespace"),
        pytest.param(b'<?xml version="1.0"?><svg/>', "XML", id="xml"),
        pytest.param(images.ftyp(b"mif1", [b"mif1", b"miaf"]), "ISO media (mif1)", id="heif-of-no-known-coding"),
        pytest.param(images.ftyp(b"isom", [b"isom"]), "ISO media (isom)", id="mp4"),
        pytest.param(b"Dear user,\r\n\tthis is a letter.\n" * 40, "text", id="text"),
        pytest.param(b"name,width\nphoto.jpg,1024\n", "text", id="csv"),
        pytest.param(b"\x00\x01\x02\x03\xfe\xfd", "unknown binary data", id="binary"),
        pytest.param(b"", "unknown binary data", id="empty"),
    ],
)
def test_describe_other_names_the_content(data: bytes, name: str) -> None:
    assert formats.describe_other(data) == name


def test_describe_other_looks_at_text_only_in_the_first_bytes() -> None:
    assert formats.describe_other(b"a" * 512 + b"\x00\xff") == "text"
    assert formats.describe_other(b"a" * 100 + b"\x00\xff") == "unknown binary data"


# -- looks_complete / riff_size_matches --------------------------------------------------------

JPEG = images.encode(images.photo((64, 48)), "JPEG")
PNG = images.encode(images.photo((64, 48)), "PNG")
GIF = images.encode(images.photo((64, 48)), "GIF")
WEBP = images.encode(images.photo((64, 48)), "WEBP")


def _tail(data: bytes) -> bytes:
    return data[-4096:]


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        ("JPEG", JPEG),
        ("JPEG", JPEG + b"camera trailer data" * 10),
        ("PNG", PNG),
        ("PNG", PNG + b"\x00" * 300),
        ("GIF", GIF),
        ("WEBP", WEBP),
        ("TIFF", images.encode(PHOTO, "TIFF")),
        ("AVIF", images.encode(PHOTO, "AVIF")),
        ("BMP", BMPS["pillow-24bit"]),
        ("HEIF", images.encode(PHOTO, "HEIF")),
    ],
)
def test_looks_complete_accepts_whole_files(fmt: str, data: bytes) -> None:
    assert formats.looks_complete(fmt, _tail(data), len(data))


@pytest.mark.parametrize(("fmt", "data"), [("JPEG", JPEG), ("PNG", PNG), ("GIF", GIF)])
@pytest.mark.parametrize("cut", [1, 2, 10, 100])
def test_looks_complete_rejects_a_missing_end_marker(fmt: str, data: bytes, cut: int) -> None:
    truncated = data[:-cut]
    assert not formats.looks_complete(fmt, _tail(truncated), len(truncated))


def test_riff_size_matches_the_declared_length() -> None:
    assert formats.riff_size_matches(WEBP[:64], len(WEBP))
    assert formats.riff_size_matches(WEBP[:64], len(WEBP) + 10)  # trailing bytes are harmless
    for cut in (1, 10, len(WEBP) // 2):
        assert not formats.riff_size_matches(WEBP[:64], len(WEBP) - cut)


# -- BMP lengths and profile ------------------------------------------------------------------


@pytest.mark.parametrize("name", BMPS)
def test_bmp_size_matches_every_whole_variant(name: str) -> None:
    data = BMPS[name]
    assert formats.bmp_size_matches(data[:64], len(data))
    assert formats.bmp_size_matches(data[:64], len(data) + 10)  # trailing bytes are harmless
    for cut in (1, 2, len(data) // 2):
        assert not formats.bmp_size_matches(data[:64], len(data) - cut), cut


def _declaring(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + struct.pack("<I", value) + data[at + 4 :]


@pytest.mark.parametrize("name", ["pillow-24bit", "rle8", "os2"])
def test_a_bmp_length_of_zero_is_not_checked_but_its_pixels_are(name: str) -> None:
    """Some writers leave the file's length (or the RLE data's) at 0: the pixels' own length still counts."""
    data = _declaring(BMPS[name], 2, 0)
    assert formats.bmp_size_matches(data[:64], len(data))
    assert not formats.bmp_size_matches(data[:64], len(data) - 3)
    assert not formats.bmp_size_matches(_declaring(data, 2, len(data) + 1)[:64], len(data))


def test_bmp_pixel_data_longer_than_the_file_is_truncated() -> None:
    rle = BMPS["rle8"]
    offset = struct.unpack_from("<I", rle, 10)[0]
    longer = _declaring(_declaring(rle, 2, 0), 34, len(rle) - offset + 1)  # the RLE data's length
    assert not formats.bmp_size_matches(longer[:64], len(rle))
    taller = _declaring(_declaring(BMPS["pillow-24bit"], 2, 0), 22, 33)  # one row more than there is
    assert not formats.bmp_size_matches(taller[:64], len(taller))


def test_bmp_profile_is_found_in_a_v5_header() -> None:
    data = BMPS["v5-icc"]
    span = formats.bmp_profile(data[:200])
    assert span is not None
    assert data[span[0] : span[1]] == images.adobe_rgb_profile()
    assert span[1] == len(data)  # after the pixels, as the format says
    for name in ("pillow-24bit", "32bit-bitfields-alpha", "os2"):
        assert formats.bmp_profile(BMPS[name]) is None, name


# -- WebP canvas -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(images.encode(images.photo((300, 200)), "WEBP"), id="vp8"),
        pytest.param(images.encode(images.photo((300, 200)), "WEBP", lossless=True), id="vp8l"),
        pytest.param(images.encode(images.photo((300, 200)), "WEBP", exif=images.exif(make="X")), id="vp8x"),
        pytest.param(images.animated_webp(2, (300, 200)), id="animated"),
    ],
)
def test_webp_canvas_is_read_from_the_first_chunk(data: bytes) -> None:
    assert formats.webp_canvas(data[:30]) == images.reopen(data).size == (300, 200)


@pytest.mark.parametrize("head", [b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"RIFF\x00\x00\x00\x00WEBPVP8L" + bytes(13), b""])
def test_webp_canvas_of_what_is_not_a_webp_header(head: bytes) -> None:
    assert formats.webp_canvas(head) is None


# -- frames of a TIFF --------------------------------------------------------------------------


def _tiff(chain: list[int], order: str = "<") -> bytes:
    """A TIFF header pointing at IFD 8, then one-entry IFDs (18 bytes each) whose next offsets are ``chain``."""
    magic = b"II*\x00" if order == "<" else b"MM\x00*"
    ifds = b"".join(struct.pack(order + "H", 1) + bytes(12) + struct.pack(order + "I", nxt) for nxt in chain)
    return magic + struct.pack(order + "I", 8) + ifds


@pytest.mark.parametrize(
    ("chain", "pages"),
    [
        ([0], 1),
        ([26, 0], 2),
        ([26, 44, 0], 3),
        ([44, 0, 26], 3),  # the chain goes back and forth: 8, 44, 26
        ([8], 1),  # an IFD that points at itself
        ([26, 44, 8], 3),  # a loop back to the first
        ([26, 44, 26], 3),  # a loop back to the second
        ([26, 44, 10**6], 3),  # past the end
        ([26, 5, 0], 2),  # inside the header
    ],
)
@pytest.mark.parametrize("order", ["<", ">"])
def test_tiff_pages_follow_the_ifd_chain(chain: list[int], pages: int, order: str) -> None:
    assert formats.frame_count(_tiff(chain, order), "TIFF") == pages


def test_a_long_tiff_chain_is_counted_in_constant_memory() -> None:
    count = 100_000
    forward = _tiff([8 + 18 * (i + 1) for i in range(count - 1)] + [0])
    assert formats.frame_count(forward, "TIFF") == count
    looping = _tiff([8 + 18 * (i + 1) for i in range(count - 1)] + [8 + 18 * 500])
    assert formats.frame_count(looping, "TIFF") == count


@pytest.mark.parametrize("fmt", sorted(formats.READABLE))
@pytest.mark.parametrize("data", [b"", b"\x00", bytes(100), b"\xff" * 100])
def test_frame_count_of_junk_is_one(fmt: str, data: bytes) -> None:
    assert formats.frame_count(data, fmt) == 1


# -- images of a HEIF --------------------------------------------------------------------------


def _heic(**params: object) -> bytes:
    return images.encode(images.photo((64, 48)), "HEIF", quality=50, **params)


def _pages(count: int) -> list[object]:
    return [images.photo((64, 48), seed=i) for i in range(1, count)]


@pytest.mark.parametrize(
    ("data", "count"),
    [
        pytest.param(_heic(), 1, id="one"),
        pytest.param(_heic(save_all=True, append_images=_pages(3)), 3, id="three"),
        pytest.param(_heic(save_all=True, append_images=_pages(3), primary_index=2), 3, id="three-primary-last"),
        pytest.param(_heic(thumbnails=[32]), 1, id="with-a-thumbnail"),
        pytest.param(images.encode(images.in_mode("RGBA", (64, 48)), "HEIF"), 1, id="with-an-alpha-plane"),
        pytest.param(images.encode(images.photo((300, 200)), "HEIF", tile_size=64), 1, id="grid-of-hidden-tiles"),
    ],
)
def test_heif_frames_are_its_top_level_images_as_libheif_counts_them(data: bytes, count: int) -> None:
    assert formats.frame_count(data, "HEIF") == count
    with images.reopen(data) as img:
        assert img.n_frames == count  # type: ignore[attr-defined]


def test_heif_items_are_read_from_the_meta_box() -> None:
    data = images.encode(images.photo((300, 200)), "HEIF", tile_size=64)
    found = heif.meta_box(data)
    assert found is not None
    meta = heif.parse(data, *found)
    assert meta.primary is not None
    assert meta.items[meta.primary] == (b"grid", False)
    assert meta.primary_size() == (300, 200)
    tiles = [item for item, (kind, hidden) in meta.items.items() if kind == b"hvc1"]
    assert len(tiles) == 5 * 4
    assert all(meta.items[tile][1] for tile in tiles), "the tiles are hidden"
    assert meta.data_end() == len(data)


def test_heif_frames_are_counted_from_a_whole_meta_box_only() -> None:
    data = _heic(save_all=True, append_images=_pages(3))
    found = heif.meta_box(data)
    assert found is not None
    assert formats.frame_count(data[: found[1]], "HEIF") == 3
    assert formats.frame_count(data[: found[1] - 1], "HEIF") == 1


def test_a_damaged_meta_box_never_raises() -> None:
    """Every byte of a meta box changed in turn: the parse reads what it finds, and never raises."""
    data = _heic(save_all=True, append_images=_pages(2), thumbnails=[32], exif=images.exif(make="X").tobytes())
    found = heif.meta_box(data)
    assert found is not None
    for at in range(found[0] - 8, found[1]):
        for value in (0x00, 0xFF, data[at] ^ 0x80):
            damaged = data[:at] + bytes((value,)) + data[at + 1 :]
            assert formats.frame_count(damaged, "HEIF") >= 1
            meta = heif.meta_box(damaged)
            if meta:
                heif.parse(damaged, *meta).data_end()
