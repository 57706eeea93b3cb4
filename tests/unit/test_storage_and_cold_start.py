"""AWS failures become the pipeline's error names; configuration is checked at cold start."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from pipeline import errors
from pipeline.storage import translated
from tests.sdk import put_object_headers

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def client_error(code: str, status: int) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "Op")


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("SlowDown", 503, errors.TransientError),
        ("InternalError", 500, errors.TransientError),
        ("ServiceUnavailable", 503, errors.TransientError),
        ("SomethingNew", 502, errors.TransientError),
        ("NoSuchKey", 404, errors.SourceMissing),
        ("404", 404, errors.SourceMissing),
        ("PreconditionFailed", 412, errors.SourceChanged),
    ],
)
def test_client_errors_are_translated(code: str, status: int, expected: type[Exception]) -> None:
    with pytest.raises(expected, match="GET thing"), translated("GET thing"):
        raise client_error(code, status)


def test_access_denied_is_not_retried_as_transient() -> None:
    with pytest.raises(ClientError), translated("GET thing"):
        raise client_error("AccessDenied", 403)


def test_connection_errors_are_transient() -> None:
    with pytest.raises(errors.TransientError), translated("GET thing"):
        raise EndpointConnectionError(endpoint_url="https://s3.example")


@pytest.mark.parametrize(
    ("name", "variable", "value"),
    [
        ("validate", "MAX_PIXELS", "lots"),
        ("resize", "RENDITION_WIDTHS", "big,small"),
        ("watermark", "OUTPUT_FORMATS", "gif"),
        ("watermark", "WATERMARK_POSITION", "middle"),
        ("store", "UPLOAD_PREFIX", "../escape/"),
    ],
)
def test_bad_configuration_fails_the_cold_start_naming_the_variable(
    load_handler: Callable[..., ModuleType], name: str, variable: str, value: str
) -> None:
    with pytest.raises(errors.ConfigurationError, match=variable):
        load_handler(name, **{variable: value})


@pytest.mark.parametrize("name", sorted(p.parent.name for p in FUNCTIONS.glob("*/app.py")))
def test_handlers_are_thin(name: str) -> None:
    """A handler parses, delegates to one step function and returns: at most 15 lines of code."""
    source = (FUNCTIONS / name / "app.py").read_text()
    tree = ast.parse(source)
    code_lines = {
        line
        for node in ast.walk(tree)
        if isinstance(node, ast.stmt) and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
        for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)
    }
    assert len(code_lines) <= 15, f"{name}/app.py has {len(code_lines)} lines of code"
    assert "boto3" not in source, "AWS calls belong in the layer"
    assert "PIL" not in source, "imaging belongs in the layer"


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:4566", "https://s3.us-east-1.amazonaws.com"])
def test_s3_payloads_are_not_hashed_for_signing(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 10 MB intermediate is sent, not SHA-256 hashed first, on AWS and on the local cloud alike."""
    from pipeline import storage

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    storage.session.cache_clear()
    store = storage.S3Store.create()
    sent = put_object_headers(store.client, lambda: store.write("bucket", "staging/1.tiff", b"\0" * 1024, "image/tiff"))
    # plain HTTP: UNSIGNED-PAYLOAD; HTTPS: STREAMING-UNSIGNED-PAYLOAD-TRAILER (the CRC32 in a trailer)
    assert (
        sent["X-Amz-Content-SHA256"].endswith("UNSIGNED-PAYLOAD") or "UNSIGNED-PAYLOAD-" in sent["X-Amz-Content-SHA256"]
    )
    storage.session.cache_clear()
