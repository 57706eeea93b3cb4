"""localcloud.services.s3_cors against moto itself: each gap still there, each patch closing it (see
conftest.py; moto's server is run in-process through werkzeug's test client, flask-cors included). Then a
browser's preflight and upload over HTTP, against ``LocalCloud`` (moto's server with every patch applied).
The forms, presigned POSTs and answers are test_s3_post's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import urllib3
from werkzeug.test import Client

from tests.localcloud.services.helpers import Clients
from tests.localcloud.services.test_s3_post import (
    BUCKET,
    Answer,
    Cloud,
    answer_of,
    http_post,
    make_signer,
    moto_app,
    post_form,
    presign,
    running_cloud,
    upload_form,
)

ORIGIN = "https://app.example.test"


# -- s3_cors_preflight -------------------------------------------------------------------------------------

CORS_RULES = [
    {"AllowedOrigins": ["https://admin.example.test"], "AllowedMethods": ["GET"]},
    {
        "AllowedOrigins": ["https://*.example.test"],
        "AllowedMethods": ["POST", "GET"],
        "AllowedHeaders": ["content-type", "x-amz-*"],
        "ExposeHeaders": ["ETag"],
        "MaxAgeSeconds": 600,
    },
]


def _preflight(app: Client, path: str, origin: str | None, method: str | None, headers: str = "") -> Answer:
    sent = {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}
    reply = app.options(path, headers={name: value for name, value in sent.items() if value})
    return answer_of(reply.status_code, reply.headers, reply.data)


def test_gap_s3_cors_preflight(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap:
    drop patch s3_cors_preflight from localcloud.services.s3_cors."""
    c = unpatched
    c.s3.create_bucket(Bucket=BUCKET)
    app = moto_app()

    # A bucket without CORS rules: the preflight passes, for any origin.
    open_door = _preflight(app, f"/{BUCKET}", "https://evil.test", "POST")
    assert open_door.status == 200
    assert open_door.headers["access-control-allow-origin"] == "https://evil.test"

    c.s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": CORS_RULES})
    # The second rule allows this preflight, but the first rule's origins miss it: refused.
    refused = _preflight(app, f"/{BUCKET}", ORIGIN, "POST", "content-type")
    assert refused.status == 403
    assert refused.error()[0] == "AccessForbidden"
    # Neither rule allows this header, yet the origins match both: allowed.
    allowed = _preflight(app, f"/{BUCKET}", "https://admin.example.test", "POST", "x-custom")
    assert allowed.status == 200
    assert allowed.headers["access-control-allow-origin"] == "https://admin.example.test"


def test_patched_s3_cors_preflight(patched: Clients) -> None:
    c = patched
    c.s3.create_bucket(Bucket=BUCKET)
    app = moto_app()

    def refused(answer: Answer) -> tuple[int, str, str]:
        assert answer.cors() == {}
        return (answer.status, *answer.error())

    assert refused(_preflight(app, f"/{BUCKET}", ORIGIN, "POST")) == (
        403,
        "AccessForbidden",
        "CORSResponse: CORS is not enabled for this bucket.",
    )
    assert refused(_preflight(app, "/no-such-bucket", ORIGIN, "POST")) == (
        403,
        "AccessForbidden",
        "CORSResponse: Bucket not found",
    )

    c.s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": CORS_RULES})
    for path in (f"/{BUCKET}", f"/{BUCKET}/in/photo.jpg"):
        answer = _preflight(app, path, ORIGIN, "POST", "Content-Type, x-amz-meta-owner")
        assert answer.status == 200, answer.body
        assert answer.cors() == {
            "access-control-allow-origin": ORIGIN,
            "access-control-allow-credentials": "true",
            "access-control-allow-methods": "POST, GET",
            "access-control-allow-headers": "content-type, x-amz-meta-owner",
            "access-control-expose-headers": "ETag",
            "access-control-max-age": "600",
        }
        assert answer.headers["vary"] == "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
    # The first rule that matches: the admin origin's GET is the first rule's, its POST the second's.
    admin_get = _preflight(app, f"/{BUCKET}", "https://admin.example.test", "GET")
    assert admin_get.cors()["access-control-allow-methods"] == "GET"
    assert "access-control-max-age" not in admin_get.cors()
    assert _preflight(app, f"/{BUCKET}", "https://admin.example.test", "POST").status == 200
    not_allowed = (
        "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request "
        "method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the "
        "resource's CORS spec."
    )
    for origin, method, headers in (
        (ORIGIN, "PUT", ""),  # no rule allows the method
        (ORIGIN, "POST", "x-custom"),  # nor the header
        ("https://evil.test", "POST", ""),  # nor the origin
        ("https://example.test", "POST", ""),  # the wildcard stands for a subdomain here
    ):
        assert refused(_preflight(app, f"/{BUCKET}", origin, method, headers)) == (
            403,
            "AccessForbidden",
            not_allowed,
        ), (origin, method, headers)
    assert refused(_preflight(app, f"/{BUCKET}", None, "POST"))[:2] == (400, "BadRequest")
    assert refused(_preflight(app, f"/{BUCKET}", ORIGIN, None))[:2] == (400, "BadRequest")

    # A rule open to every origin answers "*", without credentials.
    c.s3.put_bucket_cors(
        Bucket=BUCKET, CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["POST"]}]}
    )
    anyone = _preflight(app, f"/{BUCKET}", "https://evil.test", "POST")
    assert anyone.cors() == {"access-control-allow-origin": "*", "access-control-allow-methods": "POST"}


# -- s3_cors_response_headers ----------------------------------------------------------------------------------

#: Any Authorization header: moto lets a signed GetObject through (it checks no signature).
SIGNED = {"Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/s3/aws4_request, Signature=x"}


def _get(app: Client, path: str, origin: str | None) -> Answer:
    reply = app.get(path, headers={**SIGNED, **({"Origin": origin} if origin else {})})
    return answer_of(reply.status_code, reply.headers, reply.data)


def test_gap_s3_cors_response_headers(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap:
    drop patch s3_cors_response_headers from localcloud.services.s3_cors."""
    c = unpatched
    c.s3.create_bucket(Bucket=BUCKET)
    c.s3.put_object(Bucket=BUCKET, Key="in/a.jpg", Body=b"a")
    app = moto_app()

    # No CORS rules: moto's server lets every origin read every answer.
    listing = _get(app, f"/{BUCKET}", "https://evil.test")
    assert listing.cors()["access-control-allow-origin"] == "https://evil.test"
    upload = post_form(app, [("key", "in/b.jpg"), ("file", ("b.jpg", b"b", "image/jpeg"))], origin="https://evil.test")
    assert upload.cors()["access-control-allow-origin"] == "https://evil.test"

    # A rule for PUT only: GetObject's answer still names the origin (the rule's methods are not checked).
    c.s3.put_bucket_cors(
        Bucket=BUCKET, CORSConfiguration={"CORSRules": [{"AllowedOrigins": [ORIGIN], "AllowedMethods": ["PUT"]}]}
    )
    got = _get(app, f"/{BUCKET}/in/a.jpg", ORIGIN)
    assert got.status == 200
    assert got.cors()["access-control-allow-origin"] == ORIGIN


def test_patched_s3_cors_response_headers(patched: Clients) -> None:
    c = patched
    c.s3.create_bucket(Bucket=BUCKET)
    c.s3.put_object(Bucket=BUCKET, Key="in/a.jpg", Body=b"a")
    app, signer = moto_app(), make_signer()

    # No CORS rules: no CORS headers.
    assert _get(app, f"/{BUCKET}", "https://evil.test").cors() == {}
    assert post_form(app, upload_form(presign(signer, "in/b.jpg")), origin="https://evil.test").cors() == {}

    c.s3.put_bucket_cors(
        Bucket=BUCKET, CORSConfiguration={"CORSRules": [{"AllowedOrigins": [ORIGIN], "AllowedMethods": ["PUT"]}]}
    )
    assert _get(app, f"/{BUCKET}/in/a.jpg", ORIGIN).cors() == {}, "a rule for PUT says nothing of GET"

    c.s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": CORS_RULES})
    expected = {
        "access-control-allow-origin": ORIGIN,
        "access-control-allow-credentials": "true",
        "access-control-allow-methods": "POST, GET",
        "access-control-expose-headers": "ETag",
        "access-control-max-age": "600",
    }
    assert _get(app, f"/{BUCKET}/in/a.jpg", ORIGIN).cors() == expected
    assert _get(app, f"/{BUCKET}", ORIGIN).cors() == expected
    assert _get(app, f"/{BUCKET}/in/a.jpg", None).cors() == {}, "no Origin, no CORS"
    assert _get(app, f"/{BUCKET}/in/a.jpg", "https://evil.test").cors() == {}
    # A form upload's answer, and its refusal's (the browser reads why).
    accepted = post_form(app, upload_form(presign(signer, "in/c.jpg")), origin=ORIGIN)
    assert (accepted.status, accepted.cors()) == (204, expected)
    refused = post_form(app, upload_form(presign(signer, "in/d.jpg"), b""), origin=ORIGIN)
    assert (refused.status, refused.cors()) == (400, expected)

    # Other services keep moto's server-wide CORS.
    sns = app.post(
        "/",
        data="Action=ListTopics",
        headers={
            "Authorization": "AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/sns/aws4_request, Signature=x",
            "Origin": "https://evil.test",
        },
        content_type="application/x-www-form-urlencoded",
    )
    assert sns.status_code == 200
    assert sns.headers["Access-Control-Allow-Origin"] == "https://evil.test"


# -- over HTTP, through the local cloud ----------------------------------------------------------------------


@pytest.fixture
def cloud() -> Iterator[Cloud]:
    with running_cloud() as running:
        yield running


def test_browser_cors_over_http(cloud: Cloud) -> None:
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    denied = urllib3.request("OPTIONS", cloud.url(), headers=preflight, retries=False)
    assert denied.status == 403
    assert "access-control-allow-origin" not in {name.lower() for name in denied.headers}
    upload = upload_form(presign(cloud.signer, "in/photo.jpg"))
    assert "access-control-allow-origin" not in http_post(cloud.url(), upload, origin=ORIGIN).headers

    cloud.s3.put_bucket_cors(
        Bucket=BUCKET,
        CORSConfiguration={
            "CORSRules": [{"AllowedOrigins": [ORIGIN], "AllowedMethods": ["POST"], "MaxAgeSeconds": 60}]
        },
    )
    allowed = urllib3.request("OPTIONS", cloud.url(), headers=preflight, retries=False)
    assert allowed.status == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert allowed.headers.getlist("Access-Control-Allow-Origin") == [ORIGIN], "one value: browsers refuse more"
    answer = http_post(cloud.url(), upload, origin=ORIGIN)
    assert answer.status == 204
    assert answer.headers["access-control-allow-origin"] == ORIGIN
