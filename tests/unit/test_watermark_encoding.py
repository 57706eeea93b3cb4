"""Watermarking (text or logo, position, opacity) and the final encoders (JPEG, WebP, AVIF)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageDraw

from pipeline import encoding, imaging, renditions, watermark
from pipeline.settings import OUTPUT_FORMATS, POSITIONS, EncodeSettings, WatermarkSettings
from tests import images

MARK = WatermarkSettings(text="© imgpipe", logo="", position="bottom-right", opacity=1.0, min_width=100)
ENCODE = EncodeSettings(formats=OUTPUT_FORMATS, jpeg_quality=85, webp_quality=80, avif_quality=60)
SIZE = (400, 300)


def marked(img: Image.Image, **changes: object) -> Image.Image:
    return watermark.apply(img, dataclasses.replace(MARK, **changes))  # type: ignore[arg-type]


def region(position: str, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The part of the image a stamp at ``position`` must stay in (a quadrant, or the middle)."""
    w, h = size
    return {
        "top-left": (0, 0, w // 2, h // 2),
        "top-right": (w // 2, 0, w, h // 2),
        "bottom-left": (0, h // 2, w // 2, h),
        "bottom-right": (w // 2, h // 2, w, h),
        "center": (w // 4, h // 4, w - w // 4, h - h // 4),
    }[position]


def inside(box: tuple[int, int, int, int], outer: tuple[int, int, int, int]) -> bool:
    return outer[0] <= box[0] and outer[1] <= box[1] and box[2] <= outer[2] and box[3] <= outer[3]


# -- watermark: where and when ------------------------------------------------------------------


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
def test_the_text_goes_in_the_configured_place_only(position: str, mode: str) -> None:
    source = images.in_mode(mode, SIZE)
    before = source.copy()
    out = marked(source, position=position)
    assert out is not source
    assert (out.mode, out.size) == (mode, SIZE)
    assert ImageChops.difference(source, before).getbbox(alpha_only=False) is None  # the input is untouched
    box = images.changed_box(source, out)
    assert box is not None, "nothing was drawn"
    assert inside(box, region(position, SIZE)), (position, box)
    # Everything outside the changed box is identical.
    untouched = source.copy()
    untouched.paste(out.crop(box), box[:2])
    assert images.changed_box(untouched, out) is None


@pytest.mark.parametrize("position", POSITIONS)
def test_the_margin_keeps_the_mark_off_the_edges(position: str) -> None:
    box = images.changed_box(images.photo(SIZE), marked(images.photo(SIZE), position=position))
    assert box is not None
    margin = round(SIZE[0] * watermark.MARGIN_SCALE)
    if position != "center":
        vertical, horizontal = position.split("-")
        assert (box[1] >= margin) if vertical == "top" else (box[3] <= SIZE[1] - margin)
        assert (box[0] >= margin) if horizontal == "left" else (box[2] <= SIZE[0] - margin)
    else:
        centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        assert abs(centre_x - SIZE[0] / 2) <= 2
        assert abs(centre_y - SIZE[1] / 2) <= 2


def test_the_text_scales_with_the_image() -> None:
    small = images.changed_box(images.photo((400, 300)), marked(images.photo((400, 300))))
    large = images.changed_box(images.photo((1600, 1200)), marked(images.photo((1600, 1200))))
    assert small is not None
    assert large is not None
    small_h, large_h = small[3] - small[1], large[3] - large[1]
    assert 3 <= large_h / small_h <= 5


def test_the_text_is_white_with_a_dark_outline() -> None:
    black = Image.new("RGB", SIZE, (0, 0, 0))
    white = Image.new("RGB", SIZE, (255, 255, 255))
    on_black = marked(black)
    on_white = marked(white)
    assert images.extrema(on_black)[1] == 255  # the white fill shows on black
    assert images.extrema(on_white)[0] == 0  # the dark outline shows on white


@pytest.mark.parametrize(
    ("changes", "width"),
    [
        pytest.param({"min_width": 401}, 400, id="below-min-width"),
        pytest.param({"min_width": 10_000}, 400, id="far-below-min-width"),
        pytest.param({"text": "", "logo": ""}, 400, id="no-text-no-logo"),
        pytest.param({"opacity": 0.0}, 400, id="opacity-0"),
    ],
)
def test_the_watermark_is_skipped(changes: dict[str, object], width: int) -> None:
    source = images.photo((width, 300))
    before = source.copy()
    out = marked(source, **changes)
    assert out is source
    assert images.changed_box(out, before) is None


def test_the_watermark_applies_from_min_width_inclusive() -> None:
    source = images.photo(SIZE)
    assert images.changed_box(source, marked(source, min_width=SIZE[0])) is not None
    assert marked(source, min_width=SIZE[0] + 1) is source


@pytest.mark.parametrize(
    ("width", "changes", "expected"),
    [
        (600, {}, True),
        (99, {}, False),
        (100, {}, True),
        (600, {"text": ""}, False),
        (600, {"text": "", "logo": "logo.png"}, True),
        (600, {"opacity": 0.0}, False),
        (600, {"opacity": 0.01}, True),
        (0, {"min_width": 0}, True),
    ],
)
def test_applies(width: int, changes: dict[str, object], expected: bool) -> None:
    assert watermark.applies(width, dataclasses.replace(MARK, **changes)) is expected  # type: ignore[arg-type]


def test_opacity_blends_the_mark() -> None:
    source = images.photo(SIZE)
    strengths = []
    for opacity in (0.1, 0.5, 1.0):
        diff = ImageChops.difference(source, marked(source, opacity=opacity)).convert("L")
        strengths.append(images.extrema(diff)[1])
    assert strengths[0] < strengths[1] < strengths[2]


def test_the_mark_shows_on_transparent_pixels() -> None:
    """On a transparent area the alpha rises under the stamp, so the mark is visible."""
    source = images.in_mode("RGBA", SIZE)
    out = marked(source, position="bottom-left")  # the left third is fully transparent
    box = images.changed_box(source, out)
    assert box is not None
    assert box[2] <= SIZE[0] // 3
    assert images.mean(source.getchannel("A"), box) == (0.0,)
    assert images.extrema(out.crop(box), "A")[1] == 255


def test_a_long_text_on_a_small_image_is_clipped_not_an_error() -> None:
    source = images.photo((120, 90))
    out = marked(source, text="a very long watermark text that is wider than the image", position="bottom-right")
    box = images.changed_box(source, out)
    assert box is not None
    assert box[0] == 0  # pushed to the left edge, not off the image


# -- watermark: logo ---------------------------------------------------------------------------


@pytest.fixture
def logo_assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A layer assets folder with a 200x100 logo: a red disc on a transparent background."""
    logo = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    ImageDraw.Draw(logo).ellipse((50, 0, 150, 100), fill=(255, 0, 0, 255))
    logo.save(tmp_path / "logo.png")
    monkeypatch.setattr(watermark, "ASSETS", tmp_path)
    watermark._logo.cache_clear()
    yield tmp_path
    watermark._logo.cache_clear()


@pytest.mark.parametrize("position", POSITIONS)
def test_the_logo_goes_in_the_configured_place(logo_assets: Path, position: str) -> None:
    source = Image.new("RGB", (1000, 800), (0, 0, 255))
    out = marked(source, logo="logo.png", text="ignored when there is a logo", position=position)
    box = images.changed_box(source, out)
    assert box is not None
    assert inside(box, region(position, source.size))
    # The logo is 18% of the width: 180x90, and the disc in its middle is 90 px wide
    # (plus a few pixels of resampling halo).
    assert 86 <= box[2] - box[0] <= 100
    assert 86 <= box[3] - box[1] <= 100
    centre = ((box[0] + box[2]) // 2, (box[1] + box[3]) // 2)
    assert out.getpixel(centre) == (255, 0, 0)  # opacity 1: the logo's own colour


def test_the_logo_respects_opacity(logo_assets: Path) -> None:
    source = Image.new("RGB", (1000, 800), (0, 0, 255))
    out = marked(source, logo="logo.png", opacity=0.5, position="center")
    red, green, blue = out.getpixel((500, 400))  # type: ignore[misc]
    assert abs(red - 128) <= 2
    assert green == 0
    assert abs(blue - 127) <= 2


def test_the_logo_on_grey_images(logo_assets: Path) -> None:
    source = Image.new("L", (1000, 800), 0)
    out = marked(source, logo="logo.png", position="center")
    assert out.mode == "L"
    assert out.getpixel((500, 400)) == Image.new("RGB", (1, 1), (255, 0, 0)).convert("L").getpixel((0, 0))


# -- encoding ----------------------------------------------------------------------------------

EXPECTED_MODES = {
    # (input mode, format): mode when reopened
    ("L", "jpeg"): "L",
    ("LA", "jpeg"): "L",
    ("RGB", "jpeg"): "RGB",
    ("RGBA", "jpeg"): "RGB",
    ("L", "webp"): "RGB",
    ("LA", "webp"): "RGBA",
    ("RGB", "webp"): "RGB",
    ("RGBA", "webp"): "RGBA",
    ("L", "avif"): "RGB",
    ("LA", "avif"): "RGBA",
    ("RGB", "avif"): "RGB",
    ("RGBA", "avif"): "RGBA",
}


@pytest.mark.parametrize(("mode", "fmt"), list(EXPECTED_MODES))
def test_encode_writes_the_format(mode: str, fmt: str) -> None:
    source = images.in_mode(mode, (160, 120))
    data = encoding.encode(source, fmt, ENCODE, None)
    out = images.reopen(data)
    assert out.format == fmt.upper()
    assert Image.MIME[out.format] == encoding.CONTENT_TYPES[fmt]
    assert out.size == (160, 120)
    assert out.mode == EXPECTED_MODES[(mode, fmt)]
    assert "icc_profile" not in out.info or not out.info["icc_profile"]
    # The opaque right third looks like the source.
    box = (110, 0, 160, 120)
    assert images.psnr(out.convert("RGB").crop(box), source.convert("RGB").crop(box)) > 22


def test_extensions_and_content_types_cover_every_output_format() -> None:
    assert set(encoding.EXTENSIONS) == set(encoding.CONTENT_TYPES) == set(OUTPUT_FORMATS)
    assert encoding.EXTENSIONS["jpeg"] == "jpg"


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_jpeg_flattens_transparency_on_white(mode: str) -> None:
    source = images.in_mode(mode, (150, 100))
    out = images.reopen(encoding.encode(source, "jpeg", ENCODE, None))
    assert out.mode in ("RGB", "L")
    white = (255.0,) * len(out.getbands())
    assert images.near(images.mean(out, (0, 0, 45, 100)), white, 3)  # transparent third: white
    # The ramp in the middle goes from white towards the picture.
    assert images.mean(out, (52, 0, 56, 100))[0] > images.mean(out, (94, 0, 98, 100))[0] - 40
    opaque = (105, 0, 150, 100)
    assert images.psnr(out.crop(opaque), source.convert(out.mode).crop(opaque)) > 22


def test_jpeg_flattening_composites_partial_alpha() -> None:
    source = Image.new("RGBA", (32, 32), (0, 0, 0, 128))  # half-transparent black
    out = images.reopen(encoding.encode(source, "jpeg", ENCODE, None))
    assert images.near(images.mean(out), (127, 127, 127), 3)


@pytest.mark.parametrize("fmt", ["webp", "avif"])
@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_webp_and_avif_keep_the_alpha(fmt: str, mode: str) -> None:
    source = images.in_mode(mode, (150, 100))
    out = images.reopen(encoding.encode(source, fmt, ENCODE, None))
    assert out.mode == "RGBA"
    alpha = out.getchannel("A")
    assert images.mean(alpha, (0, 0, 45, 100))[0] <= 2
    assert images.mean(alpha, (105, 0, 150, 100))[0] >= 253
    ramp_left, ramp_right = images.mean(alpha, (52, 0, 56, 100))[0], images.mean(alpha, (94, 0, 98, 100))[0]
    assert ramp_left + 100 < ramp_right


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_encode_embeds_the_icc_profile(fmt: str, mode: str) -> None:
    profile = images.adobe_rgb_profile()
    out = images.reopen(encoding.encode(images.in_mode(mode, (64, 48)), fmt, ENCODE, profile))
    assert out.info["icc_profile"] == profile


@pytest.mark.parametrize("mode", ["L", "LA"])
def test_jpeg_keeps_a_grey_profile_on_grey(mode: str) -> None:
    profile = images.grey_profile()
    out = images.reopen(encoding.encode(images.in_mode(mode, (64, 48)), "jpeg", ENCODE, profile))
    assert (out.mode, out.info["icc_profile"]) == ("L", profile)


@pytest.mark.parametrize("fmt", ["webp", "avif"])
@pytest.mark.parametrize("mode", ["L", "LA"])
def test_grey_with_a_grey_profile_becomes_srgb_where_the_format_has_no_grey(fmt: str, mode: str) -> None:
    """WebP and AVIF are written in colour: the grey profile's tones are converted to sRGB, and tagged so."""
    source = images.in_mode(mode, (64, 48))
    flat = images.grey_profile(gamma=1.0, description="Linear grey")
    out = images.reopen(encoding.encode(source, fmt, ENCODE, flat))
    assert out.info["icc_profile"] == imaging.srgb_profile()
    assert out.mode == ("RGBA" if mode == "LA" else "RGB")
    # Linear grey 64 (of 255) is sRGB grey 137: the tones moved as the profile says (lossy: near enough).
    level = Image.new("L", (64, 48), 64)
    moved = images.reopen(encoding.encode(level, fmt, ENCODE, flat)).convert("RGB")
    assert images.near(images.mean(moved), (137, 137, 137), 4)
    if mode == "LA":
        assert images.mean(out.getchannel("A"), (0, 0, 20, 48))[0] <= 2  # the transparent third stays so


#: sRGB as the pipeline makes it (LittleCMS stamps each profile it makes with the time).
_PROFILES = {"grey": images.grey_profile(), "srgb": imaging.srgb_profile(), "garbage": b"not a profile" * 100}


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
@pytest.mark.parametrize(
    ("mode", "profile", "embedded"),
    [("RGB", "garbage", "srgb"), ("RGB", "grey", "srgb"), ("L", "srgb", None), ("L", "garbage", None)],
)
def test_encode_never_embeds_a_profile_that_does_not_describe_the_image(
    fmt: str, mode: str, profile: str, embedded: str | None
) -> None:
    out = images.reopen(encoding.encode(images.in_mode(mode, (64, 48)), fmt, ENCODE, _PROFILES[profile]))
    assert (out.info.get("icc_profile") or None) == (_PROFILES[embedded] if embedded else None)


@pytest.mark.parametrize(
    ("fmt", "side", "pixels"), [("jpeg", 65_500, None), ("webp", 16_383, None), ("avif", 32_768, 16_384 * 16_384)]
)
def test_size_limits(fmt: str, side: int, pixels: int | None) -> None:
    assert encoding.SIZE_LIMITS[fmt] == (side, pixels)
    assert encoding.fits(fmt, 1, side)
    assert encoding.fits(fmt, side, 1)
    assert not encoding.fits(fmt, 1, side + 1)
    assert not encoding.fits(fmt, side + 1, 1)
    if pixels:
        assert not encoding.fits(fmt, pixels // side + 1, side)


@pytest.mark.parametrize(
    ("fmt", "size"), [("jpeg", (1, 65_500)), ("webp", (16_383, 1)), ("webp", (1, 16_383)), ("avif", (1, 32_768))]
)
def test_the_size_limits_are_the_encoders_and_decoders(fmt: str, size: tuple[int, int]) -> None:
    """At the limit, the output encodes and reads back; one pixel more, it does not."""
    out = images.reopen(encoding.encode(Image.new("RGB", size, (200, 100, 50)), fmt, ENCODE, None))
    assert out.size == size
    out.load()
    larger = (size[0] + 1, size[1]) if size[0] > 1 else (size[0], size[1] + 1)
    with pytest.raises((OSError, ValueError, RuntimeError)):
        images.reopen(encoding.encode(Image.new("RGB", larger, (200, 100, 50)), fmt, ENCODE, None)).load()


@pytest.fixture(scope="module")
def with_metadata() -> Image.Image:
    """A decoded image whose source carried EXIF (camera, GPS position) and XMP."""
    meta = images.exif(make="Apple", model="iPhone", taken="2024:01:02 03:04:05", gps=True)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    data = images.encode(images.photo((160, 120)), "JPEG", exif=meta, xmp=xmp)
    src = images.reopen(data)
    assert src.getexif().get_ifd(0x8825)  # the source really has a GPS block
    decoded, _ = imaging.decode(src, 160, data)
    decoded = decoded.convert(renditions.rendition_mode(decoded.mode))  # as the renditions carry it
    decoded.info.update({k: src.info[k] for k in ("exif", "xmp") if k in src.info})  # as Pillow's readers leave it
    assert "exif" in decoded.info
    return decoded


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_encode_strips_exif_and_gps(fmt: str, with_metadata: Image.Image) -> None:
    out = images.reopen(encoding.encode(with_metadata, fmt, ENCODE, None))
    assert not out.getexif()
    assert "exif" not in out.info
    assert "xmp" not in out.info


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_no_metadata_after_the_whole_chain(fmt: str, with_metadata: Image.Image) -> None:
    """decode -> rendition -> lossless staging -> watermark -> encode."""
    rendition = list(renditions.chain(with_metadata, [160, 120]))[-1]
    staged, icc = imaging.from_lossless(imaging.to_lossless(rendition.image, None))
    out = images.reopen(encoding.encode(marked(staged), fmt, ENCODE, icc))
    assert out.size == (120, 90)
    assert not out.getexif()


@pytest.mark.parametrize(
    ("fmt", "field"), [("jpeg", "jpeg_quality"), ("webp", "webp_quality"), ("avif", "avif_quality")]
)
def test_quality_is_the_configured_one(fmt: str, field: str) -> None:
    source = images.photo((200, 150))
    low_quality: dict[str, Any] = {field: 20}
    high_quality: dict[str, Any] = {field: 90}
    low = encoding.encode(source, fmt, dataclasses.replace(ENCODE, **low_quality), None)
    high = encoding.encode(source, fmt, dataclasses.replace(ENCODE, **high_quality), None)
    assert len(low) < len(high)
    assert images.psnr(images.reopen(low).convert("RGB"), source) < images.psnr(
        images.reopen(high).convert("RGB"), source
    )


def test_encode_does_not_change_the_input() -> None:
    source = images.in_mode("RGBA", (64, 48))
    before = source.copy()
    for fmt in OUTPUT_FORMATS:
        encoding.encode(source, fmt, ENCODE, None)
    assert source.mode == "RGBA"
    assert images.changed_box(source, before) is None


@pytest.mark.parametrize("fmt", ["png", "gif", "JPEG", "jpg", ""])
def test_encode_rejects_an_unknown_format(fmt: str) -> None:
    with pytest.raises(ValueError, match="unknown output format"):
        encoding.encode(images.photo((8, 8)), fmt, ENCODE, None)
