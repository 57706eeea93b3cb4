"""Lambda proxy integration, payload format 2.0: the event API Gateway sends and how it reads the function's answer.

The event (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html):
header names lower-cased, repeated headers and query parameters comma-joined, the ``Cookie`` headers as
``cookies`` (and not among the headers), URL-decoded path parameters; ``cookies``, ``queryStringParameters``,
``pathParameters``, ``body`` and ``stageVariables`` left out when there are none. A body whose content type is not
text (``text/*``, JSON, XML, JavaScript) is base64-encoded, with ``isBase64Encoded`` true.

The response: a JSON object with ``statusCode`` is read as ``{statusCode, headers, cookies, body,
isBase64Encoded}``; any other valid JSON is the body of a 200 ``application/json`` response (a JSON string's
text, as API Gateway's inferred format has it). Anything else is an invalid response: a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "GatewayResponse",
    "IncomingRequest",
    "InvalidResponse",
    "build_event",
    "gateway_error",
    "is_text",
    "map_response",
]

_TEXT_TYPES = re.compile(
    r"^(text/.*|application/(json|.*\+json|xml|.*\+xml|javascript|x-javascript|ecmascript))$", re.IGNORECASE
)

# Set by the server (or WSGI) from the body it sends, not taken from the function.
_HOP_BY_HOP = frozenset({"connection", "content-length", "keep-alive", "transfer-encoding", "upgrade"})


def is_text(content_type: str | None) -> bool:
    """Whether API Gateway passes a body of this content type as text (else base64)."""
    return bool(content_type) and bool(_TEXT_TYPES.match(str(content_type).split(";", 1)[0].strip()))


@dataclass(frozen=True)
class IncomingRequest:
    """A client's request, as the gateway received it."""

    method: str
    raw_path: str  # as sent, still percent-encoded
    raw_query: str = ""
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"

    def header_map(self) -> dict[str, str]:
        """Lower-cased names; a repeated header's values joined with commas."""
        joined: dict[str, str] = {}
        for name, value in self.headers:
            key = name.lower()
            joined[key] = f"{joined[key]},{value}" if key in joined else value
        return joined

    def query_map(self) -> dict[str, str]:
        joined: dict[str, str] = {}
        for name, value in urllib.parse.parse_qsl(self.raw_query, keep_blank_values=True):
            joined[name] = f"{joined[name]},{value}" if name in joined else value
        return joined


def _request_context(
    request: IncomingRequest,
    headers: Mapping[str, str],
    *,
    domain: str,
    route_key: str,
    request_id: str,
    api_id: str,
    account_id: str,
    now: float,
) -> dict[str, Any]:
    return {
        "accountId": account_id,
        "apiId": api_id,
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0],
        "http": {
            "method": request.method,
            "path": request.raw_path,
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }


def build_event(
    request: IncomingRequest,
    *,
    route_key: str,
    path_parameters: Mapping[str, str],
    request_id: str,
    api_id: str,
    account_id: str,
    authorizer: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    now = time.time() if now is None else now
    headers = request.header_map()
    cookie_header = headers.pop("cookie", "")
    cookies = [cookie for cookie in re.split(r"[;,]\s*", cookie_header) if cookie.strip()]
    host = headers.get("host", "localhost")
    domain = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    # API Gateway tells the function how the request reached it (here: plain HTTP on the local port).
    port = host.rsplit(":", 1)[1] if ":" in host and not host.endswith("]") else "80"
    forwarded = headers.get("x-forwarded-for")
    headers["x-forwarded-for"] = f"{forwarded}, {request.source_ip}" if forwarded else request.source_ip
    headers["x-forwarded-port"] = port
    headers["x-forwarded-proto"] = "http"
    context = _request_context(
        request,
        headers,
        domain=domain,
        route_key=route_key,
        request_id=request_id,
        api_id=api_id,
        account_id=account_id,
        now=now,
    )
    if authorizer is not None:
        context["authorizer"] = dict(authorizer)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    query = request.query_map()
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    event["requestContext"] = context
    if request.body:
        text = is_text(headers.get("content-type"))
        event["body"] = request.body.decode("utf-8", "replace") if text else base64.b64encode(request.body).decode()
        event["isBase64Encoded"] = not text
    else:
        event["isBase64Encoded"] = False
    return event


@dataclass(frozen=True)
class GatewayResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class InvalidResponse(ValueError):
    """The function's answer is not one API Gateway can send: the client gets a 500."""


def gateway_error(status: int, message: str, headers: Sequence[tuple[str, str]] = ()) -> GatewayResponse:
    """An answer of the gateway itself, as API Gateway words them: ``{"message":"Not Found"}``."""
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return GatewayResponse(status, [("Content-Type", "application/json"), *headers], body)


def _header_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float | str):
        text = str(value)
    else:
        raise InvalidResponse(f"header {name!r} has a value that is not a string: {value!r}")
    try:
        text.encode("latin-1")
    except UnicodeEncodeError as error:
        raise InvalidResponse(f"header {name!r} cannot be sent: {error}") from None
    return text


def _status(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidResponse(f"statusCode must be an integer, not {value!r}")
    try:
        status = int(value)
    except ValueError:
        raise InvalidResponse(f"statusCode must be an integer, not {value!r}") from None
    if not 100 <= status <= 599:
        raise InvalidResponse(f"statusCode {status} is not an HTTP status")
    return status


def _structured(answer: Mapping[str, Any]) -> GatewayResponse:
    status = _status(answer["statusCode"])
    headers_in = answer.get("headers") or {}
    cookies = answer.get("cookies") or []
    if not isinstance(headers_in, Mapping):
        raise InvalidResponse(f"headers must be an object, not {headers_in!r}")
    if not isinstance(cookies, list) or not all(isinstance(cookie, str) for cookie in cookies):
        raise InvalidResponse(f"cookies must be a list of strings, not {cookies!r}")
    headers = [
        (str(name), _header_value(str(name), value))
        for name, value in headers_in.items()
        if str(name).lower() not in _HOP_BY_HOP
    ]
    headers += [("Set-Cookie", _header_value("Set-Cookie", cookie)) for cookie in cookies]
    body = answer.get("body")
    if body is None:
        return GatewayResponse(status, headers, b"")
    if not isinstance(body, str):
        raise InvalidResponse(f"body must be a string, not {type(body).__name__}")
    if answer.get("isBase64Encoded") is True:
        try:
            return GatewayResponse(status, headers, base64.b64decode(body, validate=True))
        except binascii.Error as error:
            raise InvalidResponse(f"body is not valid base64: {error}") from None
    return GatewayResponse(status, headers, body.encode())


def map_response(payload: bytes) -> GatewayResponse:
    """The client's response for a function's answer; raises InvalidResponse for what API Gateway refuses."""
    try:
        answer = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidResponse(f"the function's answer is not JSON: {error}") from None
    if isinstance(answer, Mapping) and "statusCode" in answer:
        return _structured(answer)
    body = answer.encode() if isinstance(answer, str) else payload
    return GatewayResponse(200, [("Content-Type", "application/json")], body)
