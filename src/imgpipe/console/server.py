"""Run the console: werkzeug's threaded WSGI server on a thread of its own, beside ``imgpipe serve``'s
local cloud or alone against a deployed stack (``imgpipe console``)."""

from __future__ import annotations

import errno
import socket
import threading
from pathlib import Path
from typing import Any, Final

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from imgpipe.console.app import LOOPBACK, create_app
from imgpipe.console.backend import Backend, ConsoleError
from imgpipe.console.messages import Inbox
from imgpipe.console.state import Console

#: The console's port when none is asked for and it is free (the local cloud has 4566, its API 4567).
DEFAULT_PORT: Final = 4568


class _QuietHandler(WSGIRequestHandler):
    """No access log on the terminal: ``imgpipe serve`` prints the functions' REPORT lines there."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _bound(host: str, port: int) -> socket.socket:
    """A listening socket (werkzeug's own binding would exit the process when the port is taken)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _listen(host: str, port: int | None, app: Any) -> BaseWSGIServer:
    """A server on ``port``; with None, on DEFAULT_PORT when it is free or else on any free port."""
    try:
        sock = _bound(host, DEFAULT_PORT if port is None else port)
    except OSError as exc:
        if port is not None or exc.errno != errno.EADDRINUSE:
            raise ConsoleError(f"cannot listen on {host}:{DEFAULT_PORT if port is None else port}: {exc}") from exc
        sock = _bound(host, 0)
    try:
        bound = int(sock.getsockname()[1])
        return make_server(host, bound, app, threaded=True, request_handler=_QuietHandler, fd=sock.fileno())
    finally:
        sock.close()  # the server holds a duplicate of it


class ConsoleServer:
    """The console's app, served until ``stop()``; its inbox (when subscribed) removed then."""

    def __init__(
        self,
        backend: Backend,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        subscribe: bool = False,
        examples: Path | None = None,
        api_token: str | None = None,
    ) -> None:
        from localcloud.sam import ROOT

        self.backend = backend
        self.host = host
        self.port = port
        self.subscribe = subscribe and backend.outputs.get("TopicArn") is not None
        self.console = Console(backend, examples or ROOT / "events", api_token=api_token)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._server.server_address[1]}"

    def start(self) -> ConsoleServer:
        if self.subscribe and self.backend.outputs.get("TopicArn") is not None:
            self.console.inbox = Inbox(self.backend.sqs, self.backend.sns, self.backend.outputs["TopicArn"]).start()
        # Bound to loopback, the console answers only to loopback names; bound elsewhere, to any.
        hosts = LOOPBACK if self.host in LOOPBACK else None
        try:
            self._server = _listen(self.host, self.port, create_app(self.console, hosts))
        except ConsoleError:
            self.stop()
            raise
        self._thread = threading.Thread(target=self._server.serve_forever, name="console", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.console.inbox is not None:
            self.console.inbox.stop()
        self.console.close()

    def __enter__(self) -> ConsoleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
