"""The local HTTP API (localcloud.services.apigateway) against real HTTP requests, with a fake invoke that records
the event and answers what each test chooses."""

from __future__ import annotations

import base64
import http.client
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest

from localcloud.services.apigateway import MAX_BODY_BYTES, HttpApi, Throttle, TokenBucket
from localcloud.services.apigateway.cors import Cors
from localcloud.services.apigateway.jwt_authorizer import claim_string
from localcloud.services.apigateway.payload import is_text
from localcloud.services.apigateway.routes import Route, RouteTable, function_arn_of, parse_routes
from tests.localcloud.services.jwt_issuer import LocalIssuer

ACCOUNT = "123456789012"


def arn(name: str) -> str:
    return f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:imgpipe-{name}"


def operation(name: str, **extra: Any) -> dict[str, Any]:
    uri = f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{arn(name)}/invocations"
    integration = {"httpMethod": "POST", "type": "aws_proxy", "uri": uri, "payloadFormatVersion": "2.0"}
    return {"x-amazon-apigateway-integration": integration, "responses": {}, **extra}


def definition(paths: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"openapi": "3.0.1", "info": {"title": "imgpipe", "version": "1.0"}, "paths": paths, **extra}


UPLOADS = {
    "/uploads": {"post": operation("UploadsCreate")},
    "/uploads/{id}": {"get": operation("UploadsGet"), "delete": operation("UploadsDelete")},
}

CORS = {
    "allowOrigins": ["*"],
    "allowMethods": ["GET", "POST", "DELETE"],
    "allowHeaders": ["authorization", "content-type"],
    "maxAge": 600,
}


def jwt_scheme(issuer: str, audience: list[str]) -> dict[str, Any]:
    authorizer = {
        "type": "jwt",
        "identitySource": "$request.header.Authorization",
        "jwtConfiguration": {"issuer": issuer, "audience": audience},
    }
    return {"securitySchemes": {"Jwt": {"type": "oauth2", "x-amazon-apigateway-authorizer": authorizer}}}


@dataclass
class FakeFunctions:
    """The invoke callable: records (function ARN, event) and answers from ``replies``, then ``canned``."""

    canned: tuple[bytes, str | None] = (b'{"statusCode": 200, "body": "ok"}', None)
    replies: list[tuple[bytes, str | None]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    raises: Exception | None = None

    def __call__(self, function_arn: str, payload: bytes) -> tuple[bytes, str | None]:
        self.calls.append((function_arn, json.loads(payload)))
        if self.raises is not None:
            raise self.raises
        return self.replies.pop(0) if self.replies else self.canned

    def answer(self, response: Any, error: str | None = None) -> None:
        self.canned = (response if isinstance(response, bytes) else json.dumps(response).encode(), error)

    @property
    def event(self) -> dict[str, Any]:
        assert self.calls, "the function was not invoked"
        return self.calls[-1][1]


@dataclass
class Reply:
    status: int
    headers: Any  # http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def call(url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=30) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, error.headers, error.read())


def raw_call(api: HttpApi, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"") -> Reply:
    """http.client, for what urllib cannot send: repeated headers, a Content-Length without its body."""
    host, port = api.url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders(body or None)
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


@pytest.fixture
def functions() -> FakeFunctions:
    return FakeFunctions()


@pytest.fixture
def serve(functions: FakeFunctions) -> Iterator[Any]:
    """serve(definition, **HttpApi kwargs) -> a started HttpApi, stopped after the test."""
    started: list[HttpApi] = []

    def start(api_definition: dict[str, Any], **kwargs: Any) -> HttpApi:
        api = HttpApi(api_definition, invoke=functions, **kwargs).start()
        started.append(api)
        return api

    yield start
    for api in started:
        api.stop()


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    with LocalIssuer(audience="imgpipe-local") as local:
        yield local


# -- the server ----------------------------------------------------------------------------------------------------


def test_start_serves_on_a_local_port_and_stop_is_idempotent(functions: FakeFunctions) -> None:
    api = HttpApi(definition(UPLOADS), invoke=functions)
    assert api.start() is api
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", api.url)
    assert call(api.url + "/uploads/1").status == 200
    api.stop()
    api.stop()
    with pytest.raises(RuntimeError):
        _ = api.url


# -- routes --------------------------------------------------------------------------------------------------------

ROUTING = definition(
    {
        "/pets/dog/1": {"get": operation("Static")},
        "/pets/dog/{id}": {"get": operation("Variable")},
        "/pets/{proxy+}": {"get": operation("Greedy")},
        "/{proxy+}": {"x-amazon-apigateway-any-method": operation("AnyGreedy")},
        "/things/{id}": {
            "get": operation("ThingGet"),
            "x-amazon-apigateway-any-method": operation("ThingAny"),
        },
        "$default": {"x-amazon-apigateway-any-method": operation("Default")},
    }
)


@pytest.mark.parametrize(
    ("method", "path", "function", "route_key", "parameters"),
    [
        ("GET", "/pets/dog/1", "Static", "GET /pets/dog/1", None),
        ("GET", "/pets/dog/2", "Variable", "GET /pets/dog/{id}", {"id": "2"}),
        ("GET", "/pets/cat/1", "Greedy", "GET /pets/{proxy+}", {"proxy": "cat/1"}),
        ("POST", "/test/5", "AnyGreedy", "ANY /{proxy+}", {"proxy": "test/5"}),
        ("POST", "/pets/dog/1", "AnyGreedy", "ANY /{proxy+}", {"proxy": "pets/dog/1"}),
        ("GET", "/things/7", "ThingGet", "GET /things/{id}", {"id": "7"}),
        ("PUT", "/things/7", "ThingAny", "ANY /things/{id}", {"id": "7"}),
        ("GET", "/", "Default", "$default", None),
    ],
)
def test_the_most_specific_route_wins(
    serve: Any, functions: FakeFunctions, method: str, path: str, function: str, route_key: str, parameters: Any
) -> None:
    api = serve(ROUTING)
    reply = call(api.url + path, method=method, body=b"" if method in ("POST", "PUT") else None)
    assert reply.status == 200
    function_arn, event = functions.calls[-1]
    assert function_arn == arn(function)
    assert event["routeKey"] == route_key
    assert event["requestContext"]["routeKey"] == route_key
    assert event.get("pathParameters") == parameters


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/nothing"), ("PUT", "/uploads"), ("GET", "/uploads/"), ("GET", "/uploads/1/x")]
)
def test_no_route_is_404_not_found(serve: Any, functions: FakeFunctions, method: str, path: str) -> None:
    api = serve(definition(UPLOADS))
    reply = call(api.url + path, method=method, body=b"{}" if method == "PUT" else None)
    assert (reply.status, reply.json()) == (404, {"message": "Not Found"})
    assert reply.headers["Content-Type"] == "application/json"
    assert functions.calls == []


def test_path_parameters_are_url_decoded_and_the_raw_path_is_not(serve: Any, functions: FakeFunctions) -> None:
    api = serve(definition({"/files/{name}": {"get": operation("Get")}, "/tree/{proxy+}": {"get": operation("T")}}))
    assert call(api.url + "/files/a%20b%2Fc").status == 200
    assert functions.event["pathParameters"] == {"name": "a b/c"}
    assert functions.event["rawPath"] == "/files/a%20b%2Fc"
    assert call(api.url + "/tree/x/y%20z").status == 200
    assert functions.event["pathParameters"] == {"proxy": "x/y z"}


def test_a_greedy_variable_needs_something_to_catch() -> None:
    table = RouteTable(parse_routes(definition({"/pets/{proxy+}": {"get": operation("G")}}), {}))
    assert table.match("GET", "/pets/a") is not None
    assert table.match("GET", "/pets/") is None
    assert table.match("GET", "/pets") is None


def test_a_route_own_method_beats_any_on_the_same_path() -> None:
    routes = [Route("ANY", "/a/{id}", arn("Any")), Route("GET", "/a/{id}", arn("Get"))]
    matched = RouteTable(routes).match("GET", "/a/1")
    assert matched is not None
    assert matched[0].function_arn == arn("Get")


def test_function_arn_of_an_integration_uri() -> None:
    uri = f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{arn('X')}/invocations"
    assert function_arn_of(uri) == arn("X")
    assert function_arn_of(arn("X")) == arn("X")
    with pytest.raises(ValueError, match="not a Lambda integration"):
        function_arn_of("https://example.com")


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        ({"/a/{proxy+}/b": {"get": operation("X")}}, "greedy"),
        (
            {"/a": {"get": {"x-amazon-apigateway-integration": {"type": "http_proxy", "uri": "https://x"}}}},
            "http_proxy",
        ),
        ({"/a": {"get": operation("X") | {"security": [{"Iam": []}]}}}, "not a JWT authorizer"),
    ],
)
def test_what_is_not_emulated_is_refused_up_front(paths: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HttpApi(definition(paths), invoke=FakeFunctions())


def test_payload_format_1_0_is_refused() -> None:
    op = operation("X")
    op["x-amazon-apigateway-integration"]["payloadFormatVersion"] = "1.0"
    with pytest.raises(ValueError, match=r"1\.0"):
        HttpApi(definition({"/a": {"get": op}}), invoke=FakeFunctions())


# -- the event -----------------------------------------------------------------------------------------------------


def test_the_event_is_payload_format_2_0(serve: Any, functions: FakeFunctions) -> None:
    api = serve(definition(UPLOADS), api_id="abc123", account_id="111122223333")
    before = int(time.time() * 1000)
    reply = raw_call(
        api,
        "POST",
        "/uploads?a=1&a=2&b=&c=x%20y",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", "11"),
            ("X-Dup", "one"),
            ("X-Dup", "two"),
            ("User-Agent", "tests/1.0"),
            ("Cookie", "c1=v1; c2=v2"),
        ],
        b'{"size": 1}',
    )
    after = int(time.time() * 1000)
    assert reply.status == 200
    event = functions.event
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /uploads"
    assert event["rawPath"] == "/uploads"
    assert event["rawQueryString"] == "a=1&a=2&b=&c=x%20y"
    assert event["queryStringParameters"] == {"a": "1,2", "b": "", "c": "x y"}
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    headers = event["headers"]
    assert headers["x-dup"] == "one,two"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "tests/1.0"
    assert "cookie" not in headers
    assert all(name == name.lower() for name in headers)
    assert (event["body"], event["isBase64Encoded"]) == ('{"size": 1}', False)
    assert "pathParameters" not in event
    assert "stageVariables" not in event
    context = event["requestContext"]
    assert context["accountId"] == "111122223333"
    assert context["apiId"] == "abc123"
    assert context["domainName"] == "127.0.0.1"
    assert context["domainPrefix"] == "127"
    assert context["http"] == {
        "method": "POST",
        "path": "/uploads",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "tests/1.0",
    }
    assert context["requestId"] == reply.headers["apigw-requestid"]
    assert context["routeKey"] == "POST /uploads"
    assert context["stage"] == "$default"
    assert re.fullmatch(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000", context["time"])
    assert before <= context["timeEpoch"] <= after
    assert "authorizer" not in context


def test_a_request_without_body_query_or_cookies_leaves_them_out(serve: Any, functions: FakeFunctions) -> None:
    api = serve(definition(UPLOADS))
    assert call(api.url + "/uploads/42").status == 200
    event = functions.event
    assert event["rawQueryString"] == ""
    assert event["pathParameters"] == {"id": "42"}
    assert event["isBase64Encoded"] is False
    for absent in ("body", "cookies", "queryStringParameters", "stageVariables"):
        assert absent not in event


def test_a_binary_body_is_base64_encoded(serve: Any, functions: FakeFunctions) -> None:
    api = serve(definition(UPLOADS))
    payload = bytes(range(256))
    assert call(api.url + "/uploads", "POST", payload, {"Content-Type": "image/png"}).status == 200
    assert functions.event["isBase64Encoded"] is True
    assert base64.b64decode(functions.event["body"]) == payload


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("application/vnd.api+json", True),
        ("text/plain", True),
        ("text/csv", True),
        ("application/xml", True),
        ("application/javascript", True),
        ("image/jpeg", False),
        ("application/octet-stream", False),
        ("application/x-www-form-urlencoded", False),
        ("multipart/form-data; boundary=x", False),
        (None, False),
    ],
)
def test_which_bodies_are_text(content_type: str | None, text: bool) -> None:
    assert is_text(content_type) is text


def test_a_body_over_10_mb_is_413(serve: Any, functions: FakeFunctions) -> None:
    api = serve(definition(UPLOADS))
    reply = raw_call(api, "POST", "/uploads", [("Content-Length", str(MAX_BODY_BYTES + 1))])
    assert (reply.status, reply.json()) == (413, {"message": "Request Entity Too Large"})
    assert functions.calls == []


# -- the response --------------------------------------------------------------------------------------------------


def test_a_response_with_status_code_maps_status_headers_cookies_and_body(serve: Any, functions: FakeFunctions) -> None:
    api = serve(definition(UPLOADS))
    functions.answer(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "text/plain", "X-Count": 3, "Location": "/uploads/9"},
            "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
            "body": "made",
        }
    )
    reply = call(api.url + "/uploads", "POST", b"{}", {"Content-Type": "application/json"})
    assert reply.status == 201
    assert reply.body == b"made"
    assert reply.headers["Content-Type"] == "text/plain"
    assert reply.headers["X-Count"] == "3"
    assert reply.headers["Location"] == "/uploads/9"
    assert reply.headers.get_all("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert reply.headers["apigw-requestid"]


def test_a_redirect_is_passed_through(serve: Any, functions: FakeFunctions) -> None:
    api = serve(definition(UPLOADS))
    functions.answer({"statusCode": 302, "headers": {"Location": "https://example.com/x"}})
    reply = call(api.url + "/uploads/1")
    assert (reply.status, reply.headers["Location"], reply.body) == (302, "https://example.com/x", b"")


def test_a_base64_body_is_decoded(serve: Any, functions: FakeFunctions) -> None:
    api = serve(definition(UPLOADS))
    image = b"\x89PNG\r\n\x1a\n\x00\xff"
    functions.answer(
        {
            "statusCode": 200,
            "headers": {"content-type": "image/png"},
            "isBase64Encoded": True,
            "body": base64.b64encode(image).decode(),
        }
    )
    reply = call(api.url + "/uploads/1")
    assert (reply.status, reply.headers["Content-Type"], reply.body) == (200, "image/png", image)


@pytest.mark.parametrize(
    ("answer", "body"),
    [
        (b'{"message": "Hello from Lambda!"}', b'{"message": "Hello from Lambda!"}'),
        (b'"Hello from Lambda!"', b"Hello from Lambda!"),
        (b"[1, 2]", b"[1, 2]"),
        (b"42", b"42"),
    ],
)
def test_any_other_json_is_an_inferred_200_json_response(
    serve: Any, functions: FakeFunctions, answer: bytes, body: bytes
) -> None:
    api = serve(definition(UPLOADS))
    functions.answer(answer)
    reply = call(api.url + "/uploads/1")
    assert (reply.status, reply.headers["Content-Type"], reply.body) == (200, "application/json", body)


@pytest.mark.parametrize(
    "answer",
    [
        b"not json",
        b'{"statusCode": "abc"}',
        b'{"statusCode": 700}',
        b'{"statusCode": 200, "body": {"a": 1}}',
        b'{"statusCode": 200, "isBase64Encoded": true, "body": "!!!"}',
        b'{"statusCode": 200, "headers": ["x"]}',
        b'{"statusCode": 200, "headers": {"x": {"y": 1}}}',
        b'{"statusCode": 200, "cookies": "a=1"}',
    ],
)
def test_an_invalid_response_is_500(serve: Any, functions: FakeFunctions, answer: bytes) -> None:
    api = serve(definition(UPLOADS))
    functions.answer(answer)
    reply = call(api.url + "/uploads/1")
    assert (reply.status, reply.json()) == (500, {"message": "Internal Server Error"})


def test_a_function_error_is_500(serve: Any, functions: FakeFunctions) -> None:
    api = serve(definition(UPLOADS))
    functions.answer({"errorType": "ValueError", "errorMessage": "boom"}, error="ValueError")
    reply = call(api.url + "/uploads/1")
    assert (reply.status, reply.json()) == (500, {"message": "Internal Server Error"})


def test_an_invoke_that_raises_is_500(serve: Any, functions: FakeFunctions) -> None:
    api = serve(definition(UPLOADS))
    functions.raises = RuntimeError("no worker")
    reply = call(api.url + "/uploads/1")
    assert (reply.status, reply.json()) == (500, {"message": "Internal Server Error"})


# -- CORS ----------------------------------------------------------------------------------------------------------

PREFLIGHT = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}


def test_the_gateway_answers_a_preflight_without_function_or_authorizer(
    serve: Any, functions: FakeFunctions, issuer: LocalIssuer
) -> None:
    api = serve(
        definition(
            UPLOADS,
            security=[{"Jwt": []}],
            components=jwt_scheme(issuer.url, ["imgpipe-local"]),
            **{"x-amazon-apigateway-cors": CORS},
        )
    )
    reply = call(api.url + "/uploads", "OPTIONS", headers=PREFLIGHT | {"Access-Control-Request-Headers": "x-a"})
    assert (reply.status, reply.body) == (204, b"")
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert reply.headers["Access-Control-Allow-Methods"] == "GET,POST,DELETE"
    assert reply.headers["Access-Control-Allow-Headers"] == "authorization,content-type"
    assert reply.headers["Access-Control-Max-Age"] == "600"
    assert "Access-Control-Allow-Credentials" not in reply.headers
    assert functions.calls == []


def test_a_preflight_from_an_origin_not_allowed_gets_no_cors_headers(serve: Any, functions: FakeFunctions) -> None:
    cors = CORS | {"allowOrigins": ["https://app.example.com"]}
    api = serve(definition(UPLOADS, **{"x-amazon-apigateway-cors": cors}))
    reply = call(api.url + "/uploads", "OPTIONS", headers=PREFLIGHT | {"Origin": "https://evil.example.com"})
    assert reply.status == 204
    assert not [name for name in reply.headers if name.lower().startswith("access-control-")]
    assert functions.calls == []


def test_a_preflight_an_any_route_takes_goes_to_its_function(serve: Any, functions: FakeFunctions) -> None:
    paths = {"/{proxy+}": {"x-amazon-apigateway-any-method": operation("Any")}}
    api = serve(definition(paths, **{"x-amazon-apigateway-cors": CORS}))
    reply = call(api.url + "/uploads", "OPTIONS", headers=PREFLIGHT)
    assert reply.status == 200
    assert functions.event["routeKey"] == "ANY /{proxy+}"
    assert reply.headers["Access-Control-Allow-Origin"] == "*"


def test_without_cors_options_is_an_ordinary_request(serve: Any, functions: FakeFunctions) -> None:
    api = serve(definition(UPLOADS))
    reply = call(api.url + "/uploads", "OPTIONS", headers=PREFLIGHT)
    assert reply.status == 404
    assert "Access-Control-Allow-Origin" not in reply.headers


def test_an_actual_request_gets_the_configured_cors_headers_not_the_function_s(
    serve: Any, functions: FakeFunctions
) -> None:
    cors = CORS | {
        "allowOrigins": ["https://app.example.com"],
        "allowCredentials": True,
        "exposeHeaders": ["x-upload-id", "date"],
    }
    api = serve(definition(UPLOADS, **{"x-amazon-apigateway-cors": cors}))
    functions.answer(
        {
            "statusCode": 200,
            "headers": {"Access-Control-Allow-Origin": "https://evil.example.com", "access-control-max-age": "1"},
            "body": "ok",
        }
    )
    reply = call(api.url + "/uploads/1", headers={"Origin": "https://app.example.com"})
    assert reply.status == 200
    assert reply.headers.get_all("Access-Control-Allow-Origin") == ["https://app.example.com"]
    assert reply.headers["Access-Control-Allow-Credentials"] == "true"
    assert reply.headers["Access-Control-Expose-Headers"] == "x-upload-id,date"
    assert "Access-Control-Max-Age" not in reply.headers

    other = call(api.url + "/uploads/1", headers={"Origin": "https://evil.example.com"})
    assert not [name for name in other.headers if name.lower().startswith("access-control-")]


def test_gateway_errors_carry_the_cors_headers_too(serve: Any) -> None:
    api = serve(definition(UPLOADS, **{"x-amazon-apigateway-cors": CORS}))
    reply = call(api.url + "/nothing", headers={"Origin": "https://app.example.com"})
    assert (reply.status, reply.headers["Access-Control-Allow-Origin"]) == (404, "*")


@pytest.mark.parametrize(
    ("origins", "origin", "allowed"),
    [
        (["*"], "https://a.example", "*"),
        (["https://a.example"], "https://a.example", "https://a.example"),
        (["https://a.example"], "https://b.example", None),
        (["https://*"], "https://b.example", "https://b.example"),
        (["https://*"], "http://b.example", None),
        (["http://*"], "http://localhost:3000", "http://localhost:3000"),
        (["*"], None, None),
    ],
)
def test_allowed_origins(origins: list[str], origin: str | None, allowed: str | None) -> None:
    cors = Cors.from_definition({"x-amazon-apigateway-cors": {"allowOrigins": origins}})
    assert cors is not None
    assert cors.allowed_origin(origin) == allowed


# -- the JWT authorizer --------------------------------------------------------------------------------------------


def secured(issuer: LocalIssuer, scopes: list[str] | None = None, audience: list[str] | None = None) -> dict[str, Any]:
    paths = {
        "/uploads": {"post": operation("UploadsCreate")},
        "/uploads/{id}": {
            "get": operation("UploadsGet", security=[{"Jwt": scopes or []}]),
            "delete": operation("UploadsDelete", security=[]),
        },
    }
    return definition(
        paths, security=[{"Jwt": []}], components=jwt_scheme(issuer.url, audience or ["imgpipe-local", "other-app"])
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_valid_token_passes_its_claims_as_strings(serve: Any, functions: FakeFunctions, issuer: LocalIssuer) -> None:
    api = serve(secured(issuer))
    token = issuer.token(sub="user-7", roles=["admin", "editor"], email_verified=True, address={"city": "Oslo"})
    reply = call(api.url + "/uploads", "POST", b"{}", bearer(token) | {"Content-Type": "application/json"})
    assert reply.status == 200
    authorizer = functions.event["requestContext"]["authorizer"]
    claims = authorizer["jwt"]["claims"]
    expected = issuer.claims()
    assert claims["iss"] == issuer.url
    assert claims["aud"] == "imgpipe-local"
    assert claims["sub"] == "user-7"
    assert claims["roles"] == "[admin editor]"
    assert claims["email_verified"] == "true"
    assert claims["address"] == "map[city:Oslo]"
    assert re.fullmatch(r"\d+", claims["exp"])
    assert int(claims["exp"]) >= expected["exp"] - 60
    assert all(isinstance(value, str) for value in claims.values())
    assert authorizer["jwt"]["scopes"] is None


def test_the_token_may_come_without_bearer(serve: Any, functions: FakeFunctions, issuer: LocalIssuer) -> None:
    api = serve(secured(issuer))
    assert call(api.url + "/uploads", "POST", b"{}", {"Authorization": issuer.token()}).status == 200


@pytest.mark.parametrize(
    ("case", "mint", "description"),
    [
        ("expired", lambda i: i.token(exp=int(time.time()) - 60), "expired"),
        ("wrong issuer", lambda i: i.token(iss="https://issuer.example.com"), "valid issuer"),
        ("wrong audience", lambda i: i.token(aud="someone-else"), "valid audience"),
        ("aud wins over client_id", lambda i: i.token(aud="someone-else", client_id="imgpipe-local"), "audience"),
        ("no aud nor client_id", lambda i: i.token(aud=None), "audience"),
        ("bad signature", lambda i: i.token(signing_key=LocalIssuer.new_key()), "signature"),
        ("unknown kid", lambda i: i.token(headers={"kid": "rotated-away"}), "kid rotated-away"),
        ("no kid", lambda i: i.token(headers={"kid": None}), "kid"),
        ("no exp", lambda i: i.token(exp=None), "exp"),
        ("not yet valid", lambda i: i.token(nbf=int(time.time()) + 3600), "not valid yet"),
        ("issued in the future", lambda i: i.token(iat=int(time.time()) + 3600), "not valid yet"),
        ("not a JWT", lambda i: "abc.def", "invalid number of segments"),
        ("HMAC", lambda i: jwt.encode(i.claims(), "s" * 32, "HS256", {"kid": i.kid}), "HS256"),
    ],
)
def test_an_invalid_token_is_401(
    serve: Any, functions: FakeFunctions, issuer: LocalIssuer, case: str, mint: Any, description: str
) -> None:
    api = serve(secured(issuer))
    reply = call(api.url + "/uploads", "POST", b"{}", bearer(mint(issuer)))
    assert (reply.status, reply.json()) == (401, {"message": "Unauthorized"}), case
    challenge = reply.headers["www-authenticate"]
    assert challenge.startswith('Bearer scope="" error="invalid_token" error_description="')
    assert description in challenge
    assert functions.calls == []


@pytest.mark.parametrize("headers", [{}, {"Authorization": ""}, {"Authorization": "Bearer "}])
def test_no_token_is_401(serve: Any, functions: FakeFunctions, issuer: LocalIssuer, headers: dict[str, str]) -> None:
    api = serve(secured(issuer))
    reply = call(api.url + "/uploads", "POST", b"{}", headers)
    assert (reply.status, reply.json()) == (401, {"message": "Unauthorized"})
    assert "www-authenticate" not in reply.headers
    assert functions.calls == []


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": None, "client_id": "imgpipe-local"},
        {"aud": ["another", "other-app"]},
    ],
)
def test_the_audience_may_be_client_id_or_in_a_list(
    serve: Any, functions: FakeFunctions, issuer: LocalIssuer, claims: dict[str, Any]
) -> None:
    api = serve(secured(issuer))
    assert call(api.url + "/uploads", "POST", b"{}", bearer(issuer.token(**claims))).status == 200


def test_an_operation_security_overrides_the_document(
    serve: Any, functions: FakeFunctions, issuer: LocalIssuer
) -> None:
    api = serve(secured(issuer))
    assert call(api.url + "/uploads/1", "DELETE").status == 200
    assert "authorizer" not in functions.event["requestContext"]
    assert call(api.url + "/uploads", "POST", b"{}").status == 401


@pytest.mark.parametrize(
    ("claims", "status", "scopes"),
    [
        ({"scope": "openid uploads/read"}, 200, ["openid", "uploads/read"]),
        ({"scp": ["uploads/admin"]}, 200, ["uploads/admin"]),
        ({"scope": "openid uploads/write"}, 403, None),
        ({}, 403, None),
    ],
)
def test_route_scopes_need_one_of_them_in_the_token(
    serve: Any, functions: FakeFunctions, issuer: LocalIssuer, claims: dict[str, Any], status: int, scopes: Any
) -> None:
    api = serve(secured(issuer, scopes=["uploads/read", "uploads/admin"]))
    reply = call(api.url + "/uploads/1", headers=bearer(issuer.token(**claims)))
    assert reply.status == status
    if status == 403:
        assert reply.json() == {"message": "Forbidden"}
        assert 'error="insufficient_scope"' in reply.headers["www-authenticate"]
        assert functions.calls == []
    else:
        assert functions.event["requestContext"]["authorizer"]["jwt"]["scopes"] == scopes


def test_the_issuer_keys_are_fetched_once(serve: Any, functions: FakeFunctions) -> None:
    with LocalIssuer() as fresh:
        api = serve(secured(fresh))
        for _ in range(3):
            assert call(api.url + "/uploads", "POST", b"{}", bearer(fresh.token())).status == 200
        assert fresh.requests == ["/.well-known/openid-configuration", "/.well-known/jwks.json"]


def test_an_unreachable_issuer_is_401(serve: Any, functions: FakeFunctions) -> None:
    with LocalIssuer() as gone:
        token = gone.token()
        api = serve(secured(gone))
    reply = call(api.url + "/uploads", "POST", b"{}", bearer(token))
    assert reply.status == 401
    assert functions.calls == []


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("a", "a"),
        (1612061676, "1612061676"),
        (1.5, "1.5"),
        (True, "true"),
        (["a", "b"], "[a b]"),
        ({"b": 2, "a": "x"}, "map[a:x b:2]"),
        (None, "<nil>"),
    ],
)
def test_claims_are_strings_as_http_apis_pass_them(value: Any, text: str) -> None:
    assert claim_string(value) == text


# -- throttling ----------------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.25
    assert bucket.take() is False
    clock.now += 0.25
    assert bucket.take() is True
    assert bucket.take() is False
    clock.now += 3600
    assert bucket.tokens == 3
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_a_bucket_without_burst_refuses_everything() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=0, burst=0, clock=clock)
    clock.now += 60
    assert bucket.take() is False


def test_a_clock_that_goes_back_adds_nothing() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=1, clock=clock)
    assert bucket.take() is True
    clock.now -= 10
    assert bucket.take() is False


def test_throttle_settings() -> None:
    assert Throttle.from_settings(None) is None
    assert Throttle.from_settings({}) is None
    throttle = Throttle.from_settings({"ThrottlingRateLimit": 10})
    assert throttle is not None
    assert (throttle.rate, throttle.burst) == (10, 5000)
    throttle = Throttle.from_settings({"ThrottlingBurstLimit": 20, "ThrottlingRateLimit": 10})
    assert throttle is not None
    assert (throttle.rate, throttle.burst) == (10, 20)
    throttle = Throttle.from_settings({"ThrottlingBurstLimit": "20", "ThrottlingRateLimit": "2.5"})
    assert throttle is not None
    assert (throttle.rate, throttle.burst) == (2.5, 20)


def test_a_throttled_route_answers_429(serve: Any, functions: FakeFunctions) -> None:
    api = serve(definition(UPLOADS), route_settings={"ThrottlingBurstLimit": 1, "ThrottlingRateLimit": 1e-9})
    assert call(api.url + "/uploads/1").status == 200
    reply = call(api.url + "/uploads/1")
    assert (reply.status, reply.json()) == (429, {"message": "Too Many Requests"})
    assert len(functions.calls) == 1
    # Every route has a bucket of its own.
    assert call(api.url + "/uploads/1", "DELETE").status == 200
