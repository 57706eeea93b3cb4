"""localcloud.services.server against moto itself: each gap still there, each patch
closing it (see conftest.py)."""

from __future__ import annotations

import os
from typing import Any

import moto
import pytest
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

from localcloud import patching
from localcloud.faults import FAULTS, RequestFault
from tests.localcloud.services.helpers import Clients


def _signed(service: str) -> dict[str, str]:
    return {"Authorization": f"AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/{service}/aws4_request, Signature=x"}


def test_gap_fault_injection(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap:
    drop patch fault_injection from localcloud.services.server (use moto's own)."""
    from moto.moto_api._internal.urls import url_paths

    assert not [path for path in url_paths if "fault" in path.lower() or "chaos" in path.lower()]


def test_patched_fault_injection(patched: Clients) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.test import Client

    patched.s3.create_bucket(Bucket="faulty")
    app = Client(DomainDispatcherApplication(create_backend_app))
    fault = FAULTS.arm(RequestFault(service="s3", count=2, method="PUT", path_prefix="/faulty/in/"))
    statuses = [app.put("/faulty/in/a.jpg", data=b"x", headers=_signed("s3")).status_code for _ in range(3)]
    assert statuses[:2] == [503, 503]
    assert statuses[2] == 200
    assert fault.hits == 2
    denied = app.put("/faulty/in/b.jpg", data=b"x", headers=_signed("s3"))
    assert denied.status_code == 200, "a fault answers only its count"
    other = FAULTS.arm(RequestFault(service="sns", count=1, code="InternalError", status=500))
    assert app.put("/faulty/out/c.jpg", data=b"x", headers=_signed("s3")).status_code == 200, "other service"
    assert other.hits == 0
    body = app.post("/", data="Action=ListTopics", headers=_signed("sns"))
    assert body.status_code == 500
    assert b"<Code>InternalError</Code>" in body.data


HOSTS = (
    "lambda.us-east-1.amazonaws.com",
    "states.us-east-1.amazonaws.com",
    "s3.amazonaws.com",
    "bucket.s3.amazonaws.com",
    "sqs.eu-west-1.amazonaws.com",
    "moto_api",
    "sns",
    None,
)


def _counting_listdir(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    listdir = os.listdir

    def counting(path: Any = ".") -> list[str]:
        calls.append(str(path))
        return listdir(path)

    monkeypatch.setattr(os, "listdir", counting)
    return calls


def test_gap_dispatch_backend_lookup_cached(unpatched: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    """If this fails, moto fixed the gap:
    drop patch dispatch_backend_lookup_cached from localcloud.services.server."""
    from moto.moto_server.werkzeug_app import create_backend_app

    app = DomainDispatcherApplication(create_backend_app)
    calls = _counting_listdir(monkeypatch)
    assert [app.get_backend_for_host("lambda.us-east-1.amazonaws.com") for _ in range(3)] == ["awslambda"] * 3
    assert len(calls) == 3, "moto's package directory is listed for every lookup"
    assert all(path == os.path.dirname(moto.__file__) for path in calls)


def test_patched_dispatch_backend_lookup_cached(patched: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.moto_server.werkzeug_app import create_backend_app
    from werkzeug.test import Client

    app = DomainDispatcherApplication(create_backend_app)
    original = patching.original(DomainDispatcherApplication, "get_backend_for_host")
    expected = [original(app, host) for host in HOSTS]
    assert expected[:3] == ["awslambda", "stepfunctions", "s3"]
    calls = _counting_listdir(monkeypatch)
    assert [app.get_backend_for_host(host) for host in HOSTS] == expected
    first_round = len(calls)
    assert [app.get_backend_for_host(host) for host in HOSTS] * 2 == expected * 2
    assert len(calls) == first_round, "answered from the cache"
    # Another dispatcher has its own answers.
    other = DomainDispatcherApplication(create_backend_app)
    assert other.get_backend_for_host(HOSTS[0]) == "awslambda"
    assert len(calls) == first_round + 1
    # Requests are still routed by it.
    topics = Client(app).post("/", data="Action=ListTopics", headers=_signed("sns"))
    assert topics.status_code == 200
    assert b"ListTopicsResponse" in topics.data
