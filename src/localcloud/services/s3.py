"""S3: buckets from CloudFormation, conditional writes, and the events S3 sends to EventBridge.

Patches: ``cfn_bucket_eventbridge``, ``cfn_bucket_versioning``, ``cfn_bucket_cors``, ``s3_eventbridge_event_shape``,
``s3_conditional_writes_atomic``, ``s3_delete_if_match_any``, ``s3_multipart_one_created_event``,
``s3_versioned_deletion_event``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from moto.s3 import notifications as s3_notifications
from moto.s3.exceptions import MissingKey
from moto.s3.models import FakeBucket, FakeKey, S3Backend
from moto.s3.responses import S3Response
from werkzeug.datastructures import Headers

from localcloud.patching import Patch, original
from localcloud.services import eventbridge

# -- cfn_bucket_eventbridge, cfn_bucket_versioning, cfn_bucket_cors ----------------------------------------


def _bucket_from_cfn(
    cls: Any,
    /,
    resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> FakeBucket:
    """moto 5.2.5 ignores a bucket's NotificationConfiguration, VersioningConfiguration and
    CorsConfiguration in CloudFormation (the bucket is created unversioned, without EventBridge
    notifications, without CORS rules)."""
    create = original(FakeBucket, "create_from_cloudformation_json").__func__
    bucket: FakeBucket = create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    properties = cloudformation_json.get("Properties", {})
    config = properties.get("NotificationConfiguration", {})
    if config.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled") in (True, "true", "True"):
        bucket.set_notification_configuration({"EventBridgeConfiguration": {}})
    status = properties.get("VersioningConfiguration", {}).get("Status")
    if status in ("Enabled", "Suspended"):
        bucket.versioning_status = status
    rules = properties.get("CorsConfiguration", {}).get("CorsRules")
    if rules:
        bucket.set_cors([_cors_rule(rule) for rule in rules])
    return bucket


def _cors_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation CorsRule (AllowedOrigins, ...) as the S3 API's CORSRule (AllowedOrigin, ...)."""
    converted: dict[str, Any] = {
        "AllowedMethod": list(rule["AllowedMethods"]),
        "AllowedOrigin": list(rule["AllowedOrigins"]),
    }
    for plural, singular in (("AllowedHeaders", "AllowedHeader"), ("ExposedHeaders", "ExposeHeader")):
        if rule.get(plural):
            converted[singular] = list(rule[plural])
    if "MaxAge" in rule:
        converted["MaxAgeSeconds"] = str(rule["MaxAge"])
    if "Id" in rule:
        converted["ID"] = str(rule["Id"])
    return converted


# -- s3_eventbridge_event_shape -----------------------------------------------------------------------------

#: ``deletion-type`` of an Object Deleted event, by the S3 event name moto sends.
_DELETION_TYPES = {
    "s3:ObjectRemoved:Delete": "Permanently Deleted",
    "s3:ObjectRemoved:DeleteMarkerCreated": "Delete Marker Created",
}


def s3_object_event(account_id: str, bucket: Any, event_name: str, key: Any) -> dict[str, Any]:
    """The EventBridge event S3 sends (https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html).

    An Object Deleted event names no size or ETag; its reason is the API (``DeleteObject``) and its
    ``deletion-type`` says whether a delete marker was created or a version removed for good.
    """
    detail_type = s3_notifications._detail_type(event_name)
    obj: dict[str, Any] = {"key": key.name}
    if detail_type != "Object Deleted":
        obj.update(size=key.size, etag=key.etag.replace('"', ""))
    obj["sequencer"] = f"{int(datetime.now(UTC).timestamp() * 1e6):016X}"
    if key.version_id and key.version_id != "null":
        obj["version-id"] = key.version_id
    extra: dict[str, str] = {}
    if event_name in _DELETION_TYPES:
        extra = {"reason": "DeleteObject", "deletion-type": _DELETION_TYPES[event_name]}
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": bucket.region_name,
        "resources": [bucket.arn],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket.name},
            "object": obj,
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": account_id,
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject" if event_name.endswith("Put") else event_name.rsplit(":", maxsplit=1)[-1],
            **extra,
        },
    }


def _send_event_bridge_message(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
    """moto 5.2.5 writes ``eTag`` (AWS: ``etag``), a float ``time``, a fixed ``id``, sends to
    every bus (AWS: the default bus) and swallows every error on the way."""
    event = s3_object_event(account_id, bucket, event_name, key)
    eventbridge.put_on_default_bus(account_id, bucket.region_name, event)


# -- s3_conditional_writes_atomic ------------------------------------------------------------------------------


class KeyLocks:
    """One reentrant lock per object (account, bucket, key), kept while anyone holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str, str], tuple[threading.RLock, int]] = {}

    @contextmanager
    def hold(self, key: tuple[str, str, str]) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key) or (threading.RLock(), 0)
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)


#: The objects' locks of the local cloud in this process.
KEY_LOCKS = KeyLocks()


def _requested_object(response: S3Response) -> tuple[str, str, str]:
    return (response.backend.account_id, response.bucket_name, response.parse_key_name())


def _s3_response_put_object(self: S3Response) -> Any:
    """moto 5.2.5 checks PutObject's If-Match and If-None-Match, then writes, with nothing between the
    two: two requests that read the same ETag can both pass the check and both write, where S3 lets
    one of them through and fails the other (412 PreconditionFailed, or 409 ConditionalRequestConflict
    while the first is in flight). Here the check and the write hold the object's lock, which every
    write and delete of that object takes (the backend's put_object and delete_object, so also copies
    and completed multipart uploads): the second request is checked against what the first wrote."""
    with KEY_LOCKS.hold(_requested_object(self)):
        return original(S3Response, "put_object")(self)


def _s3_response_delete_object(self: S3Response) -> Any:
    """DeleteObject's If-Match check and the delete, under the object's lock (see _s3_response_put_object),
    with ``If-Match: *`` taken as S3 takes it: moto 5.2.5 compares ``*`` with the ETag (_delete_if_match_any)."""
    with KEY_LOCKS.hold(_requested_object(self)):
        return _delete_if_match_any(self)


def _s3_backend_put_object(self: S3Backend, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> FakeKey:
    """Every write of an object holds its lock (see _s3_response_put_object)."""
    with KEY_LOCKS.hold((self.account_id, bucket_name, key_name)):
        key: FakeKey = original(S3Backend, "put_object")(self, bucket_name, key_name, *args, **kwargs)
        return key


def _s3_backend_delete_object(self: S3Backend, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
    """Every deletion of an object holds its lock (see _s3_response_put_object), and sends the Object Deleted
    event moto 5.2.5 does not send in a versioned bucket (_versioned_deletion_event)."""
    with KEY_LOCKS.hold((self.account_id, bucket_name, key_name)):
        result = original(S3Backend, "delete_object")(self, bucket_name, key_name, *args, **kwargs)
        version_id = kwargs.get("version_id", args[0] if args else None)
        _versioned_deletion_event(self, bucket_name, key_name, version_id, result)
        return result


# -- s3_delete_if_match_any ---------------------------------------------------------------------------------


def _delete_if_match_any(self: S3Response) -> Any:
    """moto 5.2.5 compares ``If-Match: *`` with the object's ETag and answers 412 PreconditionFailed;
    S3 takes ``*`` for any ETag: DeleteObject deletes the object (404 NoSuchKey when there is none)."""
    delete = original(S3Response, "delete_object")
    if self.headers.get("If-Match") != "*":
        return delete(self)
    if self.backend.get_object(self.bucket_name, self.parse_key_name()) is None:
        raise MissingKey
    headers = self.headers
    self.headers = Headers([(name, value) for name, value in headers.items() if name.lower() != "if-match"])
    try:
        return delete(self)
    finally:
        self.headers = headers


# -- s3_multipart_one_created_event ----------------------------------------------------------------------------


class _QuietPuts:
    """An S3 backend whose put_object sends no event; everything else is the backend's own."""

    def __init__(self, backend: S3Backend) -> None:
        self._backend = backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def put_object(self, *args: Any, **kwargs: Any) -> FakeKey:
        return self._backend.put_object(*args, **{**kwargs, "disable_notification": True})


def _complete_multipart_upload(self: S3Backend, bucket_name: str, multipart_id: str, body: Any) -> FakeKey | None:
    """moto 5.2.5 sends two Object Created events for a completed multipart upload: one for the
    put_object it makes inside (reason PutObject), then its own (reason CompleteMultipartUpload).
    S3 sends one, with reason CompleteMultipartUpload. Here the inner put sends nothing."""
    complete = original(S3Backend, "complete_multipart_upload")
    key: FakeKey | None = complete(_QuietPuts(self), bucket_name, multipart_id, body)
    return key


# -- s3_versioned_deletion_event ----------------------------------------------------------------------------------


class _RemovedVersion:
    """The object a permanent deletion names (its key and the version removed)."""

    def __init__(self, name: str, version_id: str) -> None:
        self.name = name
        self.version_id = version_id


def _versioned_deletion_event(
    backend: S3Backend, bucket_name: str, key_name: str, version_id: Any, result: Any
) -> None:
    """moto 5.2.5 sends no event when DeleteObject creates a delete marker in a versioned bucket, and
    for a permanent deletion of one version only when it was the key's last. S3 sends Object Deleted
    for both: ``deletion-type`` "Delete Marker Created" (``version-id`` the marker's) or "Permanently
    Deleted" (``version-id`` the version removed). Runs inside the object's lock."""
    deleted, meta = result
    bucket = backend.get_bucket(bucket_name)
    if not deleted or not bucket.is_versioned:
        return  # unversioned: moto sends its Permanently Deleted event itself
    if version_id is None and meta.get("delete-marker") == "true":
        marker = bucket.keys.get(key_name)
        event, key = s3_notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT, marker
    elif version_id is not None and bucket.keys.getlist(key_name, []):
        event, key = (
            s3_notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_EVENT,
            _RemovedVersion(key_name, str(version_id)),
        )
    else:
        return  # the key's last version: moto sent the event
    s3_notifications.send_event(backend.account_id, event, bucket, key)


_ATOMIC = "s3_conditional_writes_atomic"

PATCHES = (
    Patch(
        ("cfn_bucket_eventbridge", "cfn_bucket_versioning", "cfn_bucket_cors"),
        FakeBucket,
        "create_from_cloudformation_json",
        classmethod(_bucket_from_cfn),
    ),
    Patch(("s3_eventbridge_event_shape",), s3_notifications, "_send_event_bridge_message", _send_event_bridge_message),
    Patch((_ATOMIC,), S3Response, "put_object", _s3_response_put_object),
    Patch((_ATOMIC, "s3_delete_if_match_any"), S3Response, "delete_object", _s3_response_delete_object),
    Patch((_ATOMIC,), S3Backend, "put_object", _s3_backend_put_object),
    Patch((_ATOMIC, "s3_versioned_deletion_event"), S3Backend, "delete_object", _s3_backend_delete_object),
    Patch(("s3_multipart_one_created_event",), S3Backend, "complete_multipart_upload", _complete_multipart_upload),
)


def reset() -> None:
    """Nothing is kept between runs (an object's lock lives while it is held)."""
