"""The HTTP API server: a threaded werkzeug server that does for a request what API Gateway does.

In order: the body (over 10 MB: 413), a CORS preflight no route takes (answered here), the route (none: 404), the
route's throttle (429), its JWT authorizer (401/403), the function (its error or an invalid answer: 500), then the
CORS headers and ``apigw-requestid`` on whatever goes back.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wsgi import get_input_stream

from localcloud.services.apigateway.cors import Cors
from localcloud.services.apigateway.jwt_authorizer import AuthorizationError, authorizers_of
from localcloud.services.apigateway.payload import (
    GatewayResponse,
    IncomingRequest,
    InvalidResponse,
    build_event,
    gateway_error,
    map_response,
)
from localcloud.services.apigateway.routes import RouteTable, parse_routes
from localcloud.services.apigateway.throttling import Throttle

__all__ = ["MAX_BODY_BYTES", "HttpApi", "Invoke"]

log = logging.getLogger(__name__)

# API Gateway's payload quota for HTTP APIs.
MAX_BODY_BYTES = 10 * 1024 * 1024

# invoke(function_arn, payload) -> (the function's answer, its error type or None)
Invoke = Callable[[str, bytes], tuple[bytes, str | None]]


class _QuietHandler(WSGIRequestHandler):
    # Headers and body go out in separate writes: without this, Nagle's algorithm against the client's delayed ACKs
    # stalls each exchange by ~40 ms.
    disable_nagle_algorithm = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _request_id() -> str:
    """An id shaped like API Gateway's (``Mc7UVioPPHcEKPA=``)."""
    return base64.b64encode(os.urandom(11)).decode()


class HttpApi:
    """An HTTP API (``AWS::ApiGatewayV2::Api`` from its OpenAPI ``Body``) served on a local port."""

    def __init__(
        self,
        definition: Mapping[str, Any],
        *,
        invoke: Invoke,
        route_settings: Mapping[str, Any] | None = None,
        api_id: str = "local",
        account_id: str = "123456789012",
    ) -> None:
        self.authorizers = authorizers_of(definition)
        self.routes = RouteTable(parse_routes(definition, self.authorizers))
        self.cors = Cors.from_definition(definition)
        self.throttle = Throttle.from_settings(route_settings)
        self.api_id = api_id
        self.account_id = account_id
        self._invoke = invoke
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- the server ------------------------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> HttpApi:
        if self._server is not None:
            raise RuntimeError("the HTTP API is already started")
        server = make_server(host, port, self, threaded=True, request_handler=_QuietHandler)
        self._server = server
        # A short poll interval: stop() waits up to one for serve_forever to notice.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"http-api-{self.api_id}", daemon=True
        )
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the HTTP API is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def stop(self) -> None:
        """Stop serving; idempotent."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> HttpApi:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- WSGI ------------------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request_id = _request_id()
        try:
            response = self.handle_environ(environ, request_id)
        except Exception:
            log.exception(
                "HTTP API %s: %s %s failed", self.api_id, environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
            )
            response = gateway_error(500, "Internal Server Error")
        headers = [*response.headers, ("Content-Length", str(len(response.body))), ("apigw-requestid", request_id)]
        start_response(f"{response.status} {HTTP_STATUS_CODES.get(response.status, 'Unknown')}", headers)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [response.body]

    def handle_environ(self, environ: dict[str, Any], request_id: str) -> GatewayResponse:
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO") or "/"
        if not raw_uri.startswith("/"):  # absolute-form ("http://host/path?query")
            raw_uri = urllib.parse.urlsplit(raw_uri).path
        raw_path = raw_uri.split("?", 1)[0] or "/"
        headers = [(key[5:].replace("_", "-"), value) for key, value in environ.items() if key.startswith("HTTP_")]
        for key, name in (("CONTENT_TYPE", "content-type"), ("CONTENT_LENGTH", "content-length")):
            if environ.get(key):
                headers.append((name, environ[key]))
        try:
            body = get_input_stream(environ, max_content_length=MAX_BODY_BYTES).read()
        except RequestEntityTooLarge:
            body = None
        request = IncomingRequest(
            method=environ.get("REQUEST_METHOD", "GET").upper(),
            raw_path=raw_path,
            raw_query=environ.get("QUERY_STRING", ""),
            headers=headers,
            body=body or b"",
            source_ip=environ.get("REMOTE_ADDR", "127.0.0.1"),
            protocol=environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
        )
        if body is None:
            response = gateway_error(413, "Request Entity Too Large")
        else:
            preflight = self._gateway_preflight(request)
            if preflight is not None:
                return preflight
            response = self.handle(request, request_id)
        if self.cors is None:
            return response
        origin = request.header_map().get("origin")
        return GatewayResponse(response.status, self.cors.apply(response.headers, origin), response.body)

    def _gateway_preflight(self, request: IncomingRequest) -> GatewayResponse | None:
        """The gateway's answer to a CORS preflight that no route takes by its own method; None for the rest."""
        if self.cors is None:
            return None
        headers = request.header_map()
        if not Cors.is_preflight(request.method, headers) or self.routes.match("OPTIONS", request.raw_path):
            return None
        return GatewayResponse(204, self.cors.preflight_headers(headers))

    # -- what API Gateway does -------------------------------------------------------------------------------------

    def handle(self, request: IncomingRequest, request_id: str) -> GatewayResponse:
        """The response to a routed request (the CORS headers are added by the caller)."""
        headers = request.header_map()
        matched = self.routes.match(request.method, request.raw_path)
        if matched is None:
            return gateway_error(404, "Not Found")
        route, path_parameters = matched
        if self.throttle is not None and not self.throttle.allow(route.key):
            return gateway_error(429, "Too Many Requests")
        authorizer: dict[str, Any] | None = None
        if route.security is not None:
            try:
                authorized = self.authorizers[route.security.authorizer].authorize(
                    headers, request.query_map(), route.security.scopes
                )
            except AuthorizationError as refusal:
                return gateway_error(refusal.status, refusal.message, refusal.headers())
            authorizer = authorized.context()
        event = build_event(
            request,
            route_key=route.key,
            path_parameters=path_parameters,
            request_id=request_id,
            api_id=self.api_id,
            account_id=self.account_id,
            authorizer=authorizer,
            now=time.time(),
        )
        return self._call(route.function_arn, event)

    def _call(self, function_arn: str, event: dict[str, Any]) -> GatewayResponse:
        try:
            payload, error_type = self._invoke(function_arn, json.dumps(event).encode())
        except Exception:
            log.exception("HTTP API %s: invoking %s failed", self.api_id, function_arn)
            return gateway_error(500, "Internal Server Error")
        if error_type is not None:
            log.info("HTTP API %s: %s failed with %s", self.api_id, function_arn, error_type)
            return gateway_error(500, "Internal Server Error")
        try:
            return map_response(payload)
        except InvalidResponse as invalid:
            log.warning("HTTP API %s: %s answered what API Gateway cannot send: %s", self.api_id, function_arn, invalid)
            return gateway_error(500, "Internal Server Error")
