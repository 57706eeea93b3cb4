"""The upload API's handlers on moto: API Gateway payload 2.0 in, the API's JSON out, the status table
and S3 as template.yaml declares them."""

from __future__ import annotations

import copy
import json
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pipeline import status
from tests.conftest import Cloud, FakeLambdaContext

EVENT: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "events" / "api" / "create-upload.json").read_text()
)


def request(method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> dict[str, Any]:
    event = copy.deepcopy(EVENT)
    route = {"/uploads": "/uploads"}.get(path, "/uploads/{id}")
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {route}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["body"] = body if body is None or isinstance(body, str) else json.dumps(body)
    if route != "/uploads":
        event["pathParameters"] = {"id": path.rsplit("/", 1)[1]}
    if query:
        event["queryStringParameters"] = query
        event["rawQueryString"] = urllib.parse.urlencode(query)
    return event


def call(handler: ModuleType, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = handler.lambda_handler(event, FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def api(load_handler: Callable[..., ModuleType]) -> dict[str, ModuleType]:
    return {name: load_handler(f"uploads_{name}") for name in ("create", "read", "delete")}


def test_the_event_fixture_is_a_create_request_that_succeeds(api: dict[str, ModuleType], cloud: Cloud) -> None:
    code, body = call(api["create"], EVENT)
    assert code == 201
    upload_id = body["id"]
    assert status.is_id(upload_id)
    assert not upload_id.startswith("s3-")
    assert body["key"] == f"{cloud.upload_prefix}{upload_id}/beach.jpg"
    assert body["statusUrl"] == f"https://abcdef1234.execute-api.us-east-1.amazonaws.com/uploads/{upload_id}"
    fields = body["upload"]["fields"]
    assert fields["key"] == body["key"]
    assert fields["Content-Type"] == "image/jpeg"
    assert cloud.source_bucket in body["upload"]["url"]
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    assert fields["x-amz-signature"]
    import base64

    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    assert {"key": body["key"]} in conditions
    assert {"bucket": cloud.source_bucket} in conditions
    assert {"Content-Type": "image/jpeg"} in conditions
    assert ["content-length-range", 1, int(cloud.refs["MaxUploadBytes"])] in conditions
    code, record = call(api["read"], request("GET", f"/uploads/{upload_id}"))
    assert code == 200
    assert (record["status"], record["key"], record["renditions"]) == ("PENDING", body["key"], [])
    assert record["expiresAt"] == body["expiresAt"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("{not json", "MalformedJson"),
        ({"filename": "a/b.jpg", "contentType": "image/jpeg", "size": 1}, "InvalidFilename"),
        ({"filename": "a.pdf", "contentType": "application/pdf", "size": 1}, "UnsupportedContentType"),
        ({"filename": "a.jpg", "contentType": "image/jpeg", "size": 10**12}, "TooLarge"),
    ],
)
def test_a_bad_create_request_is_a_400_and_records_nothing(
    api: dict[str, ModuleType], cloud: Cloud, body: Any, error: str
) -> None:
    code, answer = call(api["create"], request("POST", "/uploads", body))
    assert (code, answer["error"]) == (400, error)
    assert answer["message"]
    assert cloud.dynamodb.scan(TableName=cloud.refs["StatusTable"])["Count"] == 0


def test_an_unknown_or_malformed_id_is_a_404(api: dict[str, ModuleType]) -> None:
    for upload_id in ("0" * 32, "s3-" + "0" * 32, "not-an-id", "%2e%2e"):
        code, answer = call(api["read"], request("GET", f"/uploads/{upload_id}"))
        assert (code, answer["error"]) == (404, "NotFound")
        code, answer = call(api["delete"], request("DELETE", f"/uploads/{upload_id}"))
        assert (code, answer["error"]) == (404, "NotFound")


def test_renditions_come_with_presigned_urls(api: dict[str, ModuleType], cloud: Cloud) -> None:
    _, created = call(api["create"], EVENT)
    key = "beach/r1/1024w.jpg"
    cloud.s3.put_object(Bucket=cloud.destination_bucket, Key=key, Body=b"jpeg")
    table = api["read"].API.table
    outputs = [{"key": key, "width": 1024, "height": 768, "format": "jpeg", "bytes": 4}]
    assert table.record(
        status.Update(created["key"], status.SUCCEEDED, "r1", "0A", "arn:exec", "t", renditions=outputs)  # type: ignore[arg-type]
    )
    code, record = call(api["read"], request("GET", f"/uploads/{created['id']}"))
    assert code == 200
    assert record["status"] == "SUCCEEDED"
    assert record["execution"] == "arn:exec"
    (rendition,) = record["renditions"]
    assert {k: rendition[k] for k in ("width", "height", "format", "bytes")} == {
        "width": 1024,
        "height": 768,
        "format": "jpeg",
        "bytes": 4,
    }
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(rendition["url"]).query)
    assert "X-Amz-Signature" in query
    assert query["X-Amz-Expires"] == [cloud.refs["UploadUrlExpirySeconds"]]
    assert urllib.parse.unquote(urllib.parse.urlsplit(rendition["url"]).path).endswith(key)
    assert record["expiresAt"] is None


def test_listing_is_newest_first_filtered_and_paged(
    api: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = []
    for minute in range(5):
        monkeypatch.setattr(
            "pipeline.upload_api._utc_now",
            lambda minute=minute: __import__("datetime").datetime(
                2026, 1, 1, 0, minute, tzinfo=__import__("datetime").UTC
            ),
        )
        ids.append(call(api["create"], EVENT)[1]["id"])
    table = api["read"].API.table
    key_of = {i: call(api["read"], request("GET", f"/uploads/{i}"))[1]["key"] for i in ids}
    assert table.record(status.Update(key_of[ids[1]], status.FAILED, "v", "01", "e", "t", error="CorruptImage"))
    seen: list[str] = []
    page: dict[str, str] = {"limit": "2"}
    while True:
        code, answer = call(api["read"], request("GET", "/uploads", query=page))
        assert code == 200
        assert len(answer["uploads"]) <= 2
        seen += [u["id"] for u in answer["uploads"]]
        if not answer["next"]:
            break
        page = {"limit": "2", "next": answer["next"]}
    assert seen == ids[::-1]
    code, failed = call(api["read"], request("GET", "/uploads", query={"status": "FAILED"}))
    assert [(u["id"], u["status"], u["error"]) for u in failed["uploads"]] == [(ids[1], "FAILED", "CorruptImage")]
    code, answer = call(api["read"], request("GET", "/uploads", query={"next": "garbage!"}))
    assert (code, answer["error"]) == (400, "InvalidToken")


def test_delete_removes_the_source_as_a_delete_marker(api: dict[str, ModuleType], cloud: Cloud) -> None:
    _, created = call(api["create"], EVENT)
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=created["key"], Body=b"jpeg")
    code, answer = call(api["delete"], request("DELETE", f"/uploads/{created['id']}"))
    assert code == 202
    assert answer["id"] == created["id"]
    versions = cloud.s3.list_object_versions(Bucket=cloud.source_bucket, Prefix=created["key"])
    assert [m["IsLatest"] for m in versions.get("DeleteMarkers", [])] == [True]
    assert len(versions["Versions"]) == 1, (
        "the upload itself stays as a noncurrent version (the lifecycle rule expires it)"
    )
