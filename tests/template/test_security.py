"""Security checks of template.yaml: checkov finds nothing, every skip says why, data at rest is encrypted.

checkov runs from its own virtualenv, .venv-checkov (``make security`` creates it: its pinned
dependencies conflict with the project's). It scans template.yaml as written and the plain
CloudFormation aws-sam-translator makes of it (the roles, rules, schedules and queues SAM generates
exist only there). A finding is either fixed in the template or skipped on its resource with a
written reason (``Metadata: checkov: skip: - id: ... comment: ...``); docs/security.md
lists the skips.

The IAM scope of every statement is checked in test_template.py
(test_iam_statements_name_specific_actions_and_resources, test_no_managed_policy_is_attached).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from localcloud import sam
from tests.template.helpers import listify, of_type, references

CHECKOV = sam.ROOT / ".venv-checkov" / "bin" / "checkov"
SECURITY = sam.ROOT / "docs" / "security.md"
#: What ``make security`` runs, without --quiet so that the report lists the skipped checks too.
CHECKOV_ARGS = ("--framework", "cloudformation", "--skip-download", "--output", "json")
#: Only PyPI is reachable from CI: no Prisma Cloud download, no update check.
CHECKOV_ENV = {"CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "BC_SKIP_MAPPING": "TRUE"}
CHECK_ID = re.compile(r"^CKV2?_AWS_[0-9]+$")


def run_checkov(path: Path) -> dict[str, Any]:
    """checkov's JSON report for one CloudFormation file (exit status 1 just means failed checks)."""
    if not CHECKOV.exists():
        pytest.skip(f"{CHECKOV.relative_to(sam.ROOT)} is missing: `make security` creates it (checkov pinned there)")
    result = subprocess.run(
        [str(CHECKOV), "--file", str(path), *CHECKOV_ARGS],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **CHECKOV_ENV},
        check=False,
    )
    assert result.returncode in (0, 1), f"checkov failed to run ({result.returncode}):\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    assert [r.get("check_type") for r in reports] == ["cloudformation"], result.stdout[:2000]
    found: dict[str, Any] = reports[0]
    return found


def describe(checks: list[dict[str, Any]]) -> str:
    return "\n".join(f"  {c['check_id']} {c['resource']}: {c['check_name']}" for c in checks)


def skips_in(resources: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """(logical id, check id) -> comment, for every checkov skip written in the resources' Metadata."""
    found: dict[tuple[str, str], str] = {}
    for name, resource in resources.items():
        for skip in listify(resource.get("Metadata", {}).get("checkov", {}).get("skip", [])):
            found[(name, str(skip.get("id")))] = str(skip.get("comment") or "")
    return found


@pytest.fixture(scope="module")
def template_report() -> dict[str, Any]:
    return run_checkov(sam.TEMPLATE)


@pytest.fixture(scope="module")
def transformed_report(cfn: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("checkov") / "transformed.json"
    path.write_text(json.dumps(cfn, indent=1), encoding="utf-8")
    return run_checkov(path)


REPORTS = ["template_report", "transformed_report"]


@pytest.mark.parametrize("report_name", REPORTS)
def test_checkov_finds_nothing(report_name: str, request: pytest.FixtureRequest) -> None:
    report = request.getfixturevalue(report_name)
    failed = report["results"]["failed_checks"]
    assert failed == [], "checkov findings (fix them, or skip them with a reason):\n" + describe(failed)
    assert report["summary"]["parsing_errors"] == 0


@pytest.mark.parametrize("report_name", REPORTS)
def test_checkov_scanned_every_resource(
    report_name: str, request: pytest.FixtureRequest, template: dict[str, Any], cfn: dict[str, Any]
) -> None:
    """A resource checkov could not parse would pass silently: it must have seen all of them."""
    report = request.getfixturevalue(report_name)
    scanned = {
        check["resource"].rsplit(".", 1)[1]
        for kind in ("passed_checks", "failed_checks", "skipped_checks")
        for check in report["results"][kind]
    }
    resources = (template if report_name == "template_report" else cfn)["Resources"]
    # Types checkov has no check for (alarms, layers, schedules, ...) appear in no result.
    checked_types = {resources[name]["Type"] for name in scanned if name in resources}
    expected = {name for name, resource in resources.items() if resource["Type"] in checked_types}
    assert scanned == expected
    assert {"AWS::S3::Bucket", "AWS::IAM::Role", "AWS::SNS::Topic", "AWS::SQS::Queue"} <= checked_types


def test_every_skip_in_the_template_has_a_reason(template: dict[str, Any]) -> None:
    skips = skips_in(template["Resources"])
    assert skips, "no skip at all: then this test and docs/security.md's list of skips should go"
    for (resource, check), comment in skips.items():
        assert CHECK_ID.match(check), f"{resource}: {check!r} is not a checkov check id"
        assert len(comment.split()) >= 8, f"{resource} skips {check} without a reason: {comment!r}"


def test_every_skip_is_still_needed(template_report: dict[str, Any], template: dict[str, Any]) -> None:
    """A skip that no longer suppresses a finding is a stale excuse: remove it."""
    used = {(c["resource"].rsplit(".", 1)[1], c["check_id"]) for c in template_report["results"]["skipped_checks"]}
    assert set(skips_in(template["Resources"])) == used


def test_checkov_keeps_the_skips_through_the_transform(
    template_report: dict[str, Any], transformed_report: dict[str, Any]
) -> None:
    """aws-sam-translator copies Metadata to the function it generates: the same findings are skipped."""

    def skipped(report: dict[str, Any]) -> set[tuple[str, str]]:
        return {(c["resource"].rsplit(".", 1)[1], c["check_id"]) for c in report["results"]["skipped_checks"]}

    assert skipped(transformed_report) == skipped(template_report)


def test_the_security_doc_lists_every_skipped_check(template: dict[str, Any]) -> None:
    security = SECURITY.read_text(encoding="utf-8")
    missing = sorted(
        {check for _, check in skips_in(template["Resources"])} - set(re.findall(r"CKV2?_AWS_\d+", security))
    )
    assert missing == [], f"docs/security.md does not explain the skips of {missing}"


def test_checkov_reports_a_finding_it_is_shown(tmp_path: Path) -> None:
    """Negative control: the same run on a copy of the template with an unencrypted queue added fails."""
    text = sam.TEMPLATE.read_text(encoding="utf-8")
    header = "\nResources:\n"
    assert text.count(header) == 1
    broken = tmp_path / "template.yaml"
    broken.write_text(text.replace(header, header + "  PlainQueue:\n    Type: AWS::SQS::Queue\n"), encoding="utf-8")
    failed = run_checkov(broken)["results"]["failed_checks"]
    assert {(c["check_id"], c["resource"]) for c in failed} == {("CKV_AWS_27", "AWS::SQS::Queue.PlainQueue")}


# ---------------------------------------------------------------- encryption at rest of messages


def topic_problems(resources: Mapping[str, Any]) -> list[str]:
    """Topics not encrypted with a KMS key of this template (alarms cannot publish with the AWS managed key)."""
    keys = set(of_type(resources, "AWS::KMS::Key"))
    problems = []
    for name, topic in of_type(resources, "AWS::SNS::Topic").items():
        key = topic.get("Properties", {}).get("KmsMasterKeyId")
        if not (isinstance(key, Mapping) and references(key) and references(key) <= keys):
            problems.append(f"{name}: KmsMasterKeyId is {key!r}, not a key of this template")
    return problems


def queue_problems(resources: Mapping[str, Any]) -> list[str]:
    """Queues with neither SQS-managed encryption nor a KMS key."""
    problems = []
    for name, queue in of_type(resources, "AWS::SQS::Queue").items():
        properties = queue.get("Properties", {})
        if properties.get("SqsManagedSseEnabled") is not True and not properties.get("KmsMasterKeyId"):
            problems.append(f"{name}: neither SqsManagedSseEnabled nor KmsMasterKeyId")
    return problems


def test_every_topic_and_queue_is_encrypted(resources: dict[str, Any]) -> None:
    """Every SNS topic and SQS queue of the transformed template, SAM-generated ones included."""
    assert of_type(resources, "AWS::SNS::Topic")
    assert of_type(resources, "AWS::SQS::Queue")
    assert topic_problems(resources) == []
    assert queue_problems(resources) == []


def _drop(kind: str, prop: str) -> Callable[[dict[str, Any]], None]:
    def apply(resources: dict[str, Any]) -> None:
        for resource in of_type(resources, kind).values():
            resource["Properties"].pop(prop, None)

    return apply


def _add_plain_queue(resources: dict[str, Any]) -> None:
    resources["SamGeneratedQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {}}


def _aws_managed_topic_key(resources: dict[str, Any]) -> None:
    for topic in of_type(resources, "AWS::SNS::Topic").values():
        topic["Properties"]["KmsMasterKeyId"] = "alias/aws/sns"


BREAKAGES = {
    "topic without a key": (_drop("AWS::SNS::Topic", "KmsMasterKeyId"), topic_problems),
    "topic with the AWS managed key": (_aws_managed_topic_key, topic_problems),
    "queue without encryption": (_drop("AWS::SQS::Queue", "SqsManagedSseEnabled"), queue_problems),
    "another queue": (_add_plain_queue, queue_problems),
}


@pytest.mark.parametrize(("breakage", "check"), BREAKAGES.values(), ids=BREAKAGES.keys())
def test_encryption_check_flags_what_it_is_meant_to(
    breakage: Callable[[dict[str, Any]], None],
    check: Callable[[Mapping[str, Any]], list[str]],
    resources: dict[str, Any],
) -> None:
    """Negative control: each check above fails on a copy of the resources with one encryption removed."""
    broken = copy.deepcopy(resources)
    breakage(broken)
    assert check(broken)
