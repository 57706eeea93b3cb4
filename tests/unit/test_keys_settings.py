"""Object keys (confinement, length limit, event decoding) and configuration from the environment."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any

import pytest

from pipeline import keys
from pipeline.errors import ConfigurationError
from pipeline.settings import (
    OUTPUT_FORMATS,
    POSITIONS,
    EncodeSettings,
    Limits,
    NotifySettings,
    RenditionSettings,
    Staging,
    StoreSettings,
    WatermarkSettings,
    parse_formats,
    parse_widths,
)

# -- event keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("my+photo%2B1.jpg", "my photo+1.jpg"),
        ("uploads/a+b/c.jpg", "uploads/a b/c.jpg"),
        ("uploads/%E2%82%AC%20100.png", "uploads/€ 100.png"),
        ("uploads/caf%C3%A9.jpg", "uploads/café.jpg"),
        ("uploads/100%25.jpg", "uploads/100%.jpg"),
        ("uploads/plain.jpg", "uploads/plain.jpg"),
        ("uploads/%3F%26%3D.jpg", "uploads/?&=.jpg"),
    ],
)
def test_decode_event_key(raw: str, decoded: str) -> None:
    assert keys.decode_event_key(raw) == decoded


def test_source_digest_is_stable_and_specific() -> None:
    digest = keys.source_digest("bucket", "uploads/a.jpg", "etag1")
    assert re.fullmatch(r"[0-9a-f]{40}", digest)
    assert digest == keys.source_digest("bucket", "uploads/a.jpg", "etag1")
    others = {
        keys.source_digest("bucket2", "uploads/a.jpg", "etag1"),
        keys.source_digest("bucket", "uploads/b.jpg", "etag1"),
        keys.source_digest("bucket", "uploads/a.jpg", "etag2"),
    }
    assert digest not in others
    assert len(others) == 3


# -- stem --------------------------------------------------------------------------------------

#: An expected stem ending in "~": the cleaned head, then 16 hex digits of the SHA-256 of the whole key.
TAGGED = "~"


@pytest.mark.parametrize(
    ("key", "prefix", "expected"),
    [
        ("uploads/photo.jpg", "uploads/", "photo.jpg"),
        ("uploads/2024/05/photo.jpg", "uploads/", "2024/05/photo.jpg"),
        ("uploads/photo.png", "uploads/", "photo.png"),  # the extension stays: no clash with photo.jpg
        ("uploads/../../etc/passwd", "uploads/", "etc/passwd~"),
        ("uploads/a/../b.jpg", "uploads/", "a/b.jpg~"),
        ("uploads/./a/./b.jpg", "uploads/", "a/b.jpg~"),
        ("uploads//a///b.jpg", "uploads/", "a/b.jpg~"),
        ("uploads/a\\..\\..\\b.jpg", "uploads/", "a/b.jpg~"),
        ("uploads/a/", "uploads/", "a~"),
        ("uploads/", "uploads/", "_~"),
        ("uploads/..", "uploads/", "_~"),
        ("uploads/./../.", "uploads/", "_~"),
        ("other/photo.jpg", "uploads/", "other/photo.jpg~"),  # outside the prefix: the whole key, tagged
        ("/abs/photo.jpg", "", "abs/photo.jpg~"),
        ("photo.jpg", "", "photo.jpg"),
        ("uploads/...jpg", "uploads/", "...jpg"),  # dots inside a name are fine
        ("uploads/.hidden", "uploads/", ".hidden"),
        ("uploads/my photo+1.jpg", "uploads/", "my photo+1.jpg"),
        ("uploads/フォト/写真.jpg", "uploads/", "フォト/写真.jpg"),
        ("uploads/100% sure.jpg", "uploads/", "100% sure.jpg"),  # not an escape: kept
        ("uploads/literal%20twenty.jpg", "uploads/", "literal%20twenty.jpg"),  # decodes to a plain name: kept
        ("uploads/%2e%2e/x.jpg", "uploads/", "_2e_2e/x.jpg~"),  # ".." once percent-decoded
        ("uploads/a%2F..%2Fb.jpg", "uploads/", "a_2F.._2Fb.jpg~"),  # "a/../b.jpg" once decoded
        ("uploads/a%5Cb.jpg", "uploads/", "a_5Cb.jpg~"),  # a backslash once decoded
        ("uploads/a~0123456789abcdef", "uploads/", "a~0123456789abcdef~"),  # looks tagged: tagged again
        ("uploads/a~0123456789abcdeF", "uploads/", "a~0123456789abcdeF"),  # not a tag (upper case)
    ],
)
def test_stem(key: str, prefix: str, expected: str) -> None:
    if expected.endswith(TAGGED):
        expected += hashlib.sha256(key.encode()).hexdigest()[:16]
    assert keys.stem(key, prefix) == expected


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("uploads/twins/a.jpg", "uploads/twins/./a.jpg"),
        ("uploads/a/b.jpg", "uploads/a/../a/b.jpg"),
        ("uploads/a/b.jpg", "uploads/a//b.jpg"),
        ("uploads/a/b.jpg", "uploads/a\\b.jpg"),
        ("uploads/a", "uploads/a/"),
        ("uploads/_", "uploads/"),
        ("uploads/x.jpg", "x.jpg"),  # outside the prefix
        ("uploads/%2e%2e/x.jpg", "uploads/_2e_2e/x.jpg"),
    ],
)
def test_keys_that_used_to_share_a_stem_do_not(first: str, second: str) -> None:
    """Each pair once mapped to one destination folder: the second upload overwrote the first's outputs."""
    assert keys.stem(first, "uploads/") != keys.stem(second, "uploads/")


NASTY_KEYS = [
    "uploads/" + "../" * 50 + "x.jpg",
    "uploads/" + "a/" * 600 + "b.jpg",
    "uploads/" + "é" * 2000 + ".jpg",
    "uploads/" + "写" * 1000 + "/" + "真" * 1000 + ".jpg",
    "uploads/" + "🦊" * 600 + ".jpg",
    "uploads/" + "x" * 990 + "/../" + "y" * 50,
    "uploads/" + "a" * 973 + "/" + "..." + "/tail.jpg",
    "uploads/" + "a" * 974 + "/" + "..." + "/tail.jpg",
    "uploads/" + "a" * 975 + "/" + "..." + "/tail.jpg",
    "uploads/" + "a" * 974 + "é" * 10,
    "uploads/" + "/".join(["segment"] * 200),
    "uploads/" + "\\" * 100 + "x",
    "uploads/" + "." * 3000,
]


@pytest.mark.parametrize("key", NASTY_KEYS)
def test_stem_is_confined_and_short(key: str) -> None:
    result = keys.stem(key, "uploads/")
    segments = result.split("/")
    assert result
    assert all(segments), f"an empty segment in {result!r}"
    assert ".." not in segments
    assert "." not in segments
    assert not result.startswith("/")
    encoded = result.encode()
    assert len(encoded) <= keys.MAX_KEY_BYTES - 48
    assert encoded.decode() == result  # valid UTF-8: no multi-byte character cut in half
    for full in (keys.rendition_key(result, "v" * 1024, 16384, "avif"), keys.manifest_key(result)):
        assert len(full.encode()) <= keys.MAX_KEY_BYTES


@pytest.mark.parametrize("char", ["a", "é", "写", "🦊"])
@pytest.mark.parametrize("length", [100, 991, 992, 993, 2000, 10_000])
def test_long_keys_are_shortened_with_a_hash(char: str, length: int) -> None:
    body = (char * length)[: max(1, length // len(char.encode()))]
    key = "uploads/" + body + ".jpg"
    result = keys.stem(key, "uploads/")
    assert len(result.encode()) <= keys.MAX_KEY_BYTES - 48
    if len((body + ".jpg").encode()) <= keys.MAX_KEY_BYTES - 48:
        assert result == body + ".jpg"
    else:
        assert re.search(r"~[0-9a-f]{16}$", result)
        assert result.startswith(body[:50])  # still readable
        assert result == keys.stem(key, "uploads/")  # deterministic
        # Two keys that differ only past the cut do not collide.
        assert keys.stem("uploads/" + body + ".png", "uploads/") != result


def test_key_helpers() -> None:
    tag = keys.revision_tag("version-1")
    assert re.fullmatch(r"[0-9a-f]{16}", tag)
    assert tag != keys.revision_tag("version-2")
    assert keys.rendition_key("a/b.jpg", "version-1", 320, "webp") == f"a/b.jpg/{tag}/320w.webp"
    assert keys.is_rendition_of("a/b.jpg", f"a/b.jpg/{tag}/320w.webp")
    for other in (
        f"a/b.jpg/sub.jpg/{tag}/320w.webp",
        "a/b.jpg/manifest.json",
        f"a/{tag}/320w.webp",
        "a/b.jpg/320w.webp",
    ):
        assert not keys.is_rendition_of("a/b.jpg", other)
    assert keys.manifest_key("a/b.jpg") == "a/b.jpg/manifest.json"
    assert keys.staging_key("staging/", "abc", "resized/320w.png") == "staging/abc/resized/320w.png"


# -- settings: parsing helpers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "widths"),
    [
        ("2048,1024,320", (2048, 1024, 320)),
        ("320,2048,1024", (2048, 1024, 320)),
        ("320,320,1024", (1024, 320)),
        (" 640 , 320 ,", (640, 320)),
        ("16,16384", (16384, 16)),
        ("1000", (1000,)),
    ],
)
def test_parse_widths(raw: str, widths: tuple[int, ...]) -> None:
    assert parse_widths(raw) == widths


@pytest.mark.parametrize("raw", ["", ",", "abc", "320,abc", "15", "16385", "0", "-320", "320.5", "1e3"])
def test_parse_widths_rejects(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="RENDITION_WIDTHS"):
        parse_widths(raw)


@pytest.mark.parametrize(
    ("raw", "formats"),
    [
        ("jpeg", ("jpeg",)),
        ("jpg", ("jpeg",)),
        ("JPEG, WebP ,avif", ("jpeg", "webp", "avif")),
        ("avif,jpeg", ("avif", "jpeg")),  # the order given
        ("jpeg,jpg,JPEG", ("jpeg",)),
        ("webp,,", ("webp",)),
    ],
)
def test_parse_formats(raw: str, formats: tuple[str, ...]) -> None:
    assert parse_formats(raw) == formats


@pytest.mark.parametrize("raw", ["", ",", " , ", "png", "jpeg,gif", "heic"])
def test_parse_formats_rejects(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="OUTPUT_FORMATS"):
        parse_formats(raw)


# -- settings: from_env ------------------------------------------------------------------------

BUCKETS = {
    "STAGING_BUCKET": "staging-bucket",
    "DESTINATION_BUCKET": "dest-bucket",
    "TOPIC_ARN": "arn:aws:sns:x",
    "IDEMPOTENCY_TABLE": "table",
}


def test_defaults() -> None:
    assert Limits.from_env({}) == Limits(
        max_upload_bytes=50 * 1024 * 1024, max_pixels=50_000_000, upload_prefix="uploads/"
    )
    assert EncodeSettings.from_env({}) == EncodeSettings(
        formats=("jpeg",), jpeg_quality=85, webp_quality=80, avif_quality=60
    )
    wm = WatermarkSettings.from_env({})
    assert wm == WatermarkSettings(text="imgpipe", logo="", position="bottom-right", opacity=0.5, min_width=600)
    assert wm.enabled
    assert not WatermarkSettings.from_env({"WATERMARK_TEXT": ""}).enabled
    staging = Staging(bucket="staging-bucket", prefix="staging/")
    assert Staging.from_env(BUCKETS) == staging
    assert RenditionSettings.from_env(BUCKETS) == RenditionSettings(
        widths=(2048, 1024, 320), max_pixels=50_000_000, staging=staging
    )
    assert StoreSettings.from_env(BUCKETS) == StoreSettings(
        destination_bucket="dest-bucket",
        upload_prefix="uploads/",
        cache_control="public, max-age=31536000, immutable",
        staging=staging,
    )
    assert NotifySettings.from_env(BUCKETS) == NotifySettings(
        topic_arn="arn:aws:sns:x", idempotency_table="table", idempotency_seconds=7 * 24 * 3600
    )


def test_values_from_the_environment() -> None:
    env = {
        **BUCKETS,
        "MAX_UPLOAD_BYTES": "1000",
        "MAX_PIXELS": "200000000",
        "UPLOAD_PREFIX": "in/",
        "STAGING_PREFIX": "tmp/",
        "RENDITION_WIDTHS": "100,50",
        "OUTPUT_FORMATS": "webp,avif",
        "JPEG_QUALITY": "95",
        "WEBP_QUALITY": "1",
        "AVIF_QUALITY": "100",
        "WATERMARK_TEXT": "© me",
        "WATERMARK_LOGO": "logo.png",
        "WATERMARK_POSITION": "center",
        "WATERMARK_OPACITY": "0.25",
        "WATERMARK_MIN_WIDTH": "0",
        "CACHE_CONTROL": "no-cache",
    }
    assert Limits.from_env(env) == Limits(
        max_upload_bytes=1000, max_pixels=200_000_000, upload_prefix="in/", widths=(100, 50), formats=("webp", "avif")
    )
    assert RenditionSettings.from_env(env).widths == (100, 50)
    assert RenditionSettings.from_env(env).staging == Staging(bucket="staging-bucket", prefix="tmp/")
    assert EncodeSettings.from_env(env) == EncodeSettings(
        formats=("webp", "avif"), jpeg_quality=95, webp_quality=1, avif_quality=100
    )
    wm = WatermarkSettings.from_env(env)
    assert wm == WatermarkSettings(text="© me", logo="logo.png", position="center", opacity=0.25, min_width=0)
    assert wm.enabled
    assert StoreSettings.from_env(env).cache_control == "no-cache"


def test_an_empty_prefix_is_allowed() -> None:
    assert Limits.from_env({"UPLOAD_PREFIX": ""}).upload_prefix == ""


@pytest.mark.parametrize("position", POSITIONS)
def test_every_position_is_accepted(position: str) -> None:
    assert WatermarkSettings.from_env({"WATERMARK_POSITION": position}).position == position


@pytest.mark.parametrize(
    ("text", "logo", "opacity", "enabled"),
    [("x", "", 0.5, True), ("", "l.png", 0.5, True), ("", "", 0.5, False), ("x", "l.png", 0.0, False)],
)
def test_watermark_enabled(text: str, logo: str, opacity: float, enabled: bool) -> None:
    assert WatermarkSettings(text, logo, "center", opacity, 0).enabled is enabled


@pytest.mark.parametrize(
    ("settings", "name", "value"),
    [
        (Limits, "MAX_UPLOAD_BYTES", "abc"),
        (Limits, "MAX_UPLOAD_BYTES", ""),
        (Limits, "MAX_UPLOAD_BYTES", "0"),
        (Limits, "MAX_UPLOAD_BYTES", "-5"),
        (Limits, "MAX_UPLOAD_BYTES", "1e6"),
        (Limits, "MAX_UPLOAD_BYTES", str(5 * 1024**3 + 1)),
        (Limits, "MAX_PIXELS", "lots"),
        (Limits, "MAX_PIXELS", "1000000001"),
        (Limits, "UPLOAD_PREFIX", "/uploads/"),
        (Limits, "UPLOAD_PREFIX", "uploads/../"),
        (Limits, "UPLOAD_PREFIX", ".."),
        (Staging, "STAGING_PREFIX", "/staging/"),
        (Staging, "STAGING_PREFIX", "a/../b/"),
        (RenditionSettings, "RENDITION_WIDTHS", "big,small"),
        (RenditionSettings, "RENDITION_WIDTHS", ""),
        (RenditionSettings, "RENDITION_WIDTHS", "8"),
        (RenditionSettings, "MAX_PIXELS", "0"),
        (RenditionSettings, "STAGING_PREFIX", "/x/"),
        (EncodeSettings, "OUTPUT_FORMATS", "png"),
        (EncodeSettings, "OUTPUT_FORMATS", ""),
        (EncodeSettings, "JPEG_QUALITY", "96"),
        (EncodeSettings, "JPEG_QUALITY", "0"),
        (EncodeSettings, "JPEG_QUALITY", "high"),
        (EncodeSettings, "WEBP_QUALITY", "101"),
        (EncodeSettings, "AVIF_QUALITY", "0"),
        (EncodeSettings, "AVIF_QUALITY", "60.5"),
        (WatermarkSettings, "WATERMARK_POSITION", "middle"),
        (WatermarkSettings, "WATERMARK_POSITION", "Bottom-Right"),
        (WatermarkSettings, "WATERMARK_LOGO", "../secret.png"),
        (WatermarkSettings, "WATERMARK_LOGO", "dir/logo.png"),
        (WatermarkSettings, "WATERMARK_LOGO", ".hidden.png"),
        (WatermarkSettings, "WATERMARK_OPACITY", "1.5"),
        (WatermarkSettings, "WATERMARK_OPACITY", "-0.1"),
        (WatermarkSettings, "WATERMARK_OPACITY", "half"),
        (WatermarkSettings, "WATERMARK_OPACITY", "nan"),
        (WatermarkSettings, "WATERMARK_OPACITY", "inf"),
        (WatermarkSettings, "WATERMARK_MIN_WIDTH", "-1"),
        (WatermarkSettings, "WATERMARK_MIN_WIDTH", "16385"),
        (StoreSettings, "UPLOAD_PREFIX", "/in/"),
    ],
)
def test_a_bad_value_names_the_variable(settings: Any, name: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        settings.from_env({**BUCKETS, name: value})
    assert name in str(caught.value)


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        (Staging, "STAGING_BUCKET"),
        (RenditionSettings, "STAGING_BUCKET"),
        (StoreSettings, "DESTINATION_BUCKET"),
        (StoreSettings, "STAGING_BUCKET"),
        (NotifySettings, "TOPIC_ARN"),
    ],
)
def test_a_missing_variable_is_named(settings: Any, name: str) -> None:
    env = {k: v for k, v in BUCKETS.items() if k != name}
    with pytest.raises(ConfigurationError, match=f"{name} is required"):
        settings.from_env(env)


@pytest.mark.parametrize(
    ("name", "value", "field", "parsed"),
    [
        ("MAX_UPLOAD_BYTES", "1", "max_upload_bytes", 1),
        ("MAX_UPLOAD_BYTES", str(5 * 1024**3), "max_upload_bytes", 5 * 1024**3),
        ("MAX_PIXELS", " 1000 ", "max_pixels", 1000),
        ("MAX_PIXELS", "1000000000", "max_pixels", 1_000_000_000),
    ],
)
def test_limits_at_the_bounds(name: str, value: str, field: str, parsed: int) -> None:
    assert getattr(Limits.from_env({name: value}), field) == parsed


@pytest.mark.parametrize("value", ["0", "0.0", "1", "1.0", ".5"])
def test_opacity_bounds(value: str) -> None:
    assert WatermarkSettings.from_env({"WATERMARK_OPACITY": value}).opacity == float(value)


def test_settings_are_frozen() -> None:
    limits = Limits.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.max_pixels = 1  # type: ignore[misc]


def test_output_formats_and_positions() -> None:
    assert OUTPUT_FORMATS == ("jpeg", "webp", "avif")
    assert set(POSITIONS) == {"bottom-right", "bottom-left", "top-right", "top-left", "center"}
