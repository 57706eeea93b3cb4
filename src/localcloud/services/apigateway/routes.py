"""The routes of an HTTP API's OpenAPI definition, and how API Gateway picks one for a request.

A route is a method (or ``ANY``) and a path template whose segments are static, ``{name}`` or, last only, a greedy
``{name+}``; ``$default`` catches what nothing else does. API Gateway picks the most specific match: a full match
(static segments before variables, left to right), then a greedy one (the longer static prefix first), then
``$default``; for the same path a route's own method before ``ANY``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_ROUTE", "Route", "RouteTable", "Security", "function_arn_of", "parse_routes"]

DEFAULT_ROUTE = "$default"
ANY_METHOD = "x-amazon-apigateway-any-method"
INTEGRATION = "x-amazon-apigateway-integration"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch")

# What a route's security may name besides a JWT authorizer: nothing to check.
NO_AUTHORIZER = "NONE"

_STATIC, _VARIABLE, _GREEDY = 0, 1, 2


@dataclass(frozen=True)
class Security:
    """The authorizer a route requires, with the scopes of which the token must carry at least one."""

    authorizer: str
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Route:
    method: str  # "GET", "POST"... or "ANY"
    path: str  # "/uploads/{id}", or "$default"
    function_arn: str
    security: Security | None = None

    @property
    def key(self) -> str:
        """The route key, as the event's ``routeKey`` carries it."""
        return DEFAULT_ROUTE if self.path == DEFAULT_ROUTE else f"{self.method} {self.path}"

    @property
    def _segments(self) -> list[str]:
        return self.path[1:].split("/")

    def rank(self) -> tuple[Any, ...]:
        """Sorts the most specific route first."""
        if self.path == DEFAULT_ROUTE:
            return (2,)
        kinds = tuple(_kind(segment) for segment in self._segments)
        return (1 if kinds[-1] == _GREEDY else 0, kinds, self.method == "ANY")

    def match(self, method: str, raw_path: str) -> dict[str, str] | None:
        """The path parameters (URL-decoded) if this route takes the request, else None."""
        if self.method not in ("ANY", method):
            return None
        if self.path == DEFAULT_ROUTE:
            return {}
        template, segments = self._segments, raw_path[1:].split("/")
        greedy = _kind(template[-1]) == _GREEDY
        too_short = len(segments) < len(template)
        if too_short or (not greedy and len(segments) != len(template)):
            return None
        parameters: dict[str, str] = {}
        for index, part in enumerate(template):
            kind = _kind(part)
            if kind == _GREEDY:
                rest = "/".join(segments[index:])
                if not rest:
                    return None
                parameters[part[1:-2]] = urllib.parse.unquote(rest)
            elif kind == _VARIABLE:
                if not segments[index]:
                    return None
                parameters[part[1:-1]] = urllib.parse.unquote(segments[index])
            elif urllib.parse.unquote(segments[index]) != part:
                return None
        return parameters


def _kind(segment: str) -> int:
    if segment.startswith("{") and segment.endswith("+}"):
        return _GREEDY
    if segment.startswith("{") and segment.endswith("}"):
        return _VARIABLE
    return _STATIC


class RouteTable:
    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = sorted(routes, key=Route.rank)

    def match(self, method: str, raw_path: str) -> tuple[Route, dict[str, str]] | None:
        """The route API Gateway picks for a request, with its path parameters; None: 404."""
        for route in self.routes:
            parameters = route.match(method, raw_path)
            if parameters is not None:
                return route, parameters
        return None


def function_arn_of(uri: str) -> str:
    """The Lambda function of an integration URI (``arn:aws:apigateway:...:lambda:path/2015-03-31/functions/<arn>/
    invocations``, or the function's ARN itself)."""
    if "/functions/" in uri:
        return uri.split("/functions/", 1)[1].removesuffix("/invocations")
    if uri.startswith("arn:") and ":lambda:" in uri and ":function:" in uri:
        return uri
    raise ValueError(f"not a Lambda integration URI: {uri!r}")


def _security(requirements: Any, authorizers: Mapping[str, Any], where: str) -> Security | None:
    """The first of an operation's security requirements (an API Gateway route has one authorizer)."""
    if not requirements:
        return None
    requirement = requirements[0]
    if not isinstance(requirement, Mapping):
        raise ValueError(f"{where}: a security requirement must be a mapping, not {requirement!r}")
    if not requirement:
        return None
    name, scopes = next(iter(requirement.items()))
    if name == NO_AUTHORIZER:
        return None
    if name not in authorizers:
        raise ValueError(f"{where}: security names {name!r}, which is not a JWT authorizer the local cloud emulates")
    return Security(name, tuple(scopes or ()))


def _integration_arn(operation: Mapping[str, Any], where: str) -> str | None:
    integration = operation.get(INTEGRATION)
    if not isinstance(integration, Mapping):
        return None
    kind = str(integration.get("type", "")).lower()
    if kind != "aws_proxy":
        raise ValueError(f"{where}: integration type {kind!r} is not emulated (only Lambda proxy, aws_proxy)")
    version = str(integration.get("payloadFormatVersion", "2.0"))
    if version != "2.0":
        raise ValueError(f"{where}: payload format version {version} is not emulated (only 2.0)")
    return function_arn_of(str(integration["uri"]))


def parse_routes(definition: Mapping[str, Any], authorizers: Mapping[str, Any]) -> list[Route]:
    """The routes of an OpenAPI 3 definition as API Gateway imports it: one per path and method with a Lambda proxy
    integration; an operation's ``security`` overrides the document's."""
    routes: list[Route] = []
    default_security = definition.get("security")
    for path, item in (definition.get("paths") or {}).items():
        if not isinstance(item, Mapping):
            continue
        segments = [] if path == DEFAULT_ROUTE else path[1:].split("/")
        if any(_kind(segment) == _GREEDY for segment in segments[:-1]):
            raise ValueError(f"{path}: a greedy path variable must be the path's last segment")
        for name, operation in item.items():
            if name not in (*METHODS, ANY_METHOD) or not isinstance(operation, Mapping):
                continue
            where = f"{name.upper()} {path}"
            arn = _integration_arn(operation, where)
            if arn is None:
                continue
            security = _security(operation.get("security", default_security), authorizers, where)
            method = "ANY" if name == ANY_METHOD else name.upper()
            routes.append(Route(method, path, arn, security))
    return routes
