"""A local OpenID Connect issuer for tests: a small threaded HTTP server on 127.0.0.1 that serves
``/.well-known/openid-configuration`` and the JWKS of an RSA key, and mints tokens signed with it.

    with LocalIssuer(audience="imgpipe-local") as issuer:
        token = issuer.token(scope="uploads/write")          # valid for an hour
        issuer.token(exp=int(time.time()) - 60)              # expired
        issuer.token(aud=None, client_id="imgpipe-local")    # None drops a claim
        issuer.token(signing_key=LocalIssuer.new_key())      # signed with a key the JWKS does not have
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

__all__ = ["LocalIssuer"]

OPENID_CONFIGURATION = "/.well-known/openid-configuration"
JWKS_PATH = "/.well-known/jwks.json"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, issuer: LocalIssuer) -> None:
        self.issuer = issuer
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        issuer = self.server.issuer
        path = self.path.split("?", 1)[0]
        with issuer.lock:
            issuer.requests.append(path)
        if path == OPENID_CONFIGURATION:
            document: Any = {
                "issuer": issuer.url,
                "jwks_uri": issuer.url + JWKS_PATH,
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        elif path == JWKS_PATH:
            document = issuer.jwks()
        else:
            document = None
        body = json.dumps(document or {"error": "not found"}).encode()
        self.send_response(200 if document is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class LocalIssuer:
    """An OIDC issuer whose URL (``url``, also the tokens' ``iss``) is only known once started."""

    def __init__(self, audience: str = "imgpipe-local", kid: str = "local-key-1") -> None:
        self.audience = audience
        self.kid = kid
        self.key = self.new_key()
        self.requests: list[str] = []  # the paths served, in order
        self.lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def new_key() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the issuer is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalIssuer:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-oidc-issuer", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> LocalIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def jwks(self) -> dict[str, Any]:
        public = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """Claims of a valid access token (an hour left), with overrides; an override of None drops the claim."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": self.audience,
            "sub": "local-user",
            "iat": now,
            "exp": now + 3600,
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(
        self,
        *,
        signing_key: rsa.RSAPrivateKey | None = None,
        algorithm: str = "RS256",
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A token signed with the issuer's key (or signing_key), its header naming the issuer's kid; headers
        override the JWT header (``{"kid": None}`` drops it)."""
        header = {"kid": self.kid, **(headers or {})}
        header = {name: value for name, value in header.items() if value is not None}
        return jwt.encode(self.claims(**claims), signing_key or self.key, algorithm=algorithm, headers=header)
