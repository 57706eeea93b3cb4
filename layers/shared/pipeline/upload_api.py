"""The upload API's four operations: S3 and the status table around the pure decisions of
``pipeline.uploads``. Each API handler calls one of these."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from pipeline import status, uploads
from pipeline.settings import ApiSettings
from pipeline.storage import S3Store, StatusTable

#: A PENDING record stays this long after its upload URL expired (DynamoDB TTL), then goes.
PENDING_KEPT_S: Final = 7 * 24 * 3600


class NotFound(LookupError):
    """No upload has this id (the API answers 404)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create(
    body: str | None,
    base_url: str,
    *,
    settings: ApiSettings,
    s3: S3Store,
    table: StatusTable,
    now: Callable[[], datetime] | None = None,
    random_hex: Callable[[], str] = lambda: uuid.uuid4().hex,
) -> dict[str, Any]:
    """``POST /uploads``: an id, its key, a presigned POST pinned to them, and a PENDING record."""
    request = uploads.parse_request(body, settings.max_upload_bytes)
    upload_id = status.new_id(random_hex())
    key = uploads.upload_key(settings.status.upload_prefix, upload_id, request.filename)
    fields, conditions = uploads.post_conditions(request, settings.max_upload_bytes)
    moment = (now or _utc_now)()
    expires = uploads.expiry(moment, settings.url_expiry_s)
    post = s3.presigned_post(settings.source_bucket, key, fields, conditions, settings.url_expiry_s)
    table.create_pending(
        status.pending(
            upload_id,
            key,
            created_at=moment.isoformat(timespec="milliseconds"),
            expires_at=uploads.iso(expires),
            expires_epoch=int(expires.timestamp()),
            keep_s=PENDING_KEPT_S,
        )
    )
    return uploads.created_body(upload_id, key, post, expires, f"{base_url}/uploads/{upload_id}")


def _record(upload_id: str, table: StatusTable) -> status.Record:
    record = table.get(upload_id) if status.is_id(upload_id) else None
    if record is None:
        raise NotFound(f"no upload has the id {upload_id[:80]!r}")
    return record


def read(upload_id: str, settings: ApiSettings, s3: S3Store, table: StatusTable) -> dict[str, Any]:
    """``GET /uploads/{id}``: the record, with a presigned GET for each rendition."""
    record = _record(upload_id, table)
    return uploads.view(record, lambda key: s3.presigned_get(settings.destination_bucket, key, settings.url_expiry_s))


def newest(params: Mapping[str, str] | None, table: StatusTable) -> dict[str, Any]:
    """``GET /uploads``: records newest first, optionally of one status, a page at a time."""
    query = uploads.parse_list_query(params)
    records, last = table.newest(query.status, query.limit, query.start)
    return {"uploads": [uploads.summary(r) for r in records], "next": uploads.encode_token(last)}


def delete(upload_id: str, settings: ApiSettings, s3: S3Store, table: StatusTable) -> dict[str, Any]:
    """``DELETE /uploads/{id}``: delete the source; its deletion event runs the pipeline's delete path,
    which removes the outputs and records DELETED."""
    record = _record(upload_id, table)
    s3.delete_key(settings.source_bucket, record.key)
    return {"id": record.id, "key": record.key, "status": record.status}


class UploadApi:
    """The operations above with this function's settings, S3 client and status table (made once, at cold start)."""

    def __init__(self, settings: ApiSettings, s3: S3Store, table: StatusTable) -> None:
        self.settings, self.s3, self.table = settings, s3, table

    @classmethod
    def of(cls, settings: ApiSettings) -> UploadApi:
        return cls(settings, S3Store.create(), StatusTable.create(settings.status))

    def create(self, body: str | None, base_url: str) -> dict[str, Any]:
        return create(body, base_url, settings=self.settings, s3=self.s3, table=self.table)

    def read(self, upload_id: str) -> dict[str, Any]:
        return read(upload_id, self.settings, self.s3, self.table)

    def newest(self, params: Mapping[str, str] | None) -> dict[str, Any]:
        return newest(params, self.table)

    def delete(self, upload_id: str) -> dict[str, Any]:
        return delete(upload_id, self.settings, self.s3, self.table)
