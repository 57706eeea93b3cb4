"""The JWT authorizer of an HTTP API, as API Gateway documents it
(https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html):

1. The token from the identity source (``$request.header.Authorization``), with or without a ``Bearer `` prefix.
2. Its signature, with the key its ``kid`` names in the issuer's JWKS (``jwks_uri`` of
   ``{issuer}/.well-known/openid-configuration``, both cached); RSA algorithms only.
3. Its claims: ``iss`` equal to the issuer; ``aud`` (or, only without ``aud``, ``client_id``) one of the audiences;
   ``exp`` present and not passed; ``nbf`` and ``iat`` not in the future.
4. If the route has authorization scopes, ``scope`` (or ``scp``) must hold at least one: else 403.

A failure is a 401 with ``www-authenticate: Bearer scope="" error="invalid_token" error_description="..."``.
The claims reach the integration as strings (numbers as written, arrays ``[a b]``, objects ``map[k:v]``), as HTTP
APIs pass them.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

__all__ = ["RSA_ALGORITHMS", "AuthorizationError", "Authorized", "JwtAuthorizer", "authorizers_of", "claim_string"]

log = logging.getLogger(__name__)

RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
AUTHORIZER_EXTENSION = "x-amazon-apigateway-authorizer"


class AuthorizationError(Exception):
    """The request is refused: 401 (no valid token) or 403 (no required scope)."""

    def __init__(self, status: int, description: str | None, scopes: Sequence[str] = ()) -> None:
        super().__init__(description or "no token")
        self.status = status
        self.description = description
        self.scopes = tuple(scopes)

    @property
    def message(self) -> str:
        return "Unauthorized" if self.status == 401 else "Forbidden"

    def headers(self) -> list[tuple[str, str]]:
        """The ``www-authenticate`` header; none when the request had no token at all."""
        if self.description is None:
            return []
        error = "invalid_token" if self.status == 401 else "insufficient_scope"
        scope = " ".join(self.scopes)
        description = self.description.replace('"', "'")
        return [("www-authenticate", f'Bearer scope="{scope}" error="{error}" error_description="{description}"')]


@dataclass(frozen=True)
class Authorized:
    claims: dict[str, str]
    scopes: list[str] | None

    def context(self) -> dict[str, Any]:
        """The event's ``requestContext.authorizer``."""
        return {"jwt": {"claims": self.claims, "scopes": self.scopes}}


def claim_string(value: Any) -> str:
    """A claim as HTTP APIs pass it to the integration: a string, formatted the way Go's ``%v`` does."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + " ".join(claim_string(item) for item in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{claim_string(value[key])}" for key in sorted(value)) + "]"
    return str(value)


def _token_scopes(claims: Mapping[str, Any]) -> list[str]:
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            return value.split()
        if isinstance(value, list):
            return [str(item) for item in value]
    return []


def _fetch_json(url: str, timeout: float) -> Any:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url}")
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (scheme checked above)
        return json.load(response)


class JwtAuthorizer:
    def __init__(self, name: str, issuer: str, audience: Sequence[str], identity_source: str, timeout: float = 5.0):
        self.name = name
        self.issuer = issuer
        self.audience = tuple(audience)
        self.identity_source = identity_source.split(",", 1)[0].strip()
        self.timeout = timeout
        self._jwks: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()
        kind, _, self._identity_name = self.identity_source.removeprefix("$request.").partition(".")
        if kind not in ("header", "querystring") or not self._identity_name:
            raise ValueError(f"authorizer {name}: identity source {identity_source!r} is not a header or query string")

    @classmethod
    def from_scheme(cls, name: str, scheme: Mapping[str, Any]) -> JwtAuthorizer:
        """From a security scheme's ``x-amazon-apigateway-authorizer`` (``type: jwt``)."""
        config = scheme[AUTHORIZER_EXTENSION]
        jwt_config = config.get("jwtConfiguration") or {}
        issuer = jwt_config.get("issuer", jwt_config.get("Issuer"))
        audience = jwt_config.get("audience", jwt_config.get("Audience")) or []
        if not issuer:
            raise ValueError(f"authorizer {name}: jwtConfiguration has no issuer")
        source = config.get("identitySource", "$request.header.Authorization")
        if isinstance(source, list):
            source = ",".join(source)
        return cls(name, str(issuer), [audience] if isinstance(audience, str) else list(audience), str(source))

    def _token(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        if self.identity_source.startswith("$request.header."):
            value = headers.get(self._identity_name.lower())
        else:
            value = query.get(self._identity_name)
        if not value or not value.strip():
            return None
        value = value.strip()
        if value.lower() == "bearer":
            return None
        return value[7:].strip() if value[:7].lower() == "bearer " else value

    def _client(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._jwks is None:
                url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
                try:
                    jwks_uri = _fetch_json(url, self.timeout)["jwks_uri"]
                except (OSError, ValueError, KeyError, TypeError) as error:
                    log.warning("JWT authorizer %s: no jwks_uri from %s: %s", self.name, url, error)
                    raise AuthorizationError(401, "unable to retrieve the issuer's signing keys") from None
                self._jwks = jwt.PyJWKClient(str(jwks_uri), cache_keys=True, lifespan=300, timeout=self.timeout)
            return self._jwks

    def _signing_key(self, token: str) -> tuple[Any, str]:
        if token.count(".") != 2:
            raise AuthorizationError(401, "token contains an invalid number of segments")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise AuthorizationError(401, f"the token is malformed: {error}") from None
        algorithm = header.get("alg")
        if algorithm not in RSA_ALGORITHMS:
            raise AuthorizationError(401, f"signing method {algorithm} is invalid")
        kid = header.get("kid")
        if not kid:
            raise AuthorizationError(401, "the token has no kid header")
        try:
            return self._client().get_signing_key(str(kid)).key, str(algorithm)
        except jwt.PyJWKClientConnectionError as error:
            log.warning("JWT authorizer %s: JWKS unreachable: %s", self.name, error)
            raise AuthorizationError(401, "unable to retrieve the issuer's signing keys") from None
        except jwt.PyJWKClientError:
            raise AuthorizationError(401, f"no key in the issuer's JWKS matches kid {kid}") from None

    def _claims(self, token: str) -> dict[str, Any]:
        key, algorithm = self._signing_key(token)
        options: Any = {"require": ["exp"], "verify_aud": False, "verify_iss": False}
        try:
            claims: dict[str, Any] = jwt.decode(token, key, algorithms=[algorithm], options=options)
        except jwt.ExpiredSignatureError:
            raise AuthorizationError(401, "the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthorizationError(401, "the token is not valid yet") from None
        except jwt.MissingRequiredClaimError as error:
            raise AuthorizationError(401, f"the token has no {error.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthorizationError(401, "the token's signature is invalid") from None
        except jwt.PyJWTError as error:
            raise AuthorizationError(401, f"the token is invalid: {error}") from None
        if claims.get("iss") != self.issuer:
            raise AuthorizationError(401, "the token does not have a valid issuer")
        if "aud" in claims:
            aud = claims["aud"]
            audiences = aud if isinstance(aud, list) else [aud]
        else:
            audiences = [claims["client_id"]] if "client_id" in claims else []
        if not any(isinstance(value, str) and value in self.audience for value in audiences):
            raise AuthorizationError(401, "the token does not have a valid audience")
        return claims

    def authorize(
        self, headers: Mapping[str, str], query: Mapping[str, str], route_scopes: Sequence[str] = ()
    ) -> Authorized:
        """The token's claims; raises AuthorizationError to refuse the request."""
        token = self._token(headers, query)
        if token is None:
            raise AuthorizationError(401, None)
        claims = self._claims(token)
        scopes = _token_scopes(claims)
        if route_scopes and not set(route_scopes) & set(scopes):
            raise AuthorizationError(403, f"expected scopes: [{' '.join(route_scopes)}]", route_scopes)
        return Authorized(
            {name: claim_string(value) for name, value in claims.items()}, scopes if route_scopes else None
        )


def authorizers_of(definition: Mapping[str, Any]) -> dict[str, JwtAuthorizer]:
    """The JWT authorizers among the definition's security schemes, by scheme name."""
    schemes = (definition.get("components") or {}).get("securitySchemes") or {}
    authorizers: dict[str, JwtAuthorizer] = {}
    for name, scheme in schemes.items():
        config = scheme.get(AUTHORIZER_EXTENSION) if isinstance(scheme, Mapping) else None
        if isinstance(config, Mapping) and str(config.get("type", "")).lower() == "jwt":
            authorizers[name] = JwtAuthorizer.from_scheme(name, scheme)
    return authorizers
