"""cfn-lint on template.yaml through its Python API, with a negative control proving the check can fail."""

from __future__ import annotations

from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint

from localcloud import sam

#: Every rule, including informational and experimental ones, in a few regions with arm64 Lambda.
CONFIG = ManualArgs(
    include_checks=["I"], include_experimental=True, regions=["us-east-1", "eu-west-1", "ap-southeast-2"]
)


def run_lint(text: str) -> list[Any]:
    return list(lint(text, config=CONFIG))


def describe(matches: list[Any]) -> str:
    return "\n".join(f"{m.rule.id} [{m.rule.severity}] line {m.linenumber}: {m.message}" for m in matches)


def errors(matches: list[Any]) -> list[Any]:
    return [m for m in matches if m.rule.severity == "error"]


@pytest.fixture(scope="module")
def template_text() -> str:
    return sam.TEMPLATE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def matches(template_text: str) -> list[Any]:
    return run_lint(template_text)


def test_template_has_no_lint_errors(matches: list[Any]) -> None:
    assert errors(matches) == [], "cfn-lint errors:\n" + describe(errors(matches))


def test_template_has_no_lint_warnings(matches: list[Any]) -> None:
    warnings = [m for m in matches if m.rule.severity == "warning"]
    assert warnings == [], "cfn-lint warnings:\n" + describe(warnings)


#: Each inserts one mistake right after a top-level section header, so the control does not depend on
#: the rest of the template staying as it is.
BROKEN = {
    "unknown property": (
        "Resources:\n",
        "  BrokenQueue:\n    Type: AWS::SQS::Queue\n    Properties:\n      Encrypted: true\n",
    ),
    "wrong value type": (
        "Resources:\n",
        "  BrokenQueue:\n    Type: AWS::SQS::Queue\n    Properties:\n      MessageRetentionPeriod: forever\n",
    ),
    "ref to nothing": ("Outputs:\n", "  Broken:\n    Value: !Ref NoSuchResource\n"),
}


@pytest.mark.parametrize(("section", "insert"), BROKEN.values(), ids=BROKEN.keys())
def test_lint_catches_a_deliberate_error(section: str, insert: str, template_text: str) -> None:
    """Negative control: the same check on a copy of the template with one mistake does fail."""
    header = f"\n{section}"
    assert template_text.count(header) == 1, f"the template should have one {section.strip()} section"
    found = errors(run_lint(template_text.replace(header, header + insert)))
    assert found, f"cfn-lint missed: {insert.strip()!r}"
