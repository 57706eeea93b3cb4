"""The server's front door: moto's dispatcher, which routes every request to its service's backend.

Patches: ``fault_injection`` (armed ``RequestFault`` answers instead of the service) and
``dispatch_backend_lookup_cached``.
"""

from __future__ import annotations

import urllib.parse
import weakref
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication

from localcloud.faults import FAULTS, RequestFault
from localcloud.patching import Patch, original

# -- fault_injection -------------------------------------------------------------------------------


def _service_of(environ: dict[str, Any]) -> str:
    scope = environ.get("HTTP_AUTHORIZATION", "").split("Credential=", 1)[-1].split(",", 1)[0].split("/")
    return scope[3] if len(scope) >= 5 else ""


def _error_body(fault: RequestFault, service: str) -> tuple[bytes, str]:
    message = "Reduce your request rate." if fault.code == "SlowDown" else "Injected by the local cloud."
    if service in ("s3",):
        body = f"<Error><Code>{fault.code}</Code><Message>{message}</Message></Error>"
    else:
        body = (
            f"<ErrorResponse><Error><Type>Receiver</Type><Code>{fault.code}</Code>"
            f"<Message>{message}</Message></Error></ErrorResponse>"
        )
    return body.encode(), "application/xml"


def _dispatch(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
    """moto 5.2.5 has no way to make a service fail on purpose; the local cloud needs one to prove retries."""
    if FAULTS:
        service = _service_of(environ)
        method = environ.get("REQUEST_METHOD", "")
        path = urllib.parse.unquote(environ.get("PATH_INFO", ""))
        fault = FAULTS.take(RequestFault, lambda f: f.matches(service, method, path))
        if fault is not None:
            body, content_type = _error_body(fault, service)
            headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
            start_response(f"{fault.status} Injected", headers)
            return [body]
    return original(DomainDispatcherApplication, "__call__")(self, environ, start_response)


# -- dispatch_backend_lookup_cached ----------------------------------------------------------------

_hosts: weakref.WeakKeyDictionary[Any, dict[str | None, Any]] = weakref.WeakKeyDictionary()


def _backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
    """moto 5.2.5 lists its package directory (a stat per service) and tries every service's URL
    patterns, for every request, under the dispatcher's one lock: about half a millisecond a request.
    Both are fixed once moto is installed and the dispatcher made, so the answer for a host is too."""
    known = _hosts.setdefault(self, {})
    if host not in known:
        known[host] = original(DomainDispatcherApplication, "get_backend_for_host")(self, host)
    return known[host]


PATCHES = (
    Patch(("fault_injection",), DomainDispatcherApplication, "__call__", _dispatch),
    Patch(("dispatch_backend_lookup_cached",), DomainDispatcherApplication, "get_backend_for_host", _backend_for_host),
)


def reset() -> None:
    """Forget the faults and the hosts' backends."""
    FAULTS.clear()
    _hosts.clear()
