"""S3 CORS: a preflight, and every answer to a cross-origin request, answered from the bucket's CORS rules.

Patches: ``s3_cors_preflight`` (a preflight is answered from the first CORS rule that matches it, 403 when
none does) and ``s3_cors_response_headers`` (a cross-origin request's answer carries the CORS headers of the
rule that matches its origin and method, and no others).

What S3 does is taken from AWS's documentation: the user guide's cors.html and RESTOPTIONSobject. Its errors
are written as S3 writes them (``s3_post.Refusal``); where those pages say nothing (the messages of most
errors), the answers S3 gave as others recorded them.
"""

from __future__ import annotations

import re
from typing import Any

from moto.moto_server import werkzeug_app
from moto.s3.exceptions import S3ClientError
from moto.s3.models import CorsRule, FakeBucket
from moto.s3.responses import S3Response

from localcloud.patching import Patch, original
from localcloud.services.s3_post import Refusal, Response

# -- s3_cors_preflight, s3_cors_response_headers ------------------------------------------------------------


def _wildcard(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """An AllowedOrigin or AllowedHeader with (at most) one ``*``, which stands for any characters."""
    flags = re.IGNORECASE if ignore_case else 0
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), value, flags) is not None


def _cors_rule(bucket: FakeBucket, origin: str, method: str, request_headers: list[str]) -> CorsRule | None:
    """The first of the bucket's CORS rules whose AllowedOrigins match the origin, whose AllowedMethods hold the
    method and whose AllowedHeaders match every requested header (cors.html, "How does Amazon S3 evaluate")."""
    for rule in bucket.cors:
        if method not in (rule.allowed_methods or []):
            continue
        if not any(_wildcard(allowed, origin) for allowed in rule.allowed_origins or []):
            continue
        allowed_headers = rule.allowed_headers or []
        if all(
            any(_wildcard(allowed, name, ignore_case=True) for allowed in allowed_headers) for name in request_headers
        ):
            return rule
    return None


def _cors_headers(rule: CorsRule, origin: str, request_headers: list[str]) -> dict[str, str]:
    """The CORS headers S3 answers with for a matching rule: the origin (``*`` for a rule open to every
    origin, else the request's, with credentials allowed), the rule's methods, the requested headers (a
    preflight's), the headers it exposes and how long a preflight may be cached."""
    wildcard = "*" in (rule.allowed_origins or [])
    headers = {"Access-Control-Allow-Origin": "*" if wildcard else origin}
    if not wildcard:
        headers["Access-Control-Allow-Credentials"] = "true"
    headers["Vary"] = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
    headers["Access-Control-Allow-Methods"] = ", ".join(rule.allowed_methods)
    if request_headers:
        headers["Access-Control-Allow-Headers"] = ", ".join(request_headers)
    if rule.exposed_headers:
        headers["Access-Control-Expose-Headers"] = ", ".join(rule.exposed_headers)
    if rule.max_age_seconds is not None:
        headers["Access-Control-Max-Age"] = str(rule.max_age_seconds)
    return headers


def _forbidden(message: str, method: str, resource_type: str) -> Refusal:
    return Refusal(403, "AccessForbidden", f"CORSResponse: {message}", Method=method, ResourceType=resource_type)


def _response_options(self: S3Response, headers: Any, bucket_name: str) -> Response:
    """moto 5.2.5 answers a CORS preflight with the headers of every rule at once, the last overriding the
    others, and refuses it as soon as one rule's AllowedOrigins misses the origin, even when a later rule
    allows it; it checks neither the requested method nor the requested headers, and a bucket without CORS
    rules gets 200. S3 (RESTOPTIONSobject, cors.html) answers from the first rule that matches the origin,
    the Access-Control-Request-Method and every Access-Control-Request-Headers, and 403 when the bucket
    has no CORS configuration or no rule matches."""
    origin, method = headers.get("Origin"), headers.get("Access-Control-Request-Method")
    try:
        if not origin:
            raise Refusal(400, "BadRequest", "Insufficient information. Origin request header needed.")
        if not method:
            raise Refusal(
                400, "BadRequest", "Insufficient information. Access-Control-Request-Method request header needed."
            )
        try:
            bucket = self.backend.get_bucket(bucket_name)
        except S3ClientError:
            raise _forbidden("Bucket not found", method, "BUCKET") from None
        if not bucket.cors:
            raise _forbidden("CORS is not enabled for this bucket.", method, "BUCKET")
        requested = [name.strip().lower() for name in headers.get("Access-Control-Request-Headers", "").split(",")]
        requested = [name for name in requested if name]
        rule = _cors_rule(bucket, origin, method, requested)
        if rule is None:
            raise _forbidden(
                "This CORS request is not allowed. This is usually because the evalution of Origin, request method "
                "/ Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the "
                "resource's CORS spec.",
                method,
                "OBJECT",
            )
    except Refusal as refusal:
        return refusal.response()
    return 200, {**self.response_headers, **_cors_headers(rule, origin, requested)}, ""


def _with_cors(self: S3Response, request: Any, response: Response) -> Response:
    """The answer to a cross-origin request with the CORS headers of the rule that matches its origin and
    method (none when no rule does, or the request has no Origin); a preflight's are _response_options'."""
    if request.method == "OPTIONS":
        return response
    status, headers, body = response
    headers = {name: value for name, value in headers.items() if not name.lower().startswith("access-control-")}
    origin = request.headers.get("Origin")
    if origin and self.bucket_name:
        try:
            bucket = self.backend.get_bucket(self.bucket_name)
        except S3ClientError:
            return status, headers, body
        rule = _cors_rule(bucket, origin, request.method, [])
        if rule is not None:
            headers.update(_cors_headers(rule, origin, []))
    return status, headers, body


def _bucket_response(self: S3Response, request: Any, full_url: str, headers: Any) -> Response:
    """moto 5.2.5 adds to some answers (GetObject, PutObject, ...) the headers of the first CORS rule that
    matches the origin, whatever the rule's methods, and none to the others (a bucket's, a form upload's);
    S3 adds those of the first rule that matches the origin and the method to every answer (cors.html).
    Here every answer carries those, errors included."""
    response = original(S3Response, "bucket_response")(self, request, full_url, headers)
    return _with_cors(self, request, response)


def _key_response(self: S3Response, request: Any, full_url: str, headers: Any) -> Response:
    """moto 5.2.5 adds to an object's answer the CORS headers of the first rule that matches the origin,
    whatever its methods, and to some answers (HeadObject, DeleteObject) none: see _bucket_response."""
    response = original(S3Response, "key_response")(self, request, full_url, headers)
    return _with_cors(self, request, response)


def _cors_except_s3(app: Any, *args: Any, **kwargs: Any) -> Any:
    """moto 5.2.5's server gives every service's app flask-cors with its defaults: every answer, S3's
    included, allows any origin (the request's Origin echoed, or ``*``) whatever the bucket's CORS
    configuration, and a preflight to a bucket without one gets 200. S3's app is left without it: its CORS
    headers are the bucket's rules' (_response_options, _with_cors). The other services keep it."""
    if getattr(app, "service", None) == "s3":
        return None
    return original(werkzeug_app, "CORS")(app, *args, **kwargs)


_PREFLIGHT = "s3_cors_preflight"
_RESPONSE_HEADERS = "s3_cors_response_headers"

PATCHES = (
    Patch((_RESPONSE_HEADERS,), S3Response, "bucket_response", _bucket_response),
    Patch((_RESPONSE_HEADERS,), S3Response, "key_response", _key_response),
    Patch((_PREFLIGHT,), S3Response, "_response_options", _response_options),
    Patch((_PREFLIGHT, _RESPONSE_HEADERS), werkzeug_app, "CORS", _cors_except_s3),
)


def reset() -> None:
    """Nothing is kept between runs."""
