"""Configuration from environment variables, parsed once at cold start.

Each function builds only the settings it uses (``Limits.from_env()`` and so on) at
import time, so a misconfigured function fails at init with a ConfigurationError that
names the variable, instead of failing later on the first image.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Final

from pipeline.errors import ConfigurationError

OUTPUT_FORMATS: Final = ("jpeg", "webp", "avif")
#: File extension and Content-Type of each output format.
OUTPUT_EXTENSIONS: Final = {"jpeg": "jpg", "webp": "webp", "avif": "avif"}
OUTPUT_CONTENT_TYPES: Final = {"jpeg": "image/jpeg", "webp": "image/webp", "avif": "image/avif"}
POSITIONS: Final = ("bottom-right", "bottom-left", "top-right", "top-left", "center")


def _get(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name, default)
    if value is None:
        raise ConfigurationError(f"environment variable {name} is required")
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    raw = _get(env, name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not an integer") from None
    if not minimum <= value <= maximum:
        raise ConfigurationError(f"{name}={value} is outside {minimum}..{maximum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float, maximum: float) -> float:
    raw = _get(env, name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from None
    if not minimum <= value <= maximum:
        raise ConfigurationError(f"{name}={value} is outside {minimum}..{maximum}")
    return value


def _prefix(env: Mapping[str, str], name: str, default: str) -> str:
    value = _get(env, name, default)
    if value.startswith("/") or ".." in value.split("/"):
        raise ConfigurationError(f"{name}={value!r} must be a relative key prefix")
    return value


def parse_widths(raw: str, name: str = "RENDITION_WIDTHS") -> tuple[int, ...]:
    """Parse ``"2048,1024,320"`` into distinct widths, largest first."""
    try:
        widths = {int(part) for part in raw.split(",") if part.strip()}
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} must be comma-separated integers") from None
    if not widths or any(not 16 <= w <= 16384 for w in widths):
        raise ConfigurationError(f"{name}={raw!r} needs one or more widths in 16..16384")
    return tuple(sorted(widths, reverse=True))


def parse_formats(raw: str, name: str = "OUTPUT_FORMATS") -> tuple[str, ...]:
    """Parse ``"jpeg,webp"`` into distinct output formats, in the order given."""
    formats: list[str] = []
    for part in raw.split(","):
        fmt = part.strip().lower()
        if fmt == "jpg":
            fmt = "jpeg"
        if not fmt:
            continue
        if fmt not in OUTPUT_FORMATS:
            raise ConfigurationError(f"{name}: {fmt!r} is not one of {', '.join(OUTPUT_FORMATS)}")
        if fmt not in formats:
            formats.append(fmt)
    if not formats:
        raise ConfigurationError(f"{name}={raw!r} names no output format")
    return tuple(formats)


@dataclass(frozen=True, slots=True)
class Limits:
    """What the validate step accepts: the upload's size and pixels, and renditions (``widths``, in
    every one of ``formats``) that fit the output formats."""

    #: The defaults of RENDITION_WIDTHS and OUTPUT_FORMATS, for every setting that reads them (template.yaml's
    #: parameter defaults; tests/template checks that the two agree).
    DEFAULT_WIDTHS: ClassVar[str] = "2048,1024,320"
    DEFAULT_FORMATS: ClassVar[str] = "jpeg"

    max_upload_bytes: int
    max_pixels: int
    upload_prefix: str
    widths: tuple[int, ...] = field(default=parse_widths(DEFAULT_WIDTHS))
    formats: tuple[str, ...] = field(default=parse_formats(DEFAULT_FORMATS))

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Limits:
        return cls(
            max_upload_bytes=_int(env, "MAX_UPLOAD_BYTES", 50 * 1024 * 1024, 1, 5 * 1024**3),
            max_pixels=_int(env, "MAX_PIXELS", 50_000_000, 1, 1_000_000_000),
            upload_prefix=_prefix(env, "UPLOAD_PREFIX", "uploads/"),
            widths=parse_widths(_get(env, "RENDITION_WIDTHS", cls.DEFAULT_WIDTHS)),
            formats=parse_formats(_get(env, "OUTPUT_FORMATS", cls.DEFAULT_FORMATS)),
        )


@dataclass(frozen=True, slots=True)
class Source:
    """Where uploads come from: the only bucket and prefix an execution may name."""

    bucket: str
    upload_prefix: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Source:
        return cls(bucket=_get(env, "SOURCE_BUCKET"), upload_prefix=_prefix(env, "UPLOAD_PREFIX", "uploads/"))


@dataclass(frozen=True, slots=True)
class Staging:
    """Where intermediates live between steps."""

    bucket: str
    prefix: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Staging:
        return cls(bucket=_get(env, "STAGING_BUCKET"), prefix=_prefix(env, "STAGING_PREFIX", "staging/"))


@dataclass(frozen=True, slots=True)
class RenditionSettings:
    widths: tuple[int, ...]
    max_pixels: int
    staging: Staging

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> RenditionSettings:
        return cls(
            widths=parse_widths(_get(env, "RENDITION_WIDTHS", Limits.DEFAULT_WIDTHS)),
            max_pixels=_int(env, "MAX_PIXELS", 50_000_000, 1, 1_000_000_000),
            staging=Staging.from_env(env),
        )


@dataclass(frozen=True, slots=True)
class EncodeSettings:
    formats: tuple[str, ...]
    jpeg_quality: int
    webp_quality: int
    avif_quality: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> EncodeSettings:
        return cls(
            formats=parse_formats(_get(env, "OUTPUT_FORMATS", Limits.DEFAULT_FORMATS)),
            jpeg_quality=_int(env, "JPEG_QUALITY", 85, 1, 95),
            webp_quality=_int(env, "WEBP_QUALITY", 80, 1, 100),
            avif_quality=_int(env, "AVIF_QUALITY", 60, 1, 100),
        )


@dataclass(frozen=True, slots=True)
class WatermarkSettings:
    text: str
    logo: str
    position: str
    opacity: float
    min_width: int

    @property
    def enabled(self) -> bool:
        return bool(self.text or self.logo) and self.opacity > 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> WatermarkSettings:
        position = _get(env, "WATERMARK_POSITION", "bottom-right")
        if position not in POSITIONS:
            raise ConfigurationError(f"WATERMARK_POSITION={position!r} is not one of {', '.join(POSITIONS)}")
        logo = _get(env, "WATERMARK_LOGO", "")
        if "/" in logo or logo.startswith("."):
            raise ConfigurationError(f"WATERMARK_LOGO={logo!r} must be a file name in the layer's assets")
        return cls(
            text=_get(env, "WATERMARK_TEXT", "imgpipe"),
            logo=logo,
            position=position,
            opacity=_float(env, "WATERMARK_OPACITY", 0.5, 0.0, 1.0),
            min_width=_int(env, "WATERMARK_MIN_WIDTH", 600, 0, 16384),
        )


@dataclass(frozen=True, slots=True)
class StoreSettings:
    destination_bucket: str
    upload_prefix: str
    cache_control: str
    staging: Staging

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> StoreSettings:
        return cls(
            destination_bucket=_get(env, "DESTINATION_BUCKET"),
            upload_prefix=_prefix(env, "UPLOAD_PREFIX", "uploads/"),
            cache_control=_get(env, "CACHE_CONTROL", "public, max-age=31536000, immutable"),
            staging=Staging.from_env(env),
        )


@dataclass(frozen=True, slots=True)
class NotifySettings:
    topic_arn: str
    idempotency_table: str
    idempotency_seconds: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> NotifySettings:
        return cls(
            topic_arn=_get(env, "TOPIC_ARN"),
            idempotency_table=_get(env, "IDEMPOTENCY_TABLE"),
            idempotency_seconds=_int(env, "IDEMPOTENCY_SECONDS", 7 * 24 * 3600, 60, 366 * 24 * 3600),
        )


@dataclass(frozen=True, slots=True)
class RemoveSettings:
    """The remove step: where the outputs are (as Store writes them) and where messages go (as Notify sends them)."""

    store: StoreSettings
    notify: NotifySettings

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> RemoveSettings:
        return cls(store=StoreSettings.from_env(env), notify=NotifySettings.from_env(env))


#: How old an upload must be before the reconciler restarts it (its own event may not have started it yet).
DEFAULT_MIN_AGE_SECONDS: Final = 300


@dataclass(frozen=True, slots=True)
class ReconcileSettings:
    """What the reconciler compares and where it starts executions (parsed once, at cold start)."""

    source_bucket: str
    upload_prefix: str
    destination_bucket: str
    state_machine_arn: str
    min_age_seconds: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ReconcileSettings:
        return cls(
            source_bucket=_get(env, "SOURCE_BUCKET"),
            upload_prefix=_prefix(env, "UPLOAD_PREFIX", "uploads/"),
            destination_bucket=_get(env, "DESTINATION_BUCKET"),
            state_machine_arn=_get(env, "STATE_MACHINE_ARN"),
            min_age_seconds=_int(env, "RECONCILE_MIN_AGE_SECONDS", DEFAULT_MIN_AGE_SECONDS, 0, 86_400),
        )


@dataclass(frozen=True, slots=True)
class StatusSettings:
    """The status table of the uploads (``pipeline.status``) and the prefix their keys are under."""

    table: str
    upload_prefix: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> StatusSettings:
        return cls(table=_get(env, "STATUS_TABLE"), upload_prefix=_prefix(env, "UPLOAD_PREFIX", "uploads/"))


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """The upload API: where uploads go, how long a presigned POST or GET lasts, the size limit."""

    source_bucket: str
    destination_bucket: str
    max_upload_bytes: int
    url_expiry_s: int
    status: StatusSettings

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ApiSettings:
        return cls(
            source_bucket=_get(env, "SOURCE_BUCKET"),
            destination_bucket=_get(env, "DESTINATION_BUCKET"),
            max_upload_bytes=_int(env, "MAX_UPLOAD_BYTES", 50 * 1024 * 1024, 1, 5 * 1024**3),
            url_expiry_s=_int(env, "UPLOAD_URL_EXPIRY_SECONDS", 900, 60, 7 * 24 * 3600),
            status=StatusSettings.from_env(env),
        )
