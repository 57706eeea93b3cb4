"""The upload API end to end on the local cloud, as an app uses it: plain HTTP (no AWS SDK) to the
API and to S3's presigned POST, the pipeline behind it, the status record as the steps write it."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from PIL import Image

from localcloud.cloud import LocalCloud
from localcloud.services import s3_post
from tests.integration.conftest import jpeg

pytestmark = pytest.mark.slow

MAX_BYTES = 2_000_000
ORIGIN = "https://app.example"
PARAMETERS = {
    "MaxUploadBytes": str(MAX_BYTES),
    "CorsOrigins": ORIGIN,
    "ApiThrottleRate": "1000",
    "ApiThrottleBurst": "1000",
}
ENDED = ("SUCCEEDED", "FAILED", "DELETED", "SUPERSEDED")


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[LocalCloud, str]]:
    with LocalCloud() as cloud:
        cloud.deploy(PARAMETERS)
        assert cloud.api_url is not None
        yield cloud, cloud.api_url


def create(api_url: str, filename: str = "beach.jpg", content_type: str = "image/jpeg", size: int = 1000) -> Any:
    return requests.post(
        f"{api_url}/uploads", json={"filename": filename, "contentType": content_type, "size": size}, timeout=30
    )


def post_file(upload: dict[str, Any], body: bytes, content_type: str = "image/jpeg", **field_changes: str) -> Any:
    fields = {**upload["fields"], **field_changes}
    return requests.post(upload["url"], data=fields, files={"file": ("photo", body, content_type)}, timeout=60)


def wait_for(status_url: str, states: tuple[str, ...] = ENDED, timeout_s: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record: dict[str, Any] = requests.get(status_url, timeout=30).json()
        if record.get("status") in states:  # a key written straight to S3 has no record until Validate ran
            return record
        time.sleep(0.2)
    raise TimeoutError(f"{status_url} never reached {states}")


def test_create_post_poll_and_download_with_a_plain_http_client(api: tuple[LocalCloud, str]) -> None:
    _, api_url = api
    photo = jpeg(2400, 1600)
    created = create(api_url, "Beach Day.jpg", size=len(photo))
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"id", "key", "upload", "expiresAt", "statusUrl"}
    assert body["key"] == f"uploads/{body['id']}/Beach-Day.jpg"
    assert body["statusUrl"] == f"{api_url}/uploads/{body['id']}"
    assert requests.get(body["statusUrl"], timeout=30).json()["status"] == "PENDING"
    posted = post_file(body["upload"], photo)
    assert posted.status_code == 204, posted.text
    record = wait_for(body["statusUrl"])
    assert record["status"] == "SUCCEEDED", record
    assert record["execution"].startswith("arn:aws:states:")
    assert sorted(r["width"] for r in record["renditions"]) == [320, 1024, 2048]
    for rendition in record["renditions"]:
        got = requests.get(rendition["url"], timeout=30)
        assert got.status_code == 200
        assert len(got.content) == rendition["bytes"]
        with Image.open(io.BytesIO(got.content)) as image:
            assert image.format == "JPEG"
            assert image.width == rendition["width"]
            assert image.height == rendition["height"]
    listed = requests.get(f"{api_url}/uploads", params={"status": "SUCCEEDED"}, timeout=30).json()
    assert body["id"] in [u["id"] for u in listed["uploads"]]


def test_an_unaccepted_type_and_a_malformed_body_are_refused(api: tuple[LocalCloud, str]) -> None:
    _, api_url = api
    refused = create(api_url, "notes.pdf", "application/pdf")
    assert (refused.status_code, refused.json()["error"]) == (400, "UnsupportedContentType")
    malformed = requests.post(f"{api_url}/uploads", data="{not json", timeout=30)
    assert (malformed.status_code, malformed.json()["error"]) == (400, "MalformedJson")
    too_large = create(api_url, size=MAX_BYTES + 1)
    assert (too_large.status_code, too_large.json()["error"]) == (400, "TooLarge")


def _nothing_stored(cloud: LocalCloud, key: str) -> bool:
    listed = cloud.client("s3").list_object_versions(Bucket=cloud.stack.source_bucket, Prefix=key)  # type: ignore[union-attr]
    return not listed.get("Versions") and not listed.get("DeleteMarkers")


def test_s3_refuses_what_the_policy_does_not_allow(
    api: tuple[LocalCloud, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud, api_url = api
    body = create(api_url).json()
    upload, key = body["upload"], body["key"]
    over = post_file(upload, b"\xff" * (MAX_BYTES + 1))
    assert over.status_code == 400
    assert "<Code>EntityTooLarge</Code>" in over.text
    empty = post_file(upload, b"")
    assert empty.status_code == 400
    assert "<Code>EntityTooSmall</Code>" in empty.text
    other_key = post_file(upload, jpeg(), key=key.replace("beach", "other"))
    assert other_key.status_code == 403
    assert "Policy Condition failed" in other_key.text
    other_type = post_file(upload, b"%PDF-1.7", "application/pdf", **{"Content-Type": "application/pdf"})
    assert other_type.status_code == 403
    assert "Policy Condition failed" in other_type.text
    forged = post_file(upload, jpeg(), policy=upload["fields"]["policy"][:-4] + "AAA=")
    assert forged.status_code in (400, 403)
    later = s3_post.now() + timedelta(hours=1)
    monkeypatch.setattr(s3_post, "now", lambda: later)
    expired = post_file(upload, jpeg())
    assert expired.status_code == 403
    assert "Policy expired" in expired.text
    assert _nothing_stored(cloud, key)
    assert requests.get(body["statusUrl"], timeout=30).json()["status"] == "PENDING"


def test_an_unknown_id_is_a_404(api: tuple[LocalCloud, str]) -> None:
    _, api_url = api
    for upload_id in ("0" * 32, "nothing-like-an-id"):
        answer = requests.get(f"{api_url}/uploads/{upload_id}", timeout=30)
        assert (answer.status_code, answer.json()["error"]) == (404, "NotFound")
        answer = requests.delete(f"{api_url}/uploads/{upload_id}", timeout=30)
        assert answer.status_code == 404


def test_cors_preflights_are_answered_for_the_configured_origin_only(api: tuple[LocalCloud, str]) -> None:
    _cloud, api_url = api
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    allowed = requests.options(f"{api_url}/uploads", headers={"Origin": ORIGIN, **ask}, timeout=30)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    other = requests.options(f"{api_url}/uploads", headers={"Origin": "https://evil.example", **ask}, timeout=30)
    assert "access-control-allow-origin" not in other.headers
    upload = create(api_url).json()["upload"]
    to_s3 = requests.options(
        upload["url"], headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}, timeout=30
    )
    assert to_s3.status_code == 200
    assert to_s3.headers["access-control-allow-origin"] == ORIGIN
    refused = requests.options(
        upload["url"], headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, timeout=30
    )
    assert refused.status_code == 403


def test_a_broken_upload_fails_with_its_error_and_reason(api: tuple[LocalCloud, str]) -> None:
    _, api_url = api
    broken = jpeg()[:-2000]
    body = create(api_url, "cut.jpg", size=len(broken)).json()
    assert post_file(body["upload"], broken).status_code == 204
    record = wait_for(body["statusUrl"])
    assert (record["status"], record["error"]) == ("FAILED", "CorruptImage")
    assert record["reason"]
    assert record["renditions"] == []


def test_delete_removes_the_outputs_and_says_deleted(api: tuple[LocalCloud, str]) -> None:
    _cloud, api_url = api
    photo = jpeg()
    body = create(api_url, size=len(photo)).json()
    assert post_file(body["upload"], photo).status_code == 204
    done = wait_for(body["statusUrl"])
    assert done["status"] == "SUCCEEDED"
    assert requests.delete(body["statusUrl"], timeout=30).status_code == 202
    record = wait_for(body["statusUrl"], ("DELETED",))
    assert record["renditions"] == []
    for rendition in done["renditions"]:
        assert requests.get(rendition["url"], timeout=30).status_code == 404


def test_a_plain_s3_upload_has_a_status_found_by_its_key(api: tuple[LocalCloud, str]) -> None:
    cloud, api_url = api
    key = "uploads/holiday/by-cli.jpg"
    cloud.client("s3").put_object(Bucket=cloud.stack.source_bucket, Key=key, Body=jpeg())  # type: ignore[union-attr]
    record_id = "s3-" + hashlib.sha256(key.encode()).hexdigest()[:32]
    record = wait_for(f"{api_url}/uploads/{record_id}")
    assert (record["status"], record["key"]) == ("SUCCEEDED", key)
