"""Uploads as the upload API reports them (GET /uploads, GET /uploads/{id}), each with its manifest
read from the destination (``<key below the prefix>/manifest.json``).

The browser uploads through the API itself; the console's server only reads. An upload that has
ended does not change: its view is kept for a few minutes (the rendition URLs are presigned for 15).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote, urlencode

import urllib3
from botocore.exceptions import ClientError

from pipeline import keys

ENDED: Final = frozenset({"SUCCEEDED", "FAILED", "SUPERSEDED", "DELETED"})
KEPT_S: Final = 300.0
MANIFEST_CHARS: Final = 32_000


def waiting(record: dict[str, Any]) -> bool:
    """Whether an upload may still change: processing, or pending while its upload URL is valid."""
    if record.get("status") == "PROCESSING":
        return True
    if record.get("status") != "PENDING":
        return False
    try:
        return datetime.fromisoformat(str(record.get("expiresAt"))) > datetime.now(UTC)
    except ValueError:
        return True


class ApiError(RuntimeError):
    """The upload API did not answer as documented; the message says what it answered."""


class NoSuchUpload(LookupError):
    pass


@dataclass
class UploadsApi:
    """A small reader of the upload API (plain HTTP, as an app uses it)."""

    url: str
    token: str | None = None

    def __post_init__(self) -> None:
        self.http = urllib3.PoolManager(retries=urllib3.Retry(total=2, backoff_factor=0.2, status=0))

    def _get(self, path: str) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            answer = self.http.request("GET", self.url + path, headers=headers, timeout=15.0)
        except urllib3.exceptions.HTTPError as exc:
            raise ApiError(f"the upload API at {self.url} cannot be reached: {exc}") from exc
        try:
            body = json.loads(answer.data or b"null")
        except ValueError:
            body = {"message": answer.data[:200].decode("utf-8", "replace")}
        if answer.status == 404 and isinstance(body, dict) and body.get("error") == "NotFound":
            raise NoSuchUpload(path)
        if answer.status != 200:
            message = body.get("message") if isinstance(body, dict) else body
            raise ApiError(f"GET {path}: the upload API answered {answer.status}: {message}")
        return body

    def newest(self, limit: int, token: str | None = None) -> dict[str, Any]:
        query = {"limit": str(limit), **({"next": token} if token else {})}
        return dict(self._get("/uploads?" + urlencode(query)))

    def one(self, upload_id: str) -> dict[str, Any]:
        return dict(self._get("/uploads/" + quote(upload_id, safe="")))


class Uploads:
    """Views of uploads: the record, renditions with their URLs, the manifest, the execution's name."""

    def __init__(self, api: UploadsApi, s3: Any, destination: str, upload_prefix: str) -> None:
        self.api, self.s3, self.destination, self.prefix = api, s3, destination, upload_prefix
        self._kept: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def newest(self, limit: int = 12, token: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        listed = self.api.newest(limit, token)
        views = [self.view(summary["id"], summary.get("updatedAt")) for summary in listed.get("uploads", [])]
        return [v for v in views if v is not None], listed.get("next")

    def view(self, upload_id: str, updated: str | None = None) -> dict[str, Any] | None:
        with self._lock:
            kept = self._kept.get(upload_id)
        if kept and time.monotonic() - kept[0] < KEPT_S and (updated is None or kept[1].get("updatedAt") == updated):
            return kept[1]
        try:
            record = self.api.one(upload_id)
        except NoSuchUpload:
            return None
        record["manifest"] = self.manifest(record) if record.get("status") == "SUCCEEDED" else None
        record["executionName"] = str(record["execution"]).rsplit(":", 1)[-1] if record.get("execution") else None
        record["name"] = str(record.get("key", "")).rsplit("/", 1)[-1]
        if record.get("status") in ENDED:
            with self._lock:
                self._kept[upload_id] = (time.monotonic(), record)
        return record

    def manifest_key(self, source_key: str) -> str:
        return keys.manifest_key(keys.stem(source_key, self.prefix))

    def manifest(self, record: dict[str, Any]) -> dict[str, Any]:
        """``{"key", "text"}`` of the upload's manifest, or ``{"key", "missing"}`` when there is none."""
        key = self.manifest_key(str(record.get("key", "")))
        try:
            body = self.s3.get_object(Bucket=self.destination, Key=key)["Body"].read()
        except ClientError as exc:
            return {"key": key, "missing": exc.response["Error"].get("Code", "error")}
        try:
            text = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
        except ValueError:
            text = body.decode("utf-8", "replace")
        return {"key": key, "text": text[:MANIFEST_CHARS]}
