"""localcloud.services.lambda_.service against moto itself: each gap still there, each patch
closing it (see conftest.py)."""

from __future__ import annotations

import json

from tests.localcloud.services.helpers import (
    HANDLER,
    ROLE,
    Clients,
    FakeRuntime,
    deploy_stack,
    make_function,
    zip_files,
)


def test_gap_lambda_runs_locally(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap:
    drop patch lambda_runs_locally from localcloud.services.lambda_.service."""
    c = unpatched
    make_function(c)

    reply = c.lam.invoke(FunctionName="fn", Payload=json.dumps({"x": 1}).encode())

    payload = reply["Payload"].read()
    assert reply["FunctionError"] == "Handled"
    assert payload.startswith(b"error running docker: ")
    assert b"ran" not in payload


def test_patched_lambda_runs_locally(patched: Clients, runtime: FakeRuntime) -> None:
    c = patched
    make_function(c)

    ok = c.lam.invoke(FunctionName="fn", Payload=json.dumps({"x": 1}).encode())
    assert "FunctionError" not in ok
    assert ok["StatusCode"] == 200
    assert json.loads(ok["Payload"].read()) == {"ok": True}

    error = json.dumps({"errorType": "ImageBroken", "errorMessage": "cannot decode"}).encode()
    runtime.replies.append((error, "ImageBroken"))
    failed = c.lam.invoke(FunctionName="fn", Payload=b'{"x": 2}')
    assert failed["FunctionError"] == "Unhandled"
    assert failed["Payload"].read() == error

    empty = c.lam.invoke(FunctionName="fn")
    assert "FunctionError" not in empty

    assert [name for name, _ in runtime.invocations] == ["fn", "fn", "fn"]
    assert [json.loads(payload) for _, payload in runtime.invocations] == [{"x": 1}, {"x": 2}, {}]


def _layers_stack(c: Clients) -> list[str]:
    """A stack whose function uses a layer of the stack (by Ref), and two published ones (by ARN, by name)."""
    c.s3.create_bucket(Bucket="code-bucket")
    c.s3.put_object(Bucket="code-bucket", Key="fn.zip", Body=zip_files({"app.py": HANDLER}))
    c.s3.put_object(Bucket="code-bucket", Key="layer.zip", Body=zip_files({"python/shared.py": "VALUE = 1\n"}))
    published = [
        c.lam.publish_layer_version(LayerName=name, Content={"ZipFile": zip_files({"python/x.py": name})})[
            "LayerVersionArn"
        ]
        for name in ("by-arn", "by-name", "by-name")
    ]
    deploy_stack(
        c,
        {
            "Layer": {
                "Type": "AWS::Lambda::LayerVersion",
                "Properties": {"LayerName": "shared", "Content": {"S3Bucket": "code-bucket", "S3Key": "layer.zip"}},
            },
            "Function": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": "with-layers",
                    "Runtime": "python3.12",
                    "Handler": "app.handler",
                    "Role": ROLE,
                    "Code": {"S3Bucket": "code-bucket", "S3Key": "fn.zip"},
                    "Layers": [{"Ref": "Layer"}, published[0], "by-name"],
                },
            },
        },
    )
    return [str(arn) for arn in published]


def test_gap_cfn_function_layers(unpatched: Clients) -> None:
    """If this fails, moto fixed the gap:
    drop patch cfn_function_layers from localcloud.services.lambda_.service."""
    c = unpatched
    _layers_stack(c)

    assert c.lam.get_function(FunctionName="with-layers")["Configuration"]["Layers"] == []


def test_patched_cfn_function_layers(patched: Clients) -> None:
    c = patched
    published = _layers_stack(c)

    layers = c.lam.get_function(FunctionName="with-layers")["Configuration"]["Layers"]
    stack_layer = next(
        item["LatestMatchingVersion"]["LayerVersionArn"]
        for item in c.lam.list_layers()["Layers"]
        if item["LayerName"] not in ("by-arn", "by-name")
    )
    assert [layer["Arn"] for layer in layers] == [stack_layer, published[0], published[2]]
    assert published[2].endswith(":layer:by-name:2")  # a bare name means its latest version
    assert all(layer["CodeSize"] > 0 for layer in layers)
