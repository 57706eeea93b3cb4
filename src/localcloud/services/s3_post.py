"""S3 browser uploads: a POST Object stored only if its signed POST policy allows it.

Patches: ``s3_post_policy`` (a form upload is checked as S3 checks it: signature, expiration, every
condition, the fields no condition covers, anonymous uploads, the file last).

What S3 does is taken from AWS's documentation: POST Object (RESTObjectPOST) and the POST policy
(sigv4-HTTPPOSTConstructPolicy, sigv4-post-example, sigv4-authentication-HTTPPOST; HTTPPOSTForms for
Signature Version 2, which botocore still uses for presigned POSTs in us-east-1 unless the client asks for
``s3v4``). Where those pages say nothing (the messages of most errors), the answers S3 gave as others
recorded them. ``Refusal`` writes an S3 error answer; s3_cors answers with it too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final
from xml.sax.saxutils import escape

from moto.s3.models import FakeBucket
from moto.s3.responses import S3Response
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.http import parse_options_header

from localcloud.patching import Patch, original

#: The credentials the local cloud hands out (cloud.aws_client, LocalCloud._worker_env), secret by access key:
#: a POST policy signed with any other access key is refused (InvalidAccessKeyId).
ACCESS_KEYS: Final[Mapping[str, str]] = MappingProxyType({"local": "local"})

Response = tuple[int, dict[str, Any], str | bytes]


class Refusal(Exception):
    """S3's refusal of a request, raised where it is found; ``response()`` is S3's error answer:
    ``<Error><Code/><Message/>(details)<RequestId/><HostId/></Error>``."""

    def __init__(self, status: int, code: str, message: str, **details: str | int) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def response(self) -> Response:
        request_id = uuid.uuid4().hex[:16].upper()
        elements = [("Code", self.code), ("Message", self.message), *self.details.items()]
        elements += [("RequestId", request_id), ("HostId", base64.b64encode(secrets.token_bytes(48)).decode())]
        inner = "".join(f"<{name}>{escape(str(value))}</{name}>" for name, value in elements)
        body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{inner}</Error>'
        return self.status, {"Content-Type": "application/xml"}, body


# -- s3_post_policy ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Form:
    """A form upload as S3 reads it: the fields before the file (names as sent, in order), the file."""

    fields: tuple[tuple[str, str], ...]
    file: bytes | None
    filename: str | None  # None: the file part names no file (S3 then leaves ``${filename}`` as it is)


def _parse_form(content_type: str, raw: bytes) -> _Form:
    """The multipart/form-data body (RFC 7578: CRLF line breaks), up to the part named ``file``: S3 ignores
    every field after it. Parts are found with ``bytes.find``: a 50 MB file is not scanned by a regex."""
    _, options = parse_options_header(content_type)
    boundary = options.get("boundary", "").encode()
    malformed = Refusal(
        400, "MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data."
    )
    delimiter = b"\r\n--" + boundary
    position = raw.find(delimiter[2:])
    if not boundary or position < 0:
        raise malformed
    position += len(delimiter) - 2
    fields: list[tuple[str, str]] = []
    while not raw.startswith(b"--", position):  # the close delimiter ends the body
        headers_start = raw.find(b"\r\n", position) + 2  # after the delimiter line (and its padding)
        blank = raw.find(b"\r\n\r\n", headers_start - 2)
        end = raw.find(delimiter, blank + 4)
        if headers_start < 2 or blank < 0 or end < 0:
            raise malformed
        disposition = ""
        for line in raw[headers_start:blank].decode("utf-8", "replace").split("\r\n"):
            header, _, value = line.partition(":")
            if header.strip().lower() == "content-disposition":
                disposition = value.strip()
        _, parameters = parse_options_header(disposition)
        name, filename = parameters.get("name"), parameters.get("filename")
        if not name:
            raise malformed
        data = raw[blank + 4 : end]
        if name.lower() == "file":
            return _Form(tuple(fields), data, filename)
        fields.append((name, data.decode("utf-8", "replace")))
        position = end + len(delimiter)
    return _Form(tuple(fields), None, None)


def _missing_field(name: str) -> Refusal:
    return Refusal(
        400,
        "InvalidArgument",
        f"Bucket POST must contain a field named '{name}'.  If it is specified, please check the order of the fields.",
        ArgumentName=name,
        ArgumentValue="",
    )


def _signing_key(secret: str, date: str, region: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _signature_mismatch(access_key: str, policy: str, provided: str) -> Refusal:
    return Refusal(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
        AWSAccessKeyId=access_key,
        StringToSign=policy,
        SignatureProvided=provided,
        StringToSignBytes=" ".join(f"{byte:02x}" for byte in policy.encode()),
    )


def _secret(access_key: str) -> str:
    secret = ACCESS_KEYS.get(access_key)
    if secret is None:
        raise Refusal(
            403,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            AWSAccessKeyId=access_key,
        )
    return secret


def _check_sigv4(fields: Mapping[str, str], bucket: FakeBucket) -> None:
    """Signature Version 4: the hex HMAC-SHA256 of the base64 policy, as sent, under the key derived from the
    secret, the credential's date and region, and ``s3`` (sigv4-authentication-HTTPPOST)."""
    for name in ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Signature", "Policy"):
        if name.lower() not in fields:
            raise _missing_field(name)
    algorithm, credential = fields["x-amz-algorithm"], fields["x-amz-credential"]
    if algorithm != "AWS4-HMAC-SHA256":
        raise Refusal(
            400,
            "InvalidArgument",
            'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"',
            ArgumentName="X-Amz-Algorithm",
            ArgumentValue=algorithm,
        )
    scope = credential.split("/")
    if len(scope) != 5 or not scope[0] or scope[3:] != ["s3", "aws4_request"]:
        raise Refusal(
            400,
            "InvalidArgument",
            'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
            ArgumentName="X-Amz-Credential",
            ArgumentValue=credential,
        )
    access_key, date, region = scope[:3]
    secret = _secret(access_key)
    if region != bucket.region_name:
        raise Refusal(
            400,
            "InvalidArgument",
            f"the region '{region}' is wrong; expecting '{bucket.region_name}'",
            ArgumentName="X-Amz-Credential",
            ArgumentValue=credential,
            Region=bucket.region_name,
        )
    policy, provided = fields["policy"], fields["x-amz-signature"]
    expected = hmac.new(_signing_key(secret, date, region), policy.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), provided.encode()):
        raise _signature_mismatch(access_key, policy, provided)


def _check_sigv2(fields: Mapping[str, str]) -> None:
    """Signature Version 2: the base64 HMAC-SHA1 of the base64 policy under the secret (HTTPPOSTForms)."""
    for name in ("AWSAccessKeyId", "Signature", "Policy"):
        if name.lower() not in fields:
            raise _missing_field(name)
    access_key, policy, provided = fields["awsaccesskeyid"], fields["policy"], fields["signature"]
    secret = _secret(access_key)
    expected = base64.b64encode(hmac.new(secret.encode(), policy.encode(), hashlib.sha1).digest()).decode()
    if not hmac.compare_digest(expected.encode(), provided.encode()):
        raise _signature_mismatch(access_key, policy, provided)


def _invalid_policy(message: str) -> Refusal:
    return Refusal(400, "InvalidPolicyDocument", f"Invalid Policy: {message}")


_EXPIRATION = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")


def now() -> datetime:
    """The time a policy's expiration is checked against (a test sets another)."""
    return datetime.now(UTC)


def _decoded_policy(policy: str) -> tuple[datetime, list[Any]]:
    """The policy's expiration and conditions (both required)."""
    try:
        document = json.loads(base64.b64decode(policy, validate=True).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _invalid_policy("Invalid JSON.") from None
    if not isinstance(document, dict):
        raise _invalid_policy("Invalid JSON.")
    if "expiration" not in document:
        raise _invalid_policy("Policy missing expiration.")
    if "conditions" not in document:
        raise _invalid_policy("Policy missing conditions.")
    expiration, conditions = document["expiration"], document["conditions"]
    try:
        if not isinstance(expiration, str) or not _EXPIRATION.fullmatch(expiration):
            raise ValueError(expiration)
        expires = datetime.fromisoformat(expiration.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid_policy(f"Invalid 'expiration' value: '{expiration}'") from None
    if not isinstance(conditions, list):
        raise _invalid_policy("Invalid 'conditions' value: must be a List.")
    return expires, conditions


@dataclass(frozen=True)
class _Upload:
    """What a condition is checked against: the form's fields (lowercase names), the bucket, the file's size."""

    fields: Mapping[str, str]
    bucket: str
    size: int

    def value(self, name: str) -> str | None:
        return self.bucket if name.lower() == "bucket" else self.fields.get(name.lower())


def _condition_failed(shown: list[Any]) -> Refusal:
    rendered = json.dumps(shown, ensure_ascii=False)
    return Refusal(403, "AccessDenied", f"Invalid according to Policy: Policy Condition failed: {rendered}")


def _check_match(operation: str, field: str, expected: str, upload: _Upload, shown: list[Any]) -> None:
    """``eq`` or ``starts-with`` on ``$field``: a field that is absent fails either. A ``Content-Type`` with
    commas is a list, each of whose values must start with the prefix."""
    value = upload.value(field[1:]) if field.startswith("$") else None
    if value is None:
        raise _condition_failed(shown)
    if operation == "eq":
        matched = value == expected
    elif field[1:].lower() == "content-type":
        matched = all(part.strip().startswith(expected) for part in value.split(","))
    else:
        matched = value.startswith(expected)
    if not matched:
        raise _condition_failed(shown)


def _check_size(condition: list[Any], upload: _Upload) -> None:
    """``["content-length-range", min, max]``, both inclusive, on the file's size."""
    if len(condition) != 3:
        raise _invalid_policy("Invalid content-length-range: wrong number of arguments.")
    if any(isinstance(bound, float) for bound in condition[1:]):
        raise _invalid_policy("Invalid JSON.")  # S3's answer to a bound such as 512.0
    try:
        low, high = int(condition[1]), int(condition[2])
    except (TypeError, ValueError):
        raise _condition_failed(condition) from None
    if upload.size < low:
        raise Refusal(
            400,
            "EntityTooSmall",
            "Your proposed upload is smaller than the minimum allowed size",
            ProposedSize=upload.size,
            MinSizeAllowed=low,
        )
    if upload.size > high:
        raise Refusal(
            400,
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size",
            ProposedSize=upload.size,
            MaxSizeAllowed=high,
        )


def _check_condition(condition: Any, upload: _Upload) -> str | None:
    """Check one condition; the field it covers (lowercase), if any."""
    if isinstance(condition, dict):
        if len(condition) != 1:
            raise _invalid_policy(
                "Invalid Simple-Condition: Simple-Conditions must have exactly one property specified."
            )
        [(name, expected)] = condition.items()
        if not isinstance(expected, str):
            raise _invalid_policy("Invalid Simple-Condition: value must be a string.")
        # S3 names a failed simple condition as the eq it stands for.
        _check_match("eq", f"${name}", expected, upload, ["eq", f"${name}", expected])
        return str(name).lower()
    if not isinstance(condition, list):
        raise _invalid_policy("Invalid condition test: must be a List or Object.")
    if not condition or not isinstance(condition[0], str):
        raise _invalid_policy("Invalid Condition: missing operation identifier.")
    operation = condition[0].lower()
    if operation == "content-length-range":
        _check_size(condition, upload)
        return None
    if operation not in ("eq", "starts-with"):
        raise _invalid_policy(f"Invalid Condition: unknown operation '{condition[0]}'.")
    if len(condition) != 3:
        raise _invalid_policy(f"Invalid {condition[0]}: wrong number of arguments.")
    field, expected = condition[1], condition[2]
    if not isinstance(field, str) or not isinstance(expected, str):
        raise _invalid_policy("Invalid JSON.")
    _check_match(operation, field, expected, upload, condition)
    return field[1:].lower() if field.startswith("$") else None


def _expand_filename(value: str, filename: str | None) -> str:
    """``${filename}`` is the name of the user's file, after its last slash or backslash (HTTPPOSTForms)."""
    if filename is None:
        return value
    return value.replace("${filename}", re.split(r"[/\\]", filename)[-1])


#: The fields that sign a form with Signature Version 4 (sigv4-authentication-HTTPPOST); ``AWSAccessKeyId`` and
#: ``signature`` sign it with Version 2.
_SIGV4_FIELDS: Final = frozenset({"x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature"})


def _checked(form: _Form, bucket: FakeBucket) -> _Form:
    """The form, ``${filename}`` expanded, if S3 would store it; else S3's refusal (raised).

    In the order S3 was seen to check them: the key and the file, who signed (no one: an anonymous upload,
    which our buckets refuse as they allow no public write), the signature over the policy as sent, the
    policy itself, its expiration, each condition in turn, and last every field no condition covers."""
    expanded = tuple((name, _expand_filename(value, form.filename)) for name, value in form.fields)
    fields: dict[str, str] = {}
    for name, value in expanded:  # repeated fields are one, their values joined by commas (HTTPPOSTForms)
        fields[name.lower()] = f"{fields[name.lower()]},{value}" if name.lower() in fields else value
    if not fields.get("key"):
        raise _missing_field("key")
    if form.file is None:
        raise Refusal(
            400,
            "InvalidArgument",
            "POST requires exactly one file upload per request.",
            ArgumentName="file",
            ArgumentValue=0,
        )
    if fields.keys() & _SIGV4_FIELDS:
        _check_sigv4(fields, bucket)
        exempt = {"policy", "x-amz-signature", "file"}
    elif "awsaccesskeyid" in fields or "signature" in fields:
        _check_sigv2(fields)
        exempt = {"policy", "awsaccesskeyid", "signature", "file"}
    else:
        raise Refusal(403, "AccessDenied", "Access Denied")
    expires, conditions = _decoded_policy(fields["policy"])
    if now() > expires:
        raise Refusal(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    upload = _Upload(fields, bucket.name, len(form.file))
    covered = {_check_condition(condition, upload) for condition in conditions}
    extra = [
        name
        for name in dict.fromkeys(name for name, _ in expanded)
        if name.lower() not in covered | exempt and not name.lower().startswith("x-ignore-")
    ]
    if extra:
        raise Refusal(403, "AccessDenied", f"Invalid according to Policy: Extra input fields: {', '.join(extra)}")
    return _Form(expanded, form.file, form.filename)


def _bucket_response_post(self: S3Response, request: Any, bucket_name: str) -> Response:
    """moto 5.2.5 stores a POSTed form upload without checking anything of its policy: no signature, no
    expiration, no condition, no content-length-range, no field left uncovered; a form with no policy at all
    (anonymous) is stored too, and so is one whose fields follow the file (S3 ignores them, so its key is
    missing) or one that is not multipart/form-data at all. S3 refuses each (RESTObjectPOST,
    sigv4-HTTPPOSTConstructPolicy). Here a form upload (every POST to the bucket but DeleteObjects, which
    is moto's as it was) is checked as S3 checks it: refused with S3's error, so nothing is stored and no
    event sent, unless its policy allows it; moto then stores it from the fields before the file, the
    ``Content-Type`` field becoming the object's, and answers as it does (``success_action_status``,
    ``success_action_redirect``)."""
    post = original(S3Response, "_bucket_response_post")
    self.path = self._get_path(request)
    if not request.headers.get("Content-Length") or self.is_delete_keys():
        return post(self, request, bucket_name)  # type: ignore[no-any-return]
    bucket = self.backend.get_bucket(bucket_name)  # NoSuchBucket first
    try:
        if request.mimetype != "multipart/form-data":
            raise Refusal(
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
                Condition="Bucket POST must be of the enclosure-type multipart/form-data",
            )
        form = _checked(_parse_form(request.headers.get("Content-Type", ""), request.get_data(cache=True)), bucket)
    except Refusal as refusal:
        return refusal.response()
    # moto reads the key, acl, success_action_* from its querystring and the metadata from its form data:
    # both are the fields before the file (S3's names are case-insensitive, moto looks them up in lowercase).
    self.body = form.file
    self.querystring = {name.lower(): [value] for name, value in form.fields}
    self.form_data = ImmutableMultiDict(form.fields)
    return post(self, request, bucket_name)  # type: ignore[no-any-return]


def _setup_class(self: S3Response, request: Any, full_url: str | None = None, headers: Any = None) -> None:
    """moto 5.2.5 lets werkzeug parse a form upload (in setup_class, before any S3 operation), which keeps
    the file apart from the other fields and so loses which fields follow it; S3 ignores those. The body
    is kept before werkzeug reads it, for _bucket_response_post to read in order (werkzeug parses the
    form from the kept body)."""
    if request.method == "POST" and request.mimetype == "multipart/form-data":
        request.get_data(cache=True, parse_form_data=False)
    original(S3Response, "setup_class")(self, request, full_url, headers)


_POLICY = "s3_post_policy"

PATCHES = (
    Patch((_POLICY,), S3Response, "setup_class", _setup_class),
    Patch((_POLICY,), S3Response, "_bucket_response_post", _bucket_response_post),
)


def reset() -> None:
    """Nothing is kept between runs."""
