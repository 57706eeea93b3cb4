"""What the local cloud sets for the SDKs and for moto, and that users can override it."""

from __future__ import annotations

from typing import Any

import pytest

from localcloud.cloud import CHECKSUM_SETTINGS, LocalCloud, aws_client, local_checksums
from tests.sdk import put_object_headers


def put_headers(client: Any) -> dict[str, str]:
    return put_object_headers(
        client, lambda: client.put_object(Bucket="bucket", Key="staging/1.tiff", Body=b"\0" * 4096)
    )


def test_checksums_only_where_required_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CHECKSUM_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    assert local_checksums() == dict.fromkeys(CHECKSUM_SETTINGS, "when_required")
    sent = put_headers(aws_client("s3", "http://127.0.0.1:4566"))
    assert not any(name.lower().startswith("x-amz-checksum") for name in sent)
    assert "x-amz-trailer" not in {name.lower() for name in sent}


def test_the_sdk_default_comes_back_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CHECKSUM_SETTINGS:
        monkeypatch.setenv(name, "when_supported")
    assert local_checksums() == dict.fromkeys(CHECKSUM_SETTINGS, "when_supported")
    sent = {name.lower(): value for name, value in put_headers(aws_client("s3", "http://127.0.0.1:4566")).items()}
    assert "x-amz-checksum-crc32" in sent or sent.get("x-amz-trailer") == "x-amz-checksum-crc32"


def test_workers_get_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CHECKSUM_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    env = LocalCloud()._worker_env()
    assert {name: env[name] for name in CHECKSUM_SETTINGS} == dict.fromkeys(CHECKSUM_SETTINGS, "when_required")


def test_a_wrong_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHECKSUM_SETTINGS[0], "sometimes")
    with pytest.raises(ValueError, match="AWS_REQUEST_CHECKSUM_CALCULATION='sometimes'"):
        local_checksums()
