"""The reconciler: its decisions on in-memory listings, its adapters and handler on moto S3 and Step Functions."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
from moto import mock_aws

from pipeline import keys
from pipeline.errors import ConfigurationError
from pipeline.reconcile import (
    Upload,
    execution_input,
    execution_name,
    is_current,
    keys_named_by,
    manifest_key_for,
    normal_etag,
    run,
)
from pipeline.recovery_io import PipelineExecutions, UploadListing
from pipeline.settings import ReconcileSettings
from tests.conftest import REGION, FakeLambdaContext

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(hours=1)
SETTINGS = ReconcileSettings(
    source_bucket="source",
    upload_prefix="uploads/",
    destination_bucket="destination",
    state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:ImagePipeline",
    min_age_seconds=300,
)
#: What Step Functions accepts as an execution name.
VALID_NAME = re.compile(r"^[0-9A-Za-z_-]{1,80}$")


# ---------------------------------------------------------------- in-memory ports


@dataclass
class FakeUploads:
    items: list[Upload]
    asked: list[tuple[str, str]] = field(default_factory=list)

    def uploads(self, bucket: str, prefix: str) -> Iterable[Upload]:
        self.asked.append((bucket, prefix))
        return [u for u in self.items if u.key.startswith(prefix)]


@dataclass
class FakeManifests:
    documents: dict[tuple[str, str], Any] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)

    def read_json(self, bucket: str, key: str) -> Any | None:
        self.reads.append(key)
        return self.documents.get((bucket, key))

    def put(self, upload_key: str, etag: str) -> None:
        key = manifest_key_for(upload_key, SETTINGS.upload_prefix)
        self.documents[(SETTINGS.destination_bucket, key)] = {"source": {"key": upload_key, "etag": etag}}


@dataclass
class FakeExecutions:
    running: list[Any] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    started: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    listed: int = 0

    def running_inputs(self) -> Iterator[Any]:
        self.listed += 1
        yield from self.running

    def start(self, name: str, document: Mapping[str, Any]) -> bool:
        if name in self.names:
            return False
        self.names.add(name)
        self.started.append((name, dict(document)))
        self.running.append(dict(document))
        return True


def upload(key: str, etag: str = "e1", age: timedelta = timedelta(hours=1)) -> Upload:
    return Upload(key=key, etag=etag, last_modified=NOW - age)


def event_input(key: str, bucket: str = "source") -> dict[str, Any]:
    return {"detail-type": "Object Created", "detail": {"bucket": {"name": bucket}, "object": {"key": key}}}


def reconcile(
    uploads: list[Upload], manifests: FakeManifests | None = None, executions: FakeExecutions | None = None
) -> tuple[dict[str, int], FakeExecutions]:
    executions = executions if executions is not None else FakeExecutions()
    counts = run(SETTINGS, FakeUploads(uploads), manifests or FakeManifests(), executions, now=NOW)
    return counts, executions


# ---------------------------------------------------------------- decisions


def test_uploads_without_a_manifest_are_started_with_the_manual_input() -> None:
    manifests = FakeManifests()
    manifests.put("uploads/done.jpg", "e1")
    counts, executions = reconcile([upload("uploads/done.jpg"), upload("uploads/lost.jpg")], manifests)

    assert counts == {"scanned": 2, "recent": 0, "missing": 1, "running": 0, "started": 1, "already_started": 0}
    assert executions.started == [
        (execution_name("source", "uploads/lost.jpg", "e1"), {"bucket": "source", "key": "uploads/lost.jpg"})
    ]


def test_a_manifest_for_another_etag_counts_as_missing() -> None:
    manifests = FakeManifests()
    manifests.put("uploads/replaced.jpg", "old-etag")
    counts, executions = reconcile([upload("uploads/replaced.jpg", etag="new-etag")], manifests)

    assert counts["missing"] == counts["started"] == 1
    assert executions.started[0][0] == execution_name("source", "uploads/replaced.jpg", "new-etag")


def test_listing_etags_are_compared_without_their_quotes() -> None:
    manifests = FakeManifests()
    manifests.put("uploads/a.jpg", "abc123")
    listed = Upload.from_listing({"Key": "uploads/a.jpg", "ETag": '"abc123"', "LastModified": OLD})
    assert listed.etag == "abc123"
    counts, executions = reconcile([listed], manifests)
    assert counts["missing"] == 0
    assert executions.started == []


def test_fresh_uploads_are_left_to_their_own_event() -> None:
    counts, executions = reconcile([upload("uploads/new.jpg", age=timedelta(seconds=299))])
    assert counts == {"scanned": 1, "recent": 1, "missing": 0, "running": 0, "started": 0, "already_started": 0}
    assert executions.started == []
    assert executions.listed == 0, "nothing missing: running executions are not even listed"


def test_a_grace_period_of_zero_takes_every_upload() -> None:
    executions = FakeExecutions()
    counts = run(
        dataclasses.replace(SETTINGS, min_age_seconds=0),
        FakeUploads([upload("uploads/now.jpg", age=timedelta(0))]),
        FakeManifests(),
        executions,
        now=NOW,
    )
    assert counts["started"] == 1


@pytest.mark.parametrize(
    "running_input",
    [
        {"bucket": "source", "key": "uploads/my photo+1.jpg"},
        event_input("uploads/my photo+1.jpg"),
        event_input(quote_plus("uploads/my photo+1.jpg", safe="/")),  # form-urlencoded, as S3 may write it
        json.dumps({"bucket": "source", "key": "uploads/my photo+1.jpg"}),  # the raw input string
    ],
    ids=["manual", "event", "event-encoded", "json-string"],
)
def test_an_upload_with_a_running_execution_is_left_alone(running_input: Any) -> None:
    executions = FakeExecutions(running=[running_input])
    counts, _ = reconcile([upload("uploads/my photo+1.jpg")], executions=executions)
    assert counts["missing"] == 1
    assert counts["running"] == 1
    assert counts["started"] == 0
    assert executions.started == []


@pytest.mark.parametrize(
    "other",
    [
        {"bucket": "another-bucket", "key": "uploads/a.jpg"},
        event_input("uploads/a.jpg", bucket="another-bucket"),
        {"bucket": "source", "key": "uploads/b.jpg"},
        {"unrelated": True},
        "not json",
        None,
    ],
)
def test_executions_for_other_objects_do_not_count(other: Any) -> None:
    counts, _ = reconcile([upload("uploads/a.jpg")], executions=FakeExecutions(running=[other]))
    assert counts["started"] == 1
    assert keys_named_by(other, "source") <= {"uploads/b.jpg"}


def test_a_second_run_starts_nothing_for_the_same_content() -> None:
    uploads = [upload(f"uploads/{i}.jpg") for i in range(3)]
    executions = FakeExecutions()
    first, _ = reconcile(uploads, executions=executions)
    executions.running.clear()  # they ended, without a manifest (failed): the names stay taken
    second, _ = reconcile(uploads, executions=executions)

    assert first["started"] == 3
    assert second == {"scanned": 3, "recent": 0, "missing": 3, "running": 0, "started": 0, "already_started": 3}
    assert len(executions.started) == 3


def test_a_replaced_upload_gets_a_new_execution_name() -> None:
    executions = FakeExecutions()
    reconcile([upload("uploads/a.jpg", etag="v1")], executions=executions)
    executions.running.clear()
    counts, _ = reconcile([upload("uploads/a.jpg", etag="v2")], executions=executions)
    assert counts["started"] == 1


def test_while_running_a_second_run_sees_the_first_runs_executions() -> None:
    uploads = [upload(f"uploads/{i}.jpg") for i in range(3)]
    executions = FakeExecutions()
    reconcile(uploads, executions=executions)
    counts, _ = reconcile(uploads, executions=executions)
    assert counts["running"] == 3
    assert counts["started"] == 0


def test_folder_markers_are_not_uploads() -> None:
    counts, executions = reconcile([upload("uploads/folder/"), upload("uploads/folder/a.jpg")])
    assert counts["scanned"] == 1
    assert [doc["key"] for _, doc in executions.started] == ["uploads/folder/a.jpg"]


def test_manifests_are_looked_up_where_the_store_step_writes_them() -> None:
    manifests = FakeManifests()
    reconcile([upload("uploads/holiday/beach.jpg"), upload("uploads/young.jpg", age=timedelta(0))], manifests)
    assert manifests.reads == [keys.manifest_key(keys.stem("uploads/holiday/beach.jpg", "uploads/"))]
    assert manifests.reads == ["holiday/beach.jpg/manifest.json"]


@pytest.mark.parametrize(
    ("manifest", "current"),
    [
        ({"source": {"etag": "e1"}}, True),
        ({"source": {"etag": '"e1"'}}, True),
        ({"source": {"etag": "e2"}}, False),
        ({"source": {}}, False),
        ({}, False),
        ([], False),
        (None, False),
    ],
)
def test_is_current(manifest: Any, current: bool) -> None:
    assert is_current(manifest, "e1") is current


def test_execution_names_are_valid_deterministic_and_per_content() -> None:
    name = execution_name("source", "uploads/a photo [1] ?*.jpg", '"etag"')
    assert VALID_NAME.match(name)
    assert name == execution_name("source", "uploads/a photo [1] ?*.jpg", "etag")
    assert (
        len(
            {
                name,
                execution_name("source", "uploads/a photo [1] ?*.jpg", "other"),
                execution_name("source", "uploads/b.jpg", "etag"),
                execution_name("elsewhere", "uploads/a photo [1] ?*.jpg", "etag"),
            }
        )
        == 4
    )
    assert VALID_NAME.match(execution_name("b", "uploads/" + "é" * 1000, "e"))


def test_execution_input_is_the_pipelines_manual_shape() -> None:
    assert execution_input("source", "uploads/a b+c.jpg") == {"bucket": "source", "key": "uploads/a b+c.jpg"}
    assert normal_etag(' "x" ') == "x"


# ---------------------------------------------------------------- settings

ENV = {
    "SOURCE_BUCKET": "source",
    "DESTINATION_BUCKET": "destination",
    "STATE_MACHINE_ARN": SETTINGS.state_machine_arn,
    "UPLOAD_PREFIX": "uploads/",
}


def test_settings_defaults() -> None:
    assert ReconcileSettings.from_env(ENV) == SETTINGS


@pytest.mark.parametrize("missing", ["SOURCE_BUCKET", "DESTINATION_BUCKET", "STATE_MACHINE_ARN"])
def test_settings_name_a_missing_variable(missing: str) -> None:
    with pytest.raises(ConfigurationError, match=missing):
        ReconcileSettings.from_env({k: v for k, v in ENV.items() if k != missing})


@pytest.mark.parametrize(
    ("name", "value"),
    [("RECONCILE_MIN_AGE_SECONDS", "soon"), ("RECONCILE_MIN_AGE_SECONDS", "-5"), ("UPLOAD_PREFIX", "../x/")],
)
def test_settings_reject_bad_values(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        ReconcileSettings.from_env({**ENV, name: value})


# ---------------------------------------------------------------- adapters and handler on moto


@dataclass
class Moto:
    s3: Any
    sfn: Any
    source: str
    destination: str
    state_machine_arn: str

    def env(self, **overrides: str) -> dict[str, str]:
        return {
            "SOURCE_BUCKET": self.source,
            "DESTINATION_BUCKET": self.destination,
            "STATE_MACHINE_ARN": self.state_machine_arn,
            "UPLOAD_PREFIX": "uploads/",
            "POWERTOOLS_SERVICE_NAME": "reconcile",
            **overrides,
        }


@pytest.fixture
def moto() -> Iterator[Moto]:
    with mock_aws():  # the non-executing Step Functions: executions stay RUNNING until stopped
        s3 = boto3.client("s3", region_name=REGION)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        source, destination = f"source-{uuid.uuid4().hex[:8]}", f"destination-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=source)
        s3.create_bucket(Bucket=destination)
        definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
        arn = sfn.create_state_machine(name="ImagePipeline", definition=definition, roleArn=role)["stateMachineArn"]
        yield Moto(s3, sfn, source, destination, arn)


def load_reconciler(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> ModuleType:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location(
        f"_reconcile_{uuid.uuid4().hex}", ROOT / "functions" / "reconcile" / "app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_upload_listing_gives_keys_etags_and_ages(moto: Moto) -> None:
    moto.s3.put_object(Bucket=moto.source, Key="uploads/a.jpg", Body=b"a")
    moto.s3.put_object(Bucket=moto.source, Key="elsewhere/b.jpg", Body=b"b")
    [listed] = UploadListing(moto.s3).uploads(moto.source, "uploads/")
    head = moto.s3.head_object(Bucket=moto.source, Key="uploads/a.jpg")
    assert listed.key == "uploads/a.jpg"
    assert listed.etag == head["ETag"].strip('"')
    assert listed.last_modified == head["LastModified"]


def test_pipeline_executions_list_running_inputs_and_start_once(moto: Moto) -> None:
    executions = PipelineExecutions(moto.sfn, moto.state_machine_arn)
    assert list(executions.running_inputs()) == []
    document = {"bucket": moto.source, "key": "uploads/ü.jpg"}
    assert executions.start("n1", document) is True
    # As on AWS: the same name and input while it runs is the same execution; anything else is refused.
    assert executions.start("n1", document) is True
    assert executions.start("n1", {**document, "key": "uploads/other.jpg"}) is False  # ExecutionAlreadyExists
    assert list(executions.running_inputs()) == [document]
    [summary] = moto.sfn.list_executions(stateMachineArn=moto.state_machine_arn)["executions"]
    moto.sfn.stop_execution(executionArn=summary["executionArn"])
    assert list(executions.running_inputs()) == []
    assert executions.start("n1", document) is False  # a name is never reused for a closed execution


def test_handler_starts_the_lost_uploads_and_a_second_run_starts_nothing(
    moto: Moto, monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext
) -> None:
    for name in ("a.jpg", "b c.jpg", "done.jpg"):
        moto.s3.put_object(Bucket=moto.source, Key=f"uploads/{name}", Body=name.encode())
    etag = moto.s3.head_object(Bucket=moto.source, Key="uploads/done.jpg")["ETag"].strip('"')
    manifest = {"source": {"bucket": moto.source, "key": "uploads/done.jpg", "etag": etag}}
    moto.s3.put_object(Bucket=moto.destination, Key="done.jpg/manifest.json", Body=json.dumps(manifest).encode())
    handler = load_reconciler(monkeypatch, moto.env(RECONCILE_MIN_AGE_SECONDS="0"))
    scheduled = {"execution_id": "run-1", "scheduled_time": "2026-01-01T12:00:00Z"}

    first = handler.lambda_handler(scheduled, lambda_context)
    second = handler.lambda_handler({**scheduled, "execution_id": "run-2"}, lambda_context)

    assert {k: first[k] for k in ("scanned", "missing", "running", "started")} == {
        "scanned": 3,
        "missing": 2,
        "running": 0,
        "started": 2,
    }
    assert {k: second[k] for k in ("scanned", "missing", "running", "started")} == {
        "scanned": 3,
        "missing": 2,
        "running": 2,  # the first run's executions, still RUNNING
        "started": 0,
    }
    assert isinstance(first["elapsed_ms"], int)
    executions = moto.sfn.list_executions(stateMachineArn=moto.state_machine_arn)["executions"]
    inputs = sorted(
        json.loads(moto.sfn.describe_execution(executionArn=e["executionArn"])["input"])["key"] for e in executions
    )
    assert inputs == ["uploads/a.jpg", "uploads/b c.jpg"]
    assert all(VALID_NAME.match(e["name"]) for e in executions)


def test_handler_fails_its_cold_start_on_bad_configuration(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="RECONCILE_MIN_AGE_SECONDS"):
        load_reconciler(monkeypatch, moto.env(RECONCILE_MIN_AGE_SECONDS="soon"))
