"""The layer's trimmed botocore data (layers/shared/botocore_models.py) and how pipeline.storage reads it.

What the build writes must hold every operation the functions call, each exactly as botocore has it, and
a client built on it must send the very requests a client on botocore's own data sends.
"""

from __future__ import annotations

import ast
import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore
import botocore.session
import botocore_models
import pytest
from aws_lambda_powertools.utilities.idempotency.persistence import dynamodb as powertools_dynamodb
from botocore.config import Config
from botocore.model import ServiceModel

from pipeline import storage

PIPELINE = Path(storage.__file__).parent
#: Where each module of the pipeline that talks to AWS gets its clients (client("s3") and so on).
AWS_MODULES = ("storage.py", "recovery_io.py", "idempotency.py")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("layer") / "botocore_data"
    assert botocore_models.generate(directory) == botocore.__version__
    return directory


@pytest.fixture(scope="module")
def builtin() -> Any:
    return botocore_models.builtin_loader()


def service_model(data: Path, service: str) -> dict[str, Any]:
    [path] = (data / service).glob("*/service-2.json")
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def client_calls(tree: ast.AST) -> Iterator[tuple[str, str]]:
    """(service, snake_case operation) for each class that creates a client("service") and calls self.client.X."""
    for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
        services = {
            _literal(node.args[0])
            for node in ast.walk(cls)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "client" and node.args
        }
        for node in ast.walk(cls):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            owner = node.func.value
            if isinstance(owner, ast.Attribute) and owner.attr == "client":
                name = node.func.attr
                if name in ("get_paginator", "generate_presigned_url"):
                    name = _literal(node.args[0]) or ""
                elif name == "generate_presigned_post":
                    name = "create_bucket"  # botocore resolves the POST's endpoint through CreateBucket's model
                for service in services:
                    assert service is not None
                    yield service, name


def called_operations() -> set[tuple[str, str]]:
    """Every (service, snake_case operation) the pipeline's modules and Powertools' DynamoDB layer call."""
    calls = set()
    for name in AWS_MODULES:
        calls |= set(client_calls(ast.parse((PIPELINE / name).read_text(encoding="utf-8"))))
    powertools = ast.parse(inspect.getsource(powertools_dynamodb))
    calls |= {("dynamodb", op) for _, op in client_calls(_with_service(powertools, "dynamodb"))}
    return calls


def _with_service(tree: ast.Module, service: str) -> ast.Module:
    """Powertools gets its client from us: mark its persistence class as one of that service."""
    for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
        cls.body.append(ast.Expr(ast.Call(ast.Name("client"), [ast.Constant(service)], [])))
    return tree


def test_the_scan_finds_the_calls_it_should() -> None:
    """The scan itself: a few calls it must see, so that an empty or broken scan cannot pass."""
    calls = called_operations()
    assert {("s3", "put_object"), ("s3", "list_objects_v2"), ("sns", "publish")} <= calls
    assert {("stepfunctions", "start_execution"), ("dynamodb", "put_item"), ("dynamodb", "get_item")} <= calls


def test_every_operation_the_code_calls_is_in_the_trimmed_models(data: Path) -> None:
    paginated = {(s, botocore.xform_name(op)) for s, ops in botocore_models.PAGINATORS.items() for op in ops}
    for service, operation in sorted(called_operations()):
        model = ServiceModel(service_model(data, service), service)
        names = {botocore.xform_name(name): name for name in model.operation_names}
        assert operation in names, f"{service}.{operation} is not in the trimmed model"
        model.operation_model(names[operation])  # every shape it reaches resolves
    used_paginators = {call for call in called_operations() if call in paginated}
    assert used_paginators == paginated, "PAGINATORS lists exactly the paginators the code uses"


def test_clients_are_created_only_for_the_trimmed_services() -> None:
    services = set()
    for name in AWS_MODULES:
        tree = ast.parse((PIPELINE / name).read_text(encoding="utf-8"))
        services |= {
            _literal(node.args[0])
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "client" and node.args
        }
    assert services == set(botocore_models.OPERATIONS)


@pytest.mark.parametrize("service", sorted(botocore_models.OPERATIONS))
def test_the_trimmed_models_are_botocores_for_those_operations(data: Path, builtin: Any, service: str) -> None:
    full = builtin.load_service_model(service, "service-2")
    trimmed = service_model(data, service)
    assert {k: v for k, v in trimmed.items() if k not in ("operations", "shapes")} == {
        k: v for k, v in full.items() if k not in ("operations", "shapes")
    }
    expected = set(botocore_models.kept_operations(full, botocore_models.OPERATIONS[service]))
    assert set(trimmed["operations"]) == expected
    for name, operation in trimmed["operations"].items():
        assert operation == full["operations"][name], name
    for name, shape in trimmed["shapes"].items():
        assert shape == full["shapes"][name], name
        assert set(botocore_models.shape_names(shape)) <= set(trimmed["shapes"]), f"{name} refers to a missing shape"
    assert len(trimmed["operations"]) < len(full["operations"])
    [version] = [p.name for p in (data / service).iterdir()]
    rules = json.loads((data / service / version / "endpoint-rule-set-1.json").read_text(encoding="utf-8"))
    assert rules == builtin.load_service_model(service, "endpoint-rule-set-1")
    if service in botocore_models.PAGINATORS:
        pages = json.loads((data / service / version / "paginators-1.json").read_text(encoding="utf-8"))
        full_pages = builtin.load_service_model(service, "paginators-1", version)["pagination"]
        assert pages["pagination"] == {op: full_pages[op] for op in botocore_models.PAGINATORS[service]}


def test_dynamodb_keeps_its_endpoint_discovery_operation(data: Path) -> None:
    """With AWS_ENDPOINT_DISCOVERY_ENABLED, botocore discovers DynamoDB endpoints through DescribeEndpoints."""
    assert ServiceModel(service_model(data, "dynamodb")).endpoint_discovery_operation is not None


def test_endpoints_and_shared_data_are_botocores(data: Path, builtin: Any) -> None:
    full = builtin.load_data("endpoints")
    trimmed = json.loads((data / "endpoints.json").read_text(encoding="utf-8"))
    prefixes = {service_model(data, s)["metadata"]["endpointPrefix"] for s in botocore_models.OPERATIONS}
    assert [p["partition"] for p in trimmed["partitions"]] == [p["partition"] for p in full["partitions"]]
    for mine, theirs in zip(trimmed["partitions"], full["partitions"], strict=True):
        assert {k: v for k, v in mine.items() if k != "services"} == {
            k: v for k, v in theirs.items() if k != "services"
        }
        assert mine["services"] == {k: v for k, v in theirs["services"].items() if k in prefixes}
    assert {k: v for k, v in trimmed.items() if k != "partitions"} == {
        k: v for k, v in full.items() if k != "partitions"
    }
    for name in botocore_models.SHARED:
        assert json.loads((data / f"{name}.json").read_text(encoding="utf-8")) == builtin.load_data(name), name


# ---------------------------------------------------------------- pipeline.storage reading the data


def test_the_data_is_read_only_under_the_botocore_it_came_from(data: Path, tmp_path: Path) -> None:
    loader = storage.data_loader(data)
    assert loader is not None
    assert loader.search_paths == [str(data)]
    other = tmp_path / "other"
    other.mkdir()
    (other / storage.DATA_VERSION_FILE).write_text("1.0.0\n", encoding="utf-8")
    assert storage.data_loader(other) is None
    assert storage.data_loader(tmp_path / "absent") is None


def test_aws_data_path_keeps_botocores_own_loader(monkeypatch: pytest.MonkeyPatch, data: Path, tmp_path: Path) -> None:
    monkeypatch.setattr(storage, "DATA_DIR", data)
    storage.session.cache_clear()
    try:
        assert isinstance(storage.session().get_component("data_loader"), storage.TrimmedDataLoader)
        storage.session.cache_clear()
        monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
        assert not isinstance(storage.session().get_component("data_loader"), storage.TrimmedDataLoader)
    finally:
        storage.session.cache_clear()


class _Sent(Exception):
    """Raised in place of sending: the request is captured, nothing leaves the process."""


#: One call of each operation, with what the code passes.
CALLS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "s3": [
        ("create_bucket", {"Bucket": "b"}),
        ("head_object", {"Bucket": "b", "Key": "uploads/a.jpg"}),
        ("get_object", {"Bucket": "b", "Key": "uploads/a b.jpg", "IfMatch": '"e"', "Range": "bytes=0-65535"}),
        ("put_object", {"Bucket": "b", "Key": "staging/x/1.tiff", "Body": b"\0" * 64, "ContentType": "image/tiff"}),
        (
            "copy_object",
            {
                "CopySource": {"Bucket": "b", "Key": "s/1.jpg"},
                "Bucket": "d",
                "Key": "r/1.jpg",
                "ContentType": "image/jpeg",
                "MetadataDirective": "REPLACE",
            },
        ),
        ("get_object", {"Bucket": "b", "Key": "uploads/a.jpg", "VersionId": "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrH"}),
        ("put_object", {"Bucket": "d", "Key": "a.jpg/manifest.json", "Body": b"{}", "IfMatch": '"e"'}),
        ("put_object", {"Bucket": "d", "Key": "a.jpg/manifest.json", "Body": b"{}", "IfNoneMatch": "*"}),
        ("list_objects_v2", {"Bucket": "b", "Prefix": "staging/"}),
        ("delete_object", {"Bucket": "d", "Key": "a.jpg/manifest.json", "IfMatch": '"e"'}),
        ("delete_objects", {"Bucket": "b", "Delete": {"Objects": [{"Key": "k"}], "Quiet": True}}),
    ],
    "sns": [
        (
            "publish",
            {
                "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
                "Message": "{}",
                "Subject": "s",
                "MessageAttributes": {"format": {"DataType": "String", "StringValue": "jpeg"}},
            },
        )
    ],
    "dynamodb": [
        ("get_item", {"TableName": "t", "Key": {"id": {"S": "k"}}, "ConsistentRead": True}),
        ("put_item", {"TableName": "t", "Item": {"id": {"S": "k"}}, "ConditionExpression": "attribute_not_exists(id)"}),
        (
            "update_item",
            {
                "TableName": "t",
                "Key": {"id": {"S": "k"}},
                "UpdateExpression": "SET #s = :s",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {":s": {"S": "COMPLETED"}},
            },
        ),
        ("delete_item", {"TableName": "t", "Key": {"id": {"S": "k"}}}),
        (
            "query",
            {
                "TableName": "t",
                "IndexName": "byStatus",
                "KeyConditionExpression": "#p = :p",
                "ExpressionAttributeNames": {"#p": "status"},
                "ExpressionAttributeValues": {":p": {"S": "FAILED"}},
                "ScanIndexForward": False,
                "Limit": 50,
            },
        ),
    ],
    "stepfunctions": [
        ("describe_execution", {"executionArn": "arn:aws:states:us-east-1:123456789012:execution:sm:e"}),
        (
            "list_executions",
            {"stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:sm", "statusFilter": "RUNNING"},
        ),
        (
            "start_execution",
            {"stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:sm", "name": "n", "input": "{}"},
        ),
    ],
}
#: What differs between any two requests: the time, the signature over it, the request's own id.
VARYING = frozenset({"X-Amz-Date", "Authorization", "amz-sdk-invocation-id", "X-Amz-Security-Token"})


def sent_request(session: botocore.session.Session, service: str, operation: str, params: dict[str, Any]) -> Any:
    client = session.create_client(service, config=Config(retries={"mode": "standard", "max_attempts": 1}))
    captured: dict[str, Any] = {}

    def capture(request: Any, **_: Any) -> None:
        body = request.body
        captured.update(
            url=request.url,
            method=request.method,
            headers={k: v for k, v in request.headers.items() if k not in VARYING},
            body=body if isinstance(body, bytes | str | None) else body.read(),
        )
        raise _Sent

    client.meta.events.register(f"before-send.{client.meta.service_model.service_id.hyphenize()}", capture)
    with pytest.raises(_Sent):
        getattr(client, operation)(**params)
    return captured, client.meta.endpoint_url, client.meta.region_name


def test_the_requests_compared_cover_every_operation_the_code_calls() -> None:
    assert {(service, op) for service, calls in CALLS.items() for op, _ in calls} == called_operations()


@pytest.mark.parametrize(
    "variant",
    [
        {"AWS_DEFAULT_REGION": "us-east-1"},
        {"AWS_DEFAULT_REGION": "eu-central-1"},
        {"AWS_DEFAULT_REGION": "us-west-2", "AWS_USE_FIPS_ENDPOINT": "true"},
        {"AWS_DEFAULT_REGION": "ap-southeast-2", "AWS_USE_DUALSTACK_ENDPOINT": "true"},
        {"AWS_DEFAULT_REGION": "cn-north-1"},
        {"AWS_DEFAULT_REGION": "us-gov-west-1"},
    ],
    ids=lambda v: "+".join(v.values()),
)
@pytest.mark.parametrize("service", sorted(CALLS))
def test_a_client_on_the_trimmed_data_sends_what_botocore_sends(
    data: Path, service: str, variant: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in variant.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token")
    trimmed = botocore.session.get_session()
    loader = storage.data_loader(data)
    assert loader is not None
    trimmed.register_component("data_loader", loader)
    own = botocore.session.get_session()
    for operation, params in CALLS[service]:
        assert sent_request(trimmed, service, operation, params) == sent_request(own, service, operation, params)


def test_presigned_posts_and_urls_are_the_same_on_the_trimmed_data(data: Path, builtin: Any) -> None:
    """The upload API signs with the trimmed data: the same URL and fields as on botocore's own data."""
    from pipeline.storage import TrimmedDataLoader

    made = []
    for loader in (TrimmedDataLoader(data), builtin):
        session = botocore.session.get_session()
        session.register_component("data_loader", loader)
        client: Any = session.create_client(
            "s3",
            region_name="eu-central-1",
            aws_access_key_id="k",
            aws_secret_access_key="s",
            config=Config(signature_version="s3v4"),
        )
        post = client.generate_presigned_post(Bucket="b", Key="uploads/x/a.jpg", ExpiresIn=60)
        url = client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "r/1.jpg"}, ExpiresIn=60)
        made.append((post["url"], sorted(post["fields"]), url.split("?")[0]))
    assert made[0] == made[1]
    assert {"policy", "x-amz-signature", "key"} <= set(made[0][1])
