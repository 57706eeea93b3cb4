"""Object keys: deterministic, confined to their prefix, within S3's 1024-byte limit."""

from __future__ import annotations

import hashlib
import re
from typing import Final
from urllib.parse import unquote, unquote_plus

MAX_KEY_BYTES: Final = 1024
#: Room kept after the stem for "/<revision tag>/<width>w.<ext>" and "/manifest.json".
_SUFFIX_ROOM: Final = 48
_TAG_CHARS: Final = 16


def decode_event_key(key: str) -> str:
    """Decode a key as S3's classic event notifications write it (form-urlencoded: space as '+', '+' as '%2B')."""
    return unquote_plus(key)


def source_digest(bucket: str, key: str, etag: str) -> str:
    """A stable name for one version of one source object."""
    return hashlib.sha256(f"{bucket}\0{key}\0{etag}".encode()).hexdigest()[:40]


def stem(key: str, upload_prefix: str) -> str:
    """The destination folder for a source key: the key below the upload prefix, when that is safe.

    The result is a relative key that no consumer can read as a path out of its folder: it never
    starts with ``/`` and has no empty, ``.`` or ``..`` segment, neither as written nor once
    percent-decoded, and no backslash. Renditions and the manifest fit in S3's 1024 bytes after it.
    The file name keeps its extension, so ``a.jpg`` and ``a.png`` do not collide.

    Distinct keys get distinct stems. A key below the prefix that is already safe and short keeps
    its readable name exactly; any other key (a traversal segment, a backslash, an over-long name, a
    key outside the prefix, or a name that itself ends like ``~<16 hex digits>``) is cleaned and
    ends in ``~`` and 16 hex digits of the SHA-256 of the whole key: readable, and unique unless
    SHA-256 collides in 64 bits.
    """
    inside = not upload_prefix or key.startswith(upload_prefix)
    relative = key[len(upload_prefix) :] if inside else key
    limit = MAX_KEY_BYTES - _SUFFIX_ROOM
    segments = relative.split("/")
    if (
        inside
        and all(_safe(segment) for segment in segments)
        and not _DIGEST_SUFFIX.search(relative)
        and len(relative.encode()) <= limit
    ):
        return relative
    cleaned = [_clean(segment) for segment in relative.replace("\\", "/").split("/")]
    head = "/".join(segment for segment in cleaned if segment) or "_"
    digest = hashlib.sha256(key.encode()).hexdigest()[:_DIGEST_CHARS]
    room = limit - len(digest) - 1
    head = head.encode()[:room].decode("utf-8", "ignore").rstrip("/") or "_"
    return f"{head}~{digest}"


_DIGEST_CHARS: Final = 16
_DIGEST_SUFFIX: Final = re.compile(r"~[0-9a-f]{16}$")
_DOT_SEGMENTS: Final = frozenset({"", ".", ".."})


def _safe(segment: str) -> bool:
    """A segment no consumer reads as a path step, whether it decodes %-escapes (once) or not."""
    decoded = unquote(segment)
    return segment not in _DOT_SEGMENTS and decoded not in _DOT_SEGMENTS and "\\" not in decoded and "/" not in decoded


def _clean(segment: str) -> str:
    """A safe stand-in for a segment ("" drops it); the digest keeps the stem unique."""
    if segment in _DOT_SEGMENTS:
        return ""
    return segment if _safe(segment) else segment.replace("%", "_")


def revision_tag(revision: str) -> str:
    """The folder of one source revision's renditions: 16 hex digits of the SHA-256 of the revision."""
    return hashlib.sha256(revision.encode()).hexdigest()[:_TAG_CHARS]


def rendition_key(stem_: str, revision: str, width: int, extension: str) -> str:
    """``<stem>/<revision tag>/<width>w.<ext>``: each revision's renditions are objects of their own.

    A rendition is never overwritten by another revision's, so a reader never sees a mix of two
    uploads, and ``Cache-Control: immutable`` is true. The last segment of a rendition key is
    ``<digits>w.<ext>`` and of a manifest ``manifest.json``, and neither a tag nor a name holds a
    ``/``: two keys of the layout are equal only when stem, tag and name are, so no upload's key
    is ever another upload's (stems are distinct for distinct source keys).
    """
    return f"{stem_}/{revision_tag(revision)}/{width}w.{extension}"


_RENDITION_NAME: Final = re.compile(r"[0-9a-f]{16}/[1-9][0-9]{0,4}w\.[a-z]{3,4}")


def is_rendition_of(stem_: str, key: str) -> bool:
    """True when ``key`` has the shape of a rendition of ``stem_`` (checked before deleting a key a manifest names)."""
    return key.startswith(stem_ + "/") and _RENDITION_NAME.fullmatch(key[len(stem_) + 1 :]) is not None


def manifest_key(stem_: str) -> str:
    return f"{stem_}/manifest.json"


def staging_key(prefix: str, digest: str, name: str) -> str:
    return f"{prefix}{digest}/{name}"
