"""The same state-machine test cases on three engines: the embedded one (always), Step Functions Local
and LocalStack.

Step Functions Local runs when SFN_LOCAL_ENDPOINT is set (``make test-sfn-local`` starts it in Docker
with MockConfigFile.json), LocalStack when LOCALSTACK_ENDPOINT is set (``make test-localstack`` starts
it on the host, with the same file as SFN_MOCK_CONFIG); without them those tests are reported as
skipped, never as passed. ``make test-localstack`` also sets REQUIRE_LOCALSTACK=1: then an unset or
unreachable endpoint fails the localstack tests instead of skipping them, so that CI cannot pass on
a LocalStack that never ran.

Each engine's results (case -> passed/failed/skipped) are written to out/statemachine-results/<engine>.json
after a run that ran every one of that engine's tests; ``make engine-table`` renders them into
docs/testing.md (tests/statemachine/engine_table.py).
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import boto3
import pytest

from localcloud.cloud import LocalCloud
from localcloud.sam import ROOT

MOCK_CONFIG = Path(__file__).with_name("MockConfigFile.json")
ASL = ROOT / "statemachines" / "image_pipeline.asl.json"
EVENTS = ROOT / "events"
NAME = "ImagePipeline"
#: The bucket and upload prefix the mocked responses name (events/ inputs have a placeholder bucket).
SOURCE_BUCKET = "source-bucket"
UPLOAD_PREFIX = "uploads/"
ACCOUNT = "123456789012"
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/DummyRole"
#: Time scale of the embedded engine: Retry waits of seconds become milliseconds.
TIME_SCALE = 0.002
#: The engines, in the order their tests run (the `engine` fixture's params).
ENGINES = ("embedded", "sfn-local", "localstack")
#: Where each engine's results go (read by engine_table.py).
RESULTS = ROOT / "out" / "statemachine-results"


def sample(name: str) -> Any:
    """An execution input from events/, with its placeholder bucket replaced by the mocks' source bucket."""
    text = (EVENTS / name).read_text(encoding="utf-8")
    return json.loads(text.replace("your-source-bucket", SOURCE_BUCKET))


MANUAL_INPUT = sample("manual-execution.json")


def lambda_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def definition(asl: dict[str, Any] | None = None) -> str:
    """The real ASL with its DefinitionSubstitutions filled in (every task is mocked in the cases)."""
    text = json.dumps(asl) if asl is not None else ASL.read_text(encoding="utf-8")
    text = re.sub(r"\$\{(\w+)FunctionArn\}", lambda m: lambda_arn(m[1]), text)
    text = text.replace("${TopicArn}", f"arn:aws:sns:{REGION}:{ACCOUNT}:imgpipe-outcomes")
    assert "${" not in text, "a DefinitionSubstitution of the ASL is not filled in"
    return text


@dataclass
class Engine:
    name: str
    sfn: Any
    arns: dict[str, str] = field(default_factory=dict)
    cloud: LocalCloud | None = None
    #: Executions started ahead by start_all(), by (machine, case, input): run() waits for them.
    started: dict[tuple[str, str, str], str] = field(default_factory=dict)
    #: Where the engine's own services answer (S3 for the backfill's ItemReader); None: the embedded cloud.
    endpoint: str | None = None

    @property
    def real_time(self) -> bool:
        """Whether Retry intervals last as long as the ASL says (every engine but the embedded one)."""
        return self.cloud is None

    def client(self, service: str) -> Any:
        if self.cloud is not None:
            return self.cloud.client(service)
        factory: Any = boto3.client  # a service name known only at run time: no typed overload
        return factory(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def create(self, name: str, text: str) -> str:
        for machine in self.sfn.list_state_machines()["stateMachines"]:
            if machine["name"] == name:
                self.sfn.delete_state_machine(stateMachineArn=machine["stateMachineArn"])
        arn: str = self.sfn.create_state_machine(name=name, definition=text, roleArn=ROLE)["stateMachineArn"]
        self.arns[name] = arn
        return arn

    def start(self, case: str, document: Any, machine: str = NAME) -> str:
        started = self.sfn.start_execution(stateMachineArn=f"{self.arns[machine]}#{case}", input=json.dumps(document))
        return str(started["executionArn"])

    def start_all(self, runs: Iterable[tuple[str, Any]], machine: str = NAME) -> None:
        """Start these (case, input) executions now, all at once: on an engine whose Retry intervals last
        for real, the cases then take as long as the longest one, not as long as all of them."""
        for case, document in runs:
            key = (machine, case, json.dumps(document, sort_keys=True))
            self.started.setdefault(key, self.start(case, document, machine))

    def run(self, case: str, document: Any, machine: str = NAME, timeout_s: float = 300) -> dict[str, Any]:
        key = (machine, case, json.dumps(document, sort_keys=True))
        arn = self.started.pop(key, None) or self.start(case, document, machine)
        deadline = time.monotonic() + timeout_s
        # Poll until the execution leaves RUNNING (waiting only for success would hang on failures).
        while (described := self.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, f"{case} still RUNNING after {timeout_s} s"
            time.sleep(0.02 if self.cloud is not None else 0.1)
        events: list[dict[str, Any]] = []
        for page in self.sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
            events.extend(page["events"])
        return {"described": described, "events": events}


def _remote(name: str, variable: str, how: str) -> Engine:
    """An engine reached at the endpoint ``variable`` names, or the test skipped (or failed, when required)."""
    endpoint = os.environ.get(variable)
    required = name == "localstack" and bool(os.environ.get("REQUIRE_LOCALSTACK"))
    if not endpoint:
        if required:
            pytest.fail(f"REQUIRE_LOCALSTACK is set but {variable} is not ({how})", pytrace=False)
        pytest.skip(f"{name} is not reachable: set {variable} ({how})")
    engine = Engine(name, None, endpoint=endpoint)
    engine.sfn = engine.client("stepfunctions")
    try:
        engine.sfn.list_state_machines()
    except Exception as exc:  # noqa: BLE001 - whatever the client raises, the engine is not there
        message = f"{name} at {endpoint} does not answer: {exc}"
        if required:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return engine


def engine_version(engine: Engine) -> str:
    if engine.name == "embedded":
        return f"moto {version('moto')}"
    if engine.name == "localstack":
        with urllib.request.urlopen(f"{engine.endpoint}/_localstack/health", timeout=5) as response:
            health = json.load(response)
        return f"localstack-core {health.get('version', '?')}"
    return "Step Functions Local"


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    if request.param == "embedded":
        with LocalCloud(time_scale=TIME_SCALE, mock_config=MOCK_CONFIG) as cloud:
            engine = Engine("embedded", cloud.client("stepfunctions"), cloud=cloud)
            engine.create(NAME, definition())
            _versions[engine.name] = engine_version(engine)
            yield engine
        return
    if request.param == "sfn-local":
        engine = _remote("sfn-local", "SFN_LOCAL_ENDPOINT", "make test-sfn-local")
    else:
        engine = _remote("localstack", "LOCALSTACK_ENDPOINT", "make test-localstack")
    engine.create(NAME, definition())
    _versions[engine.name] = engine_version(engine)
    yield engine


# -- each engine's results, for docs/testing.md ---------------------------------------------------------

_versions: dict[str, str] = {}
#: Per test that runs on an engine (by node id): the engine and the test's label in the table.
_labels: dict[str, tuple[str, str]] = {}
_outcomes: dict[str, dict[str, str]] = {}
_deselected: set[str] = set()


def _engine_and_label(item: pytest.Item) -> tuple[str, str] | None:
    """(engine, label) of a test that runs on an engine: the label is the case for a case test, else the
    test's file and name with its other parameters."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or "engine" not in callspec.params:
        return None
    engine = str(callspec.params["engine"])
    name = getattr(item, "originalname", item.name)
    if name == "test_case":
        return engine, str(callspec.params["case"])
    if name == "test_backfill_case":
        return engine, f"Backfill: {callspec.params['case']}"
    others = [v for k, v in callspec.params.items() if k != "engine" and isinstance(v, str)]
    suffix = f"[{'-'.join(others)}]" if others else ""
    return engine, f"{item.path.name}::{name}{suffix}"


def pytest_deselected(items: list[pytest.Item]) -> None:
    for item in items:
        found = _engine_and_label(item)
        if found:
            _deselected.add(found[0])


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    for item in session.items:
        found = _engine_and_label(item)
        if found:
            _labels[item.nodeid] = found


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    found = _labels.get(report.nodeid)
    if found is None:
        return
    engine, label = found
    outcomes = _outcomes.setdefault(engine, {})
    if report.failed:
        outcomes[label] = "failed"
    elif report.skipped and report.when in ("setup", "call"):
        outcomes[label] = "skipped"
    elif report.passed and report.when == "call":
        outcomes[label] = "passed"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write out/statemachine-results/<engine>.json for each engine whose whole suite ran: every test module
    here collected, none of the engine's tests deselected, each one reported, not all skipped. A partial or
    skipped run leaves the last whole run's file as it is."""
    modules = {path.name for path in Path(__file__).parent.glob("test_*.py")}
    for engine in ENGINES:
        nodes = [(node, label) for node, (name, label) in _labels.items() if name == engine]
        outcomes = _outcomes.get(engine, {})
        whole = (
            engine not in _deselected
            and {Path(node.split("::")[0]).name for node, _ in nodes} == modules
            and {label for _, label in nodes} == set(outcomes)
        )
        if not whole or all(outcome == "skipped" for outcome in outcomes.values()):
            continue
        RESULTS.mkdir(parents=True, exist_ok=True)
        document = {
            "engine": engine,
            "version": _versions.get(engine, "?"),
            "run": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "results": dict(sorted(outcomes.items())),
        }
        (RESULTS / f"{engine}.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
