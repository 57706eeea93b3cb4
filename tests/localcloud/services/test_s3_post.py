"""localcloud.services.s3_post against moto itself: each gap still there, each patch closing it (see
conftest.py; moto's server is run in-process through werkzeug's test client, flask-cors included). Then
browser uploads over HTTP, against ``LocalCloud`` (moto's server with every patch applied), with presigned
POSTs made by botocore's ``generate_presigned_post``. The forms, presigned POSTs and answers here serve
test_s3_cors too."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.auth
import botocore.signers
import pytest
import urllib3
from botocore.config import Config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.test import Client

from localcloud.cloud import LocalCloud
from localcloud.services import s3_post
from localcloud.services.s3_post import ACCESS_KEYS
from tests.localcloud.services.helpers import (
    PASS,
    REGION,
    Clients,
    FakeRuntime,
    eventbridge_bucket,
    make_rule,
    make_state_machine,
)

BUCKET = "browser-uploads"
MAX_SIZE = 10

#: A form field: a value, or the file (filename, content, part Content-Type).
FormField = tuple[str, str | tuple[str, bytes, str]]


# -- presigned POSTs and forms ---------------------------------------------------------------------------


def make_signer(endpoint_url: str | None = None, *, version: str = "s3v4", access_key: str = "local") -> Any:
    """A botocore S3 client holding the local cloud's credentials (any access key's: its secret is local's)."""
    return boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=ACCESS_KEYS["local"],
        config=Config(signature_version=version),
    )


def presign(signer: Any, key: str, *, bucket: str = BUCKET, content_type: str = "image/jpeg") -> dict[str, Any]:
    """The presigned POST the HTTP API hands out: an exact key, an exact Content-Type, 1 to MAX_SIZE bytes."""
    post: dict[str, Any] = signer.generate_presigned_post(
        bucket,
        key,
        Fields={"Content-Type": content_type},
        Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, MAX_SIZE]],
    )
    return post


def upload_form(
    presigned: Mapping[str, Any],
    data: bytes = b"jpeg-bytes",
    *,
    replace: Mapping[str, str] | None = None,
    extra: tuple[FormField, ...] = (),
    after_file: tuple[FormField, ...] = (),
) -> list[FormField]:
    """The presigned POST's fields (some replaced), ``extra`` fields, the file, then ``after_file``."""
    fields: list[FormField] = [(name, (replace or {}).get(name, value)) for name, value in presigned["fields"].items()]
    return [*fields, *extra, ("file", ("photo.jpg", data, "application/octet-stream")), *after_file]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # names in lowercase
    body: bytes

    def error(self) -> tuple[str, str]:
        root = ET.fromstring(self.body)
        assert root.tag == "Error", self.body
        return root.findtext("Code", ""), root.findtext("Message", "")

    def element(self, name: str) -> str | None:
        return ET.fromstring(self.body).findtext(name)

    def cors(self) -> dict[str, str]:
        return {name: value for name, value in self.headers.items() if name.startswith("access-control-")}


def answer_of(status: int, headers: Any, body: bytes) -> Answer:
    return Answer(status, {name.lower(): value for name, value in headers.items()}, body)


def moto_app() -> Client:
    """moto's server, in-process: the dispatcher and each service's Flask app, as ThreadedMotoServer runs them."""
    return Client(DomainDispatcherApplication(create_backend_app))


def post_form(app: Client, fields: list[FormField], *, bucket: str = BUCKET, origin: str | None = None) -> Answer:
    body, content_type = urllib3.encode_multipart_formdata(fields)
    headers = {"Origin": origin} if origin else {}
    reply = app.post(f"/{bucket}", data=body, content_type=content_type, headers=headers)
    return answer_of(reply.status_code, reply.headers, reply.data)


def http_post(url: str, fields: list[FormField], *, origin: str | None = None) -> Answer:
    body, content_type = urllib3.encode_multipart_formdata(fields)
    headers = {"Content-Type": content_type, **({"Origin": origin} if origin else {})}
    reply = urllib3.request("POST", url, body=body, headers=headers, retries=False, redirect=False)
    return answer_of(reply.status, reply.headers, reply.data)


def _keys(s3: Any, bucket: str = BUCKET) -> list[str]:
    return [obj["Key"] for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


@pytest.fixture
def frozen_past(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[], Any]], Any]:
    """Run a callable with botocore's clock two hours back: a presigned POST made so (valid for an hour, as
    the default) expired an hour ago, and is signed as botocore signs any."""
    real = vars(botocore.signers)["get_current_datetime"]

    def in_the_past(make: Callable[[], Any]) -> Any:
        def past() -> Any:
            return real() - timedelta(hours=2)

        with monkeypatch.context() as clock:
            clock.setattr(botocore.signers, "get_current_datetime", past)
            clock.setattr(botocore.auth, "get_current_datetime", past)
            return make()

    return in_the_past


# -- the refusals, as S3 answers them --------------------------------------------------------------------

FormMaker = Callable[[Any, str, Callable[[Callable[[], Any]], Any]], list[FormField]]


@dataclass(frozen=True)
class Refusal:
    """A form upload S3 refuses: how it is made (from a signer, its key and the frozen clock), S3's answer."""

    make: FormMaker
    status: int
    code: str
    message: str


def _flipped(signature: str) -> str:
    """Another signature, as hex or base64 (its first character changed)."""
    return ("1" if signature[0] != "1" else "2") + signature[1:]


REFUSALS: dict[str, Refusal] = {
    "wrong signature": Refusal(
        lambda s, key, _: upload_form(
            (p := presign(s, key)), replace={"x-amz-signature": _flipped(p["fields"]["x-amz-signature"])}
        ),
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    ),
    "unknown access key": Refusal(
        lambda s, key, _: upload_form(presign(make_signer(s.meta.endpoint_url, access_key="AKIAUNKNOWN"), key)),
        403,
        "InvalidAccessKeyId",
        "The AWS Access Key Id you provided does not exist in our records.",
    ),
    "tampered key": Refusal(
        lambda s, key, _: upload_form(presign(s, key), replace={"key": "in/someone-elses.jpg"}),
        403,
        "AccessDenied",
        'Invalid according to Policy: Policy Condition failed: ["eq", "$key", "in/tampered key.jpg"]',
    ),
    "tampered Content-Type": Refusal(
        lambda s, key, _: upload_form(presign(s, key), replace={"Content-Type": "text/html"}),
        403,
        "AccessDenied",
        'Invalid according to Policy: Policy Condition failed: ["eq", "$Content-Type", "image/jpeg"]',
    ),
    "over-size": Refusal(
        lambda s, key, _: upload_form(presign(s, key), b"x" * (MAX_SIZE + 1)),
        400,
        "EntityTooLarge",
        "Your proposed upload exceeds the maximum allowed size",
    ),
    "empty file": Refusal(
        lambda s, key, _: upload_form(presign(s, key), b""),
        400,
        "EntityTooSmall",
        "Your proposed upload is smaller than the minimum allowed size",
    ),
    "expired": Refusal(
        lambda s, key, in_the_past: upload_form(in_the_past(lambda: presign(s, key))),
        403,
        "AccessDenied",
        "Invalid according to Policy: Policy expired.",
    ),
    "extra field": Refusal(
        lambda s, key, _: upload_form(presign(s, key), extra=(("x-amz-meta-owner", "mallory"),)),
        403,
        "AccessDenied",
        "Invalid according to Policy: Extra input fields: x-amz-meta-owner",
    ),
    "anonymous": Refusal(
        lambda s, key, _: [("key", key), ("Content-Type", "image/jpeg"), ("file", ("a.jpg", b"jpeg", "image/jpeg"))],
        403,
        "AccessDenied",
        "Access Denied",
    ),
    "fields after the file": Refusal(
        lambda s, key, _: [("file", ("a.jpg", b"jpeg", "image/jpeg")), *presign(s, key)["fields"].items()],
        400,
        "InvalidArgument",
        "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.",
    ),
    "policy of another bucket": Refusal(
        lambda s, key, _: upload_form(presign(s, key, bucket="another-bucket")),
        403,
        "AccessDenied",
        'Invalid according to Policy: Policy Condition failed: ["eq", "$bucket", "another-bucket"]',
    ),
    "key outside the prefix": Refusal(
        lambda s, key, _: upload_form(
            s.generate_presigned_post(BUCKET, "in/${filename}"), replace={"key": "out/${filename}"}
        ),
        403,
        "AccessDenied",
        'Invalid according to Policy: Policy Condition failed: ["starts-with", "$key", "in/"]',
    ),
}


# -- s3_post_policy ----------------------------------------------------------------------------------------


def test_gap_s3_post_policy(unpatched: Clients, frozen_past: Callable[[Callable[[], Any]], Any]) -> None:
    """If this fails, moto fixed the gap:
    drop patch s3_post_policy from localcloud.services.s3_post."""
    c = unpatched
    c.s3.create_bucket(Bucket=BUCKET)
    app, signer = moto_app(), make_signer()

    # Every form upload S3 refuses is stored: moto checks no signature, expiration, condition or field.
    for name, refusal in REFUSALS.items():
        if name != "fields after the file":
            assert post_form(app, refusal.make(signer, f"in/{name}.jpg", frozen_past)).status == 204, name
    stored = set(_keys(c.s3))
    assert {f"in/{name}.jpg" for name in REFUSALS} - stored == {
        "in/tampered key.jpg",  # stored under the tampered key
        "in/fields after the file.jpg",
        "in/key outside the prefix.jpg",  # stored as out/photo.jpg
    }
    assert {"in/someone-elses.jpg", "out/photo.jpg"} <= stored
    assert c.s3.get_object(Bucket=BUCKET, Key="in/over-size.jpg")["ContentLength"] == MAX_SIZE + 1
    assert c.s3.get_object(Bucket=BUCKET, Key="in/tampered Content-Type.jpg")["ContentType"] == "text/html"
    # Fields after the file are read like the others: the key is found and the upload stored.
    fields = REFUSALS["fields after the file"].make(signer, "in/file-first.jpg", frozen_past)
    assert post_form(app, fields).status == 204
    assert "in/file-first.jpg" in _keys(c.s3)
    # A form that is not multipart/form-data is stored too, the "file" field its content.
    reply = app.post(
        f"/{BUCKET}", data="key=in/urlencoded.txt&file=hello", content_type="application/x-www-form-urlencoded"
    )
    assert reply.status_code == 204
    assert c.s3.get_object(Bucket=BUCKET, Key="in/urlencoded.txt")["Body"].read() == b"hello"


def test_patched_s3_post_policy(
    patched: Clients, runtime: FakeRuntime, frozen_past: Callable[[Callable[[], Any]], Any]
) -> None:
    c = patched
    sm = make_state_machine(c, PASS)
    make_rule(c, "created", [{"Id": "sm", "Arn": sm}])
    eventbridge_bucket(c, BUCKET)
    app, signer = moto_app(), make_signer()

    # Each refusal is S3's, stores nothing and sends no event.
    for name, refusal in REFUSALS.items():
        answer = post_form(app, refusal.make(signer, f"in/{name}.jpg", frozen_past))
        assert (answer.status, *answer.error()) == (refusal.status, refusal.code, refusal.message), name
    assert _keys(c.s3) == []
    assert runtime.deliveries == []
    too_large = post_form(app, REFUSALS["over-size"].make(signer, "in/a.jpg", frozen_past))
    assert (too_large.element("ProposedSize"), too_large.element("MaxSizeAllowed")) == (str(MAX_SIZE + 1), "10")
    presigned = presign(signer, "in/a.jpg")
    flipped = _flipped(presigned["fields"]["x-amz-signature"])
    forged = post_form(app, upload_form(presigned, replace={"x-amz-signature": flipped}))
    assert [forged.element(name) for name in ("AWSAccessKeyId", "StringToSign", "SignatureProvided")] == [
        "local",
        presigned["fields"]["policy"],
        flipped,
    ]
    not_a_form = app.post(f"/{BUCKET}", data="key=in/a.jpg&file=x", content_type="application/x-www-form-urlencoded")
    assert not_a_form.status_code == 412
    assert answer_of(412, {}, not_a_form.data).error()[0] == "PreconditionFailed"
    body, content_type = urllib3.encode_multipart_formdata(upload_form(presign(signer, "in/a.jpg")))
    for malformed, sent_type in ((body[: len(body) // 2], content_type), (body, "multipart/form-data")):
        reply = app.post(f"/{BUCKET}", data=malformed, content_type=sent_type)
        assert (reply.status_code, answer_of(400, {}, reply.data).error()[0]) == (400, "MalformedPOSTRequest")

    # The presigned POST as made is stored, its Content-Type the object's, with one Object Created event.
    assert post_form(app, upload_form(presigned)).status == 204
    got = c.s3.get_object(Bucket=BUCKET, Key="in/a.jpg")
    assert (got["ContentType"], got["Body"].read()) == ("image/jpeg", b"jpeg-bytes")
    assert [(e["detail-type"], e["detail"]["object"]["key"]) for _, _, e in runtime.deliveries] == [
        ("Object Created", "in/a.jpg")
    ]

    # Signature Version 2 (botocore's default for presigned POSTs in us-east-1) is checked as well.
    v2 = presign(make_signer(version="s3"), "in/v2.jpg")
    assert set(v2["fields"]) >= {"AWSAccessKeyId", "signature", "policy"}
    assert post_form(app, upload_form(v2)).status == 204
    forged_v2 = post_form(app, upload_form(v2, replace={"signature": _flipped(v2["fields"]["signature"])}))
    assert (forged_v2.status, forged_v2.error()[0]) == (403, "SignatureDoesNotMatch")

    # Names are case-insensitive; x-ignore- fields and anything after the file are not the policy's concern;
    # ${filename} is the file's name; success_action_status is answered as moto answers it.
    prefixed = signer.generate_presigned_post(
        BUCKET,
        "in/${filename}",
        Fields={"success_action_status": "201"},
        Conditions=[{"success_action_status": "201"}, ["content-length-range", 1, MAX_SIZE]],
    )
    renamed = {name.title() if name.startswith("x-amz") else name: value for name, value in prefixed["fields"].items()}
    answer = post_form(
        app, upload_form({"fields": renamed}, extra=(("x-ignore-tracking", "1"),), after_file=(("submit", "Upload"),))
    )
    assert answer.status == 201
    assert "in/photo.jpg" in _keys(c.s3)

    # DeleteObjects is moto's own.
    deleted = c.s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "in/a.jpg"}, {"Key": "in/v2.jpg"}]})
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["in/a.jpg", "in/v2.jpg"]
    assert _keys(c.s3) == ["in/photo.jpg"]


# -- over HTTP, through the local cloud ----------------------------------------------------------------------


@dataclass(frozen=True)
class Cloud:
    running: LocalCloud
    s3: Any  # the local cloud's own client
    signer: Any  # a SigV4 presigner, as the HTTP API makes one

    def url(self, bucket: str = BUCKET) -> str:
        return f"{self.running.endpoint}/{bucket}"


@contextmanager
def running_cloud() -> Iterator[Cloud]:
    """A running ``LocalCloud`` with the bucket created."""
    with LocalCloud(concurrency=1) as running:
        s3 = running.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        yield Cloud(running, s3, make_signer(running.endpoint))


@pytest.fixture
def cloud() -> Iterator[Cloud]:
    with running_cloud() as running:
        yield running


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_refused_over_http(cloud: Cloud, frozen_past: Callable[[Callable[[], Any]], Any], name: str) -> None:
    refusal = REFUSALS[name]
    answer = http_post(cloud.url(), refusal.make(cloud.signer, f"in/{name}.jpg", frozen_past))
    assert (answer.status, *answer.error()) == (refusal.status, refusal.code, refusal.message)
    assert answer.headers["content-type"] == "application/xml"
    assert _keys(cloud.s3) == []


def test_accepted_over_http(cloud: Cloud) -> None:
    presigned = presign(cloud.signer, "in/photo.jpg")
    assert presigned["url"] == cloud.url()
    assert set(presigned["fields"]) == {
        "Content-Type",
        "key",
        "policy",
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-signature",
    }
    answer = http_post(presigned["url"], upload_form(presigned, b"0123456789"))
    assert (answer.status, answer.body) == (204, b"")
    got = cloud.s3.get_object(Bucket=BUCKET, Key="in/photo.jpg")
    assert (got["ContentType"], got["Body"].read()) == ("image/jpeg", b"0123456789")

    # The local cloud's own client presigns with Signature Version 2 (botocore's default in us-east-1).
    v2 = cloud.s3.generate_presigned_post(BUCKET, "in/v2.txt")
    assert "signature" in v2["fields"]
    assert http_post(v2["url"], [*v2["fields"].items(), ("file", ("v2.txt", b"v2", "text/plain"))]).status == 204

    # DeleteObjects still works, and a form that is not multipart/form-data stores nothing.
    deleted = cloud.s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "in/photo.jpg"}]})
    assert [d["Key"] for d in deleted["Deleted"]] == ["in/photo.jpg"]
    not_a_form = urllib3.request(
        "POST",
        cloud.url(),
        body=b"key=in/x.txt&file=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        retries=False,
    )
    assert not_a_form.status == 412
    assert _keys(cloud.s3) == ["in/v2.txt"]


def test_expiration_against_the_policy_clock_over_http(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    """s3_post.now is the clock a policy's expiration is checked against: set past the expiration, a presigned
    POST made a moment ago is refused (no hour waited); set just before it, the same POST is stored."""
    assert abs(s3_post.now() - datetime.now(UTC)) < timedelta(minutes=1), "by default, the time now (in UTC)"
    presigned = presign(cloud.signer, "in/photo.jpg")
    policy = json.loads(base64.b64decode(presigned["fields"]["policy"]))
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)

    monkeypatch.setattr(s3_post, "now", lambda: expires + timedelta(seconds=1))
    refused = http_post(cloud.url(), upload_form(presigned))
    assert (refused.status, *refused.error()) == (403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    assert _keys(cloud.s3) == []

    monkeypatch.setattr(s3_post, "now", lambda: expires - timedelta(seconds=1))
    assert http_post(cloud.url(), upload_form(presigned)).status == 204
    assert _keys(cloud.s3) == ["in/photo.jpg"]
