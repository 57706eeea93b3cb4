"""The Lambda Runtime API of one worker: a small threaded HTTP server on 127.0.0.1 that awslambdaric talks to.

Every worker has an endpoint of its own, so the server always knows which invocation a request belongs to; it
passes each request on to its worker (a RuntimeAPIWorker).

The protocol, as awslambdaric 4.2.2 speaks it:

* ``GET /2018-06-01/runtime/invocation/next`` long-polls for the next event.  The response carries the event as the
  body and the headers ``Lambda-Runtime-Aws-Request-Id``, ``Lambda-Runtime-Deadline-Ms`` (epoch milliseconds, from
  which ``context.get_remaining_time_in_millis()`` is computed), ``Lambda-Runtime-Invoked-Function-Arn``,
  ``Lambda-Runtime-Trace-Id`` and ``Content-Type: application/json`` (without it the event reaches the handler as
  raw bytes instead of parsed JSON).
* ``POST /2018-06-01/runtime/invocation/<id>/response`` with the handler's result.
* ``POST /2018-06-01/runtime/invocation/<id>/error`` with ``{"errorMessage", "errorType", "requestId",
  "stackTrace"}``; ``errorType`` is the exception's class name.
* ``POST /2018-06-01/runtime/init/error`` when the handler cannot be loaded (the module raises at import, the handler
  is missing...); the client then exits with status 1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

__all__ = ["RUNTIME_API_PREFIX", "RuntimeAPIHandler", "RuntimeAPIServer", "RuntimeAPIWorker", "error_json"]

RUNTIME_API_PREFIX = "/2018-06-01/runtime"


def error_json(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


class RuntimeAPIWorker(Protocol):
    """What the Runtime API server needs from the worker it serves (called from the server's threads)."""

    def serve_next(self, handler: RuntimeAPIHandler) -> None:
        """Answer ``GET /invocation/next`` through handler.send(), once there is an event (or the worker stops)."""

    def on_result(self, request_id: str, body: bytes, is_error: bool, header_type: str | None) -> bool:
        """A ``/response`` or ``/error`` POST; False if request_id is not the invocation in flight."""

    def on_init_error(self, body: bytes, header_type: str | None) -> None:
        """An ``/init/error`` POST."""


class RuntimeAPIServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, worker: RuntimeAPIWorker) -> None:
        self.worker = worker
        super().__init__(("127.0.0.1", 0), RuntimeAPIHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A worker killed mid-request leaves a broken connection behind; that is expected.
        pass


class RuntimeAPIHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm against the client's delayed ACKs, each
    # exchange would stall for ~40 ms.
    disable_nagle_algorithm = True
    server: RuntimeAPIServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send(self, code: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if not headers or "Content-Type" not in headers:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.split("?")[0] == f"{RUNTIME_API_PREFIX}/invocation/next":
            self.server.worker.serve_next(self)
        else:
            self.send(404, error_json("InvalidRequest", f"no route for GET {self.path}"))

    def do_POST(self) -> None:
        body = self._read_body()
        parts = self.path.split("?")[0].removeprefix(RUNTIME_API_PREFIX).strip("/").split("/")
        header_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
        worker = self.server.worker
        if parts == ["init", "error"]:
            worker.on_init_error(body, header_type)
            self.send(202, b'{"status":"OK"}')
        elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            if worker.on_result(parts[1], body, parts[2] == "error", header_type):
                self.send(202, b'{"status":"OK"}')
            else:
                self.send(400, error_json("InvalidRequestID", f"Invalid request ID: {parts[1]}"))
        else:
            self.send(404, error_json("InvalidRequest", f"no route for POST {self.path}"))
