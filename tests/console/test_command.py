"""``imgpipe console`` refusing to start, with a message and exit status 2, before it reaches AWS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def console(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "imgpipe"), "console", *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


@pytest.fixture
def no_aws(tmp_path: Path) -> dict[str, str]:
    """An environment with no AWS credentials and no region anywhere (files, variables, metadata)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return env


def test_no_region_is_a_usage_error(no_aws: dict[str, str]) -> None:
    done = console("--stack", "imgpipe", env=no_aws)
    assert done.returncode == 2
    assert "no region" in done.stderr


def test_no_credentials_is_a_usage_error(no_aws: dict[str, str]) -> None:
    done = console("--stack", "imgpipe", "--region", "eu-west-1", env=no_aws)
    assert done.returncode == 2
    assert "no AWS credentials" in done.stderr


def test_the_stack_is_required(no_aws: dict[str, str]) -> None:
    assert console(env=no_aws).returncode == 2
