"""The console's Flask application: security headers, errors and template helpers; the shared state is
``state.Console``, the pages are in ``views_executions`` and ``views_pages``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from flask import Flask, Response, render_template, request
from werkzeug.exceptions import BadRequest, HTTPException

from imgpipe.console import views_executions, views_pages
from imgpipe.console.state import Console

HERE: Final = Path(__file__).parent
VENDOR: Final = HERE / "static" / "vendor"
#: Scripts and styles only from the console itself; images and requests also to S3 and the upload API.
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: http: https:; "
    "connect-src 'self' http: https:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


def when(value: Any) -> str:
    if not isinstance(value, datetime):
        return str(value or "")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def clock(value: Any) -> str:
    """A time of day to the millisecond, in UTC."""
    if not isinstance(value, datetime):
        return str(value or "")
    return value.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3]


def duration(value: float | int | None, unit: str = "s") -> str:
    """``1.23 s``, ``2 min 05 s``, ``1 h 02 min``; ``value`` in seconds or (unit ms) milliseconds."""
    if value is None:
        return "-"
    s = value / 1000 if unit == "ms" else float(value)
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 60:
        return f"{s:.2f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def hostname(host: str) -> str:
    """``host[:port]`` or ``[v6][:port]`` without the port."""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0]


def _error_page(exc: HTTPException) -> tuple[str, int]:
    code = exc.code or 500
    return render_template("error.html", code=code, title=exc.name, message=exc.description), code


def create_app(console: Console, allowed_hosts: frozenset[str] | None = LOOPBACK) -> Flask:
    """The console's app. With ``allowed_hosts``, requests naming another Host are refused (a page
    elsewhere cannot reach the console through DNS rebinding: it holds the user's credentials)."""
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.extensions["imgpipe_console"] = console
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["duration"] = duration
    app.jinja_env.filters["clock"] = clock
    app.jinja_env.globals["vendored"] = (VENDOR / "htmx.min.js").is_file() and (VENDOR / "dagre.min.js").is_file()

    @app.context_processor
    def _shared() -> dict[str, Any]:
        return {"backend": console.backend, "csrf": console.csrf, "now": datetime.now(UTC)}

    @app.before_request
    def _host_check() -> None:
        if allowed_hosts is not None and hostname(request.host) not in allowed_hosts:
            raise BadRequest(f"this console answers only on {', '.join(sorted(allowed_hosts))}")

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        if not request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    app.register_error_handler(HTTPException, _error_page)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"ok": True, "stack": console.backend.stack_name, "local": console.backend.local}

    views_executions.register(app, console)
    views_pages.register(app, console)
    return app
