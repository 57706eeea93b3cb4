"""The backfill state machine (statemachines/backfill.asl.json) on every engine that can run it.

Its Distributed Map reads the upload prefix with an S3 ItemReader, which no mock configuration can
mock (Step Functions Local's format mocks Task states only): the objects are put into the engine's own
S3, and the nested pipeline execution (Run Pipeline, startExecution.sync:2) is mocked. Step Functions
Local has no S3 of its own, so the backfill is not run there.

Not covered, on any engine: a pipeline that fails inside the backfill (Run Pipeline's Catch of
States.TaskFailed). A mocked Throw cannot carry a ``States.*`` error name on either engine (both turn
it into States.Runtime); LocalStack cannot start a nested execution of a mock test case (a Task's
StartExecution does not read ``#TestCase``); and both engines report a Map Run whose iterations failed as
succeeded, so such a case would pass whatever the Catch did. See docs/testing.md.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from localcloud.sam import ROOT
from tests.statemachine.conftest import MOCK_CONFIG, NAME, SOURCE_BUCKET, UPLOAD_PREFIX, Engine

BACKFILL_ASL = ROOT / "statemachines" / "backfill.asl.json"
BACKFILL = "Backfill"
CONCURRENCY = 2
CONFIG: dict[str, Any] = json.loads(MOCK_CONFIG.read_text(encoding="utf-8"))
TEST_CASES: dict[str, dict[str, str]] = CONFIG["StateMachines"][BACKFILL]["TestCases"]
#: The source bucket's objects: three uploads, a console folder marker, and one object outside the prefix.
UPLOADS = [f"{UPLOAD_PREFIX}a.jpg", f"{UPLOAD_PREFIX}nested/b.png", f"{UPLOAD_PREFIX}c d+1.webp"]
FOLDER_MARKER = f"{UPLOAD_PREFIX}nested/"
OUTSIDE = "private/secret.jpg"


def backfill_definition(pipeline_arn: str) -> str:
    """The backfill ASL with its DefinitionSubstitutions filled in as template.yaml fills them."""
    text = BACKFILL_ASL.read_text(encoding="utf-8")
    for name, value in {
        "SourceBucket": SOURCE_BUCKET,
        "UploadPrefix": UPLOAD_PREFIX,
        "BackfillConcurrency": str(CONCURRENCY),
        "ImagePipelineArn": pipeline_arn,
    }.items():
        text = text.replace(f"${{{name}}}", value)
    assert "${" not in text, "a DefinitionSubstitution of the backfill ASL is not filled in"
    return text


@pytest.fixture(scope="module")
def backfill(engine: Engine) -> Engine:
    if engine.name == "sfn-local":
        pytest.skip("the backfill's ItemReader needs S3, which Step Functions Local does not have")
    s3 = engine.client("s3")
    if SOURCE_BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=SOURCE_BUCKET)
    for key in [*UPLOADS, FOLDER_MARKER, OUTSIDE]:
        s3.put_object(Bucket=SOURCE_BUCKET, Key=key, Body=b"")
    engine.create(BACKFILL, backfill_definition(engine.arns[NAME]))
    return engine


def map_run(engine: Engine, execution_arn: str) -> dict[str, Any]:
    [run] = engine.sfn.list_map_runs(executionArn=execution_arn)["mapRuns"]
    described: dict[str, Any] = engine.sfn.describe_map_run(mapRunArn=run["mapRunArn"])
    return described


def pipeline_executions(engine: Engine) -> int:
    return len(engine.sfn.list_executions(stateMachineArn=engine.arns[NAME])["executions"])


def test_every_backfill_case_is_asserted() -> None:
    assert set(TEST_CASES) == {"EveryUploadRunsThePipeline"}


@pytest.mark.parametrize("case", sorted(TEST_CASES))
def test_backfill_case(backfill: Engine, case: str) -> None:
    engine = backfill
    pipelines_before = pipeline_executions(engine)
    run = engine.run(case, {}, machine=BACKFILL, timeout_s=120)
    described, events = run["described"], run["events"]
    assert described["status"] == "SUCCEEDED", described.get("cause")
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]
    assert entered == ["Plan", "Process Uploads"], "a Distributed Map's iterations run as child workflows"
    # The template's parameters arrive as strings: States.StringToJson makes the concurrency a number.
    plan = {"bucket": SOURCE_BUCKET, "prefix": UPLOAD_PREFIX, "concurrency": CONCURRENCY}
    assert json.loads(described["output"]) == plan, "the Map's ResultPath is null: the output is Plan's"
    details = map_run(engine, described["executionArn"])
    assert details["status"] == "SUCCEEDED"
    assert details["maxConcurrency"] == CONCURRENCY
    # One item per object under the prefix (the folder marker too: the Choice skips it), none for the other.
    assert details["itemCounts"]["total"] == len(UPLOADS) + 1
    assert details["itemCounts"]["succeeded"] == len(UPLOADS) + 1
    assert details["itemCounts"]["failed"] == 0
    assert pipeline_executions(engine) == pipelines_before, "Run Pipeline is mocked: no pipeline execution starts"
