"""``imgpipe upload``: the upload API used as any app uses it, over plain HTTP (no AWS SDK): request an
upload, POST the file to S3 with the presigned form, then (with ``--wait``) poll its status."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import urllib3

from pipeline import formats

#: What polling stops at: the outcomes of an upload.
ENDED: Final = frozenset({"SUCCEEDED", "FAILED", "SUPERSEDED", "DELETED"})


class UploadError(Exception):
    """The API or S3 refused an upload; the message says which and why."""


@dataclass
class Uploaded:
    file: Path
    id: str = ""
    status: str = ""
    error: str | None = None
    reason: str | None = None
    status_url: str = ""
    renditions: list[dict[str, Any]] = field(default_factory=list)


def content_type(path: Path) -> str:
    """The file's type, from its first bytes (as the pipeline reads it), never from its name."""
    with path.open("rb") as file:
        head = file.read(64)
    found = formats.sniff(head)
    if found is None:
        raise UploadError(f"{path}: not an image the pipeline reads ({formats.describe_other(head)})")
    return formats.CONTENT_TYPES[found]


class Client:
    def __init__(self, api_url: str, token: str | None = None, http: urllib3.PoolManager | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = http or urllib3.PoolManager(retries=urllib3.Retry(total=3, backoff_factor=0.2, status=0))

    def _json(self, method: str, url: str, body: Any = None) -> tuple[int, Any]:
        answer = self.http.request(method, url, json=body, headers=self.headers, timeout=30.0)
        try:
            return answer.status, json.loads(answer.data or b"null")
        except ValueError:
            return answer.status, {"message": answer.data[:200].decode("utf-8", "replace")}

    def create(self, path: Path) -> dict[str, Any]:
        request = {"filename": path.name, "contentType": content_type(path), "size": path.stat().st_size}
        code, body = self._json("POST", f"{self.api_url}/uploads", request)
        if code != 201:
            raise UploadError(
                f"{path}: the API answered {code}: {body.get('message') if isinstance(body, dict) else body}"
            )
        return dict(body)

    def post(self, path: Path, upload: dict[str, Any], kind: str) -> None:
        fields: dict[str, Any] = dict(upload["fields"])
        fields["file"] = (path.name, path.read_bytes(), kind)
        answer = self.http.request("POST", upload["url"], fields=fields, timeout=300.0)
        if answer.status not in (200, 201, 204):
            raise UploadError(
                f"{path}: S3 refused the upload ({answer.status}): {answer.data[:300].decode('utf-8', 'replace')}"
            )

    def status(self, status_url: str) -> dict[str, Any]:
        code, body = self._json("GET", status_url)
        if code != 200:
            raise UploadError(f"{status_url}: the API answered {code}")
        return dict(body)


def upload(
    client: Client,
    paths: Sequence[Path],
    *,
    wait: bool,
    timeout_s: float = 600.0,
    on_change: Callable[[Uploaded], None] = lambda _u: None,
) -> list[Uploaded]:
    """Upload every file (each refusal recorded on its own), then, with ``wait``, poll until each ends."""
    results = []
    for path in paths:
        result = Uploaded(path)
        try:
            created = client.create(path)
            result.id, result.status_url, result.status = created["id"], created["statusUrl"], "PENDING"
            client.post(path, created["upload"], content_type(path))
        except UploadError as exc:
            result.status, result.reason = "REFUSED", str(exc)
        on_change(result)
        results.append(result)
    deadline = time.monotonic() + timeout_s
    pending = [r for r in results if r.status_url and wait]
    while pending and time.monotonic() < deadline:
        for result in list(pending):
            record = client.status(result.status_url)
            result.status, result.error, result.reason = record["status"], record["error"], record["reason"]
            result.renditions = record["renditions"]
            if result.status in ENDED:
                pending.remove(result)
                on_change(result)
        if pending:
            time.sleep(0.25)
    for result in pending:
        result.reason = f"still {result.status} after {timeout_s:.0f} s"
    return results
