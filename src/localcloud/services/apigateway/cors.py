"""An HTTP API's CORS configuration (``x-amazon-apigateway-cors``), as API Gateway applies it.

* A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) that no route takes by its own
  method (an ``OPTIONS`` or ``ANY`` route, or ``$default``) is answered by the gateway: 204, no function, no authorizer.
* Other responses to an allowed ``Origin`` get ``Access-Control-Allow-Origin`` (and ``-Allow-Credentials``,
  ``-Expose-Headers`` when configured).
* The integration's own ``Access-Control-*`` headers are dropped: the configuration wins.

Allowed origins are exact, ``*``, or a scheme wildcard (``https://*``, ``http://*``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Cors"]

CORS_EXTENSION = "x-amazon-apigateway-cors"


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(item) for item in value)


@dataclass(frozen=True)
class Cors:
    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False

    @classmethod
    def from_definition(cls, definition: Mapping[str, Any]) -> Cors | None:
        config = definition.get(CORS_EXTENSION)
        if not isinstance(config, Mapping):
            return None
        max_age = config.get("maxAge")
        return cls(
            allow_origins=_strings(config.get("allowOrigins")),
            allow_methods=tuple(method.upper() for method in _strings(config.get("allowMethods"))),
            allow_headers=tuple(header.lower() for header in _strings(config.get("allowHeaders"))),
            expose_headers=_strings(config.get("exposeHeaders")),
            max_age=None if max_age is None else int(max_age),
            allow_credentials=bool(config.get("allowCredentials", False)),
        )

    def allowed_origin(self, origin: str | None) -> str | None:
        """The ``Access-Control-Allow-Origin`` for a request's ``Origin``; None if it is not allowed."""
        if not origin:
            return None
        for allowed in self.allow_origins:
            if allowed == "*":
                return "*"
            if allowed == origin or (allowed.endswith("://*") and origin.startswith(allowed[:-1])):
                return origin
        return None

    @staticmethod
    def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
        return (
            method == "OPTIONS" and bool(headers.get("origin")) and bool(headers.get("access-control-request-method"))
        )

    def preflight_headers(self, headers: Mapping[str, str]) -> list[tuple[str, str]]:
        """The headers of the gateway's answer to a preflight; none unless its origin and method are allowed."""
        origin = self.allowed_origin(headers.get("origin"))
        method = headers.get("access-control-request-method", "").upper()
        if origin is None or ("*" not in self.allow_methods and method not in self.allow_methods):
            return []
        methods = method if "*" in self.allow_methods else ",".join(self.allow_methods)
        requested = headers.get("access-control-request-headers", "")
        allow_headers = requested if "*" in self.allow_headers else ",".join(self.allow_headers)
        answer = [("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Methods", methods)]
        if allow_headers:
            answer.append(("Access-Control-Allow-Headers", allow_headers))
        if self.max_age is not None:
            answer.append(("Access-Control-Max-Age", str(self.max_age)))
        if self.allow_credentials:
            answer.append(("Access-Control-Allow-Credentials", "true"))
        return answer

    def apply(self, response_headers: Iterable[tuple[str, str]], origin: str | None) -> list[tuple[str, str]]:
        """A response's headers as the client gets them: the integration's CORS headers replaced by the API's."""
        kept = [(name, value) for name, value in response_headers if not name.lower().startswith("access-control-")]
        allowed = self.allowed_origin(origin)
        if allowed is None:
            return kept
        kept.append(("Access-Control-Allow-Origin", allowed))
        if self.allow_credentials:
            kept.append(("Access-Control-Allow-Credentials", "true"))
        if self.expose_headers:
            kept.append(("Access-Control-Expose-Headers", ",".join(self.expose_headers)))
        return kept
