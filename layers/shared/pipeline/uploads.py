"""The upload API's decisions, without AWS: what a request may ask for, the key and the presigned
POST's conditions it gets, and how a status record is shown.

``BadRequest`` carries the API's ``error`` code and a message that says what to change; the handlers
answer it with 400.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from pipeline import status
from pipeline.status import Record

#: The Content-Types an upload may declare: the formats Validate reads (docs/errors-and-outcomes.md).
ACCEPTED_TYPES: Final = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/gif": "gif",
    "image/tiff": "tiff",
    "image/avif": "avif",
    "image/bmp": "bmp",
    "image/heic": "heic",
    "image/heif": "heif",
}
MAX_FILENAME_BYTES: Final = 200
#: Characters kept in a key's file name; anything else becomes "-".
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]+")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
MAX_LIST_LIMIT: Final = 100
DEFAULT_LIST_LIMIT: Final = 50


class BadRequest(ValueError):
    """A request the API refuses with 400: ``error`` names the problem, the message says what to change."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error


@dataclass(frozen=True, slots=True)
class UploadRequest:
    filename: str
    content_type: str
    size: int


def parse_request(body: str | None, max_upload_bytes: int) -> UploadRequest:
    """``{"filename", "contentType", "size"}`` checked field by field."""
    try:
        document = json.loads(body or "")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("MalformedJson", "the body must be a JSON object") from None
    if not isinstance(document, dict):
        raise BadRequest("MalformedJson", "the body must be a JSON object")
    unknown = sorted(set(document) - {"filename", "contentType", "size"})
    if unknown:
        raise BadRequest("UnknownField", f"unknown field(s): {', '.join(unknown)}")
    filename = document.get("filename")
    if not isinstance(filename, str) or not filename.strip():
        raise BadRequest("InvalidFilename", "filename is required: the name of the file to upload")
    content_type = document.get("contentType")
    if not isinstance(content_type, str) or content_type.lower() not in ACCEPTED_TYPES:
        raise BadRequest(
            "UnsupportedContentType",
            f"contentType must be one of {', '.join(ACCEPTED_TYPES)}, got {str(content_type)[:60]!r}",
        )
    size = document.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise BadRequest("InvalidSize", "size must be the file's size in bytes, a whole number of at least 1")
    if size > max_upload_bytes:
        raise BadRequest("TooLarge", f"size {size} is over the limit of {max_upload_bytes} bytes")
    return UploadRequest(safe_filename(filename, content_type.lower()), content_type.lower(), size)


def safe_filename(name: str, content_type: str) -> str:
    """The name the key ends with: ASCII letters, digits, ``.``, ``_`` and ``-``.

    Refused (``InvalidFilename``): a path (``/`` or ``\\``), ``.`` or ``..``, control characters,
    more than ``MAX_FILENAME_BYTES`` bytes. Accents are dropped, other characters become ``-``; a
    name with nothing left becomes ``upload.<extension of the content type>``.
    """
    if "/" in name or "\\" in name:
        raise BadRequest("InvalidFilename", "filename must be a file name, not a path")
    if _CONTROL.search(name):
        raise BadRequest("InvalidFilename", "filename must not contain control characters")
    if name.strip() in (".", ".."):
        raise BadRequest("InvalidFilename", "filename must name a file")
    if len(name.encode("utf-8")) > MAX_FILENAME_BYTES:
        raise BadRequest("InvalidFilename", f"filename is longer than {MAX_FILENAME_BYTES} bytes")
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    cleaned = _UNSAFE.sub("-", ascii_name.strip()).strip("-.")
    if not cleaned or not any(c.isalnum() for c in cleaned):
        return f"upload.{ACCEPTED_TYPES[content_type]}"
    return cleaned


def upload_key(upload_prefix: str, upload_id: str, filename: str) -> str:
    return f"{upload_prefix}{upload_id}/{filename}"


def post_conditions(request: UploadRequest, max_upload_bytes: int) -> tuple[dict[str, str], list[Any]]:
    """The presigned POST's fields and conditions beside the key and bucket (which the presigner pins):
    the exact Content-Type and 1 to ``max_upload_bytes`` bytes."""
    fields = {"Content-Type": request.content_type}
    conditions: list[Any] = [{"Content-Type": request.content_type}, ["content-length-range", 1, max_upload_bytes]]
    return fields, conditions


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def expiry(now: datetime, seconds: int) -> datetime:
    return now + timedelta(seconds=seconds)


def created_body(
    upload_id: str, key: str, post: Mapping[str, Any], expires_at: datetime, status_url: str
) -> dict[str, Any]:
    return {
        "id": upload_id,
        "key": key,
        "upload": {"url": post["url"], "fields": dict(post["fields"])},
        "expiresAt": iso(expires_at),
        "statusUrl": status_url,
    }


def view(record: Record, rendition_url: Any) -> dict[str, Any]:
    """A record as ``GET /uploads/{id}`` shows it; ``rendition_url(key)`` presigns a rendition's GET."""
    return {
        "id": record.id,
        "key": record.key,
        "status": record.status,
        "error": record.error,
        "reason": record.reason,
        "renditions": [
            {
                "width": r["width"],
                "height": r["height"],
                "format": r["format"],
                "bytes": r["bytes"],
                "url": rendition_url(r["key"]),
            }
            for r in record.renditions
        ],
        "execution": record.execution or None,
        "createdAt": record.created_at,
        "updatedAt": record.updated_at,
        "expiresAt": record.expires_at if record.status == status.PENDING else None,
    }


def summary(record: Record) -> dict[str, Any]:
    """A record as ``GET /uploads`` lists it (no URLs: one GET per upload presigns them)."""
    return {
        "id": record.id,
        "key": record.key,
        "status": record.status,
        "error": record.error,
        "createdAt": record.created_at,
        "updatedAt": record.updated_at,
    }


@dataclass(frozen=True, slots=True)
class ListQuery:
    status: str | None
    limit: int
    start: dict[str, Any] | None


def parse_list_query(params: Mapping[str, str] | None) -> ListQuery:
    params = params or {}
    unknown = sorted(set(params) - {"status", "limit", "next"})
    if unknown:
        raise BadRequest("UnknownParameter", f"unknown query parameter(s): {', '.join(unknown)}")
    wanted = params.get("status")
    if wanted is not None and wanted not in status.STATUSES:
        raise BadRequest("InvalidStatus", f"status must be one of {', '.join(status.STATUSES)}")
    raw_limit = params.get("limit", str(DEFAULT_LIST_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIST_LIMIT:
        raise BadRequest("InvalidLimit", f"limit must be a whole number from 1 to {MAX_LIST_LIMIT}")
    token = params.get("next")
    return ListQuery(wanted, int(raw_limit), decode_token(token) if token else None)


def encode_token(last_key: Mapping[str, Any] | None) -> str | None:
    if not last_key:
        return None
    return base64.urlsafe_b64encode(json.dumps(last_key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any]:
    """A ``next`` token back to the query's start key; anything not made by ``encode_token`` is refused."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        start = json.loads(raw)
    except (binascii.Error, ValueError):
        raise BadRequest("InvalidToken", "next must be a token from an earlier page") from None
    fields = {"id", "listing", "status", "createdAt"}
    ok = (
        isinstance(start, dict)
        and set(start) <= fields
        and "id" in start
        and all(isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) for v in start.values())
    )
    if not ok:
        raise BadRequest("InvalidToken", "next must be a token from an earlier page")
    return dict(start)
