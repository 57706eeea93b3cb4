"""Object keys: deterministic, confined to their prefix, within S3's 1024-byte limit."""

from __future__ import annotations

import hashlib
from typing import Final
from urllib.parse import unquote_plus

MAX_KEY_BYTES: Final = 1024
#: Room kept after the stem for "/<width>w.<ext>" and "/manifest.json".
_SUFFIX_ROOM: Final = 32


def decode_event_key(key: str) -> str:
    """Decode a key as S3's classic event notifications write it (form-urlencoded: space as '+', '+' as '%2B')."""
    return unquote_plus(key)


def source_digest(bucket: str, key: str, etag: str) -> str:
    """A stable name for one version of one source object."""
    return hashlib.sha256(f"{bucket}\0{key}\0{etag}".encode()).hexdigest()[:40]


def stem(key: str, upload_prefix: str) -> str:
    """The destination folder for a source key: the key below the upload prefix.

    Empty, ``.`` and ``..`` segments are dropped so that a key can never address a
    place outside its own folder (for S3 consumers that treat keys as paths). The
    file name keeps its extension, so ``a.jpg`` and ``a.png`` do not collide.
    Over-long stems are shortened and made unique with a hash of the full key.
    """
    relative = key[len(upload_prefix) :] if upload_prefix and key.startswith(upload_prefix) else key
    segments = [s for s in relative.replace("\\", "/").split("/") if s not in ("", ".", "..")]
    result = "/".join(segments) or "_"
    limit = MAX_KEY_BYTES - _SUFFIX_ROOM
    if len(result.encode()) > limit:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        head = result.encode()[: limit - len(digest) - 1].decode("utf-8", "ignore").rstrip("/")
        result = f"{head}~{digest}"
    return result


def rendition_key(stem_: str, width: int, extension: str) -> str:
    return f"{stem_}/{width}w.{extension}"


def manifest_key(stem_: str) -> str:
    return f"{stem_}/manifest.json"


def staging_key(prefix: str, digest: str, name: str) -> str:
    return f"{prefix}{digest}/{name}"
