"""The upload API with ApiAuth=JWT on the local cloud: tokens of a local OpenID Connect issuer,
checked as API Gateway's JWT authorizer checks them (issuer, audience, expiry, signature by JWKS)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from localcloud.cloud import LocalCloud
from tests.localcloud.services.jwt_issuer import LocalIssuer

pytestmark = pytest.mark.slow

AUDIENCE = "imgpipe-app"
BODY: dict[str, Any] = {"filename": "beach.jpg", "contentType": "image/jpeg", "size": 1000}


@pytest.fixture(scope="module")
def secured() -> Iterator[tuple[LocalIssuer, str]]:
    with LocalIssuer(audience=AUDIENCE) as issuer, LocalCloud() as cloud:
        cloud.deploy({"ApiAuth": "JWT", "JwtIssuer": issuer.url, "JwtAudience": AUDIENCE})
        assert cloud.api_url is not None
        yield issuer, cloud.api_url


def _post(api_url: str, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.post(f"{api_url}/uploads", json=BODY, headers=headers, timeout=30)


def test_a_valid_token_is_let_through(secured: tuple[LocalIssuer, str]) -> None:
    issuer, api_url = secured
    created = _post(api_url, issuer.token())
    assert created.status_code == 201, created.text
    status = requests.get(created.json()["statusUrl"], headers={"Authorization": issuer.token()}, timeout=30)
    assert status.json()["status"] == "PENDING"


@pytest.mark.parametrize(
    "token",
    ["missing", "garbage", "expired", "other audience", "other issuer", "other key"],
)
def test_a_missing_or_bad_token_is_a_401(secured: tuple[LocalIssuer, str], token: str) -> None:
    issuer, api_url = secured
    made = {
        "missing": None,
        "garbage": "not-a-jwt",
        "expired": issuer.token(exp=int(time.time()) - 60),
        "other audience": issuer.token(aud="someone-else"),
        "other issuer": issuer.token(iss="https://issuer.example"),
        "other key": issuer.token(signing_key=LocalIssuer.new_key()),
    }[token]
    refused = _post(api_url, made)
    assert refused.status_code == 401
    assert refused.json() == {"message": "Unauthorized"}
    assert requests.get(f"{api_url}/uploads", timeout=30).status_code == 401


def test_a_preflight_needs_no_token(secured: tuple[LocalIssuer, str]) -> None:
    _, api_url = secured
    preflight = requests.options(
        f"{api_url}/uploads",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        timeout=30,
    )
    assert preflight.status_code == 204
