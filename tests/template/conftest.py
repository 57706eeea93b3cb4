"""Session fixtures: template.yaml loaded, packaged and transformed by the real aws-sam-translator (no mocks).

The fixtures are shared by every test of the session: a test that needs to change one
makes a ``copy.deepcopy`` first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localcloud import sam
from tests.template.helpers import ASL_PATH, json_object

ARTIFACTS_BUCKET = "artifacts-bucket"


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    """template.yaml as written (SAM, short-form intrinsics parsed)."""
    return sam.load()


@pytest.fixture(scope="session")
def packaged_and_artifacts(template: dict[str, Any]) -> tuple[dict[str, Any], list[sam.Artifact]]:
    return sam.package(template, ARTIFACTS_BUCKET)


@pytest.fixture(scope="session")
def packaged(packaged_and_artifacts: tuple[dict[str, Any], list[sam.Artifact]]) -> dict[str, Any]:
    """The SAM template with S3 code locations and the state machine definition inlined."""
    return packaged_and_artifacts[0]


@pytest.fixture(scope="session")
def artifacts(packaged_and_artifacts: tuple[dict[str, Any], list[sam.Artifact]]) -> list[sam.Artifact]:
    return packaged_and_artifacts[1]


@pytest.fixture(scope="session")
def cfn(packaged: dict[str, Any]) -> dict[str, Any]:
    """Plain CloudFormation, as aws-sam-translator produces it with the parameter defaults."""
    return sam.to_cloudformation(packaged)


@pytest.fixture(scope="session")
def resources(cfn: dict[str, Any]) -> dict[str, Any]:
    return dict(cfn["Resources"])


@pytest.fixture(scope="session")
def asl_text() -> str:
    return ASL_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def asl(asl_text: str) -> dict[str, Any]:
    return json_object(asl_text)


@pytest.fixture(scope="session")
def function_dirs(template: dict[str, Any]) -> dict[str, Path]:
    """Logical id of each AWS::Serverless::Function -> its code directory (from CodeUri)."""
    return {
        name: sam.ROOT / res["Properties"]["CodeUri"]
        for name, res in template["Resources"].items()
        if res["Type"] == "AWS::Serverless::Function"
    }
