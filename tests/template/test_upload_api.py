"""The upload API in template.yaml, transformed by the real aws-sam-translator: its routes, its switch
between no authorisation and JWT, CORS on the API and on the source bucket, throttling, the status
table as the code keys it, and least privilege for its three functions."""

from __future__ import annotations

import re
from typing import Any

from pipeline import status
from tests.template.helpers import listify, of_type, props
from tests.template.test_template import getatt, other_grants, role_of, role_statements, s3_access

ROUTES = {
    ("/uploads", "post"): "UploadsCreateFunction",
    ("/uploads", "get"): "UploadsReadFunction",
    ("/uploads/{id}", "get"): "UploadsReadFunction",
    ("/uploads/{id}", "delete"): "UploadsDeleteFunction",
}


def _api(resources: dict[str, Any]) -> dict[str, Any]:
    (api,) = of_type(resources, "AWS::ApiGatewayV2::Api").values()
    return dict(api["Properties"]["Body"])


def test_every_route_reaches_its_function_with_payload_format_2(resources: dict[str, Any]) -> None:
    body = _api(resources)
    found = {}
    for path, operations in body["paths"].items():
        for method, operation in operations.items():
            integration = operation["x-amazon-apigateway-integration"]
            assert (integration["type"], integration["payloadFormatVersion"]) == ("aws_proxy", "2.0")
            function = re.search(r"\$\{(\w+)\.Arn\}", integration["uri"]["Fn::Sub"])
            assert function is not None
            found[(path, method)] = function.group(1)
    assert found == ROUTES
    permissions = of_type(resources, "AWS::Lambda::Permission")
    assert {props(resources, p)["FunctionName"]["Ref"] for p in permissions} == set(ROUTES.values())
    for name in permissions:
        assert props(resources, name)["Principal"] == "apigateway.amazonaws.com"


def test_authorisation_is_none_by_default_and_jwt_when_asked(cfn: dict[str, Any], resources: dict[str, Any]) -> None:
    assert cfn["Parameters"]["ApiAuth"]["Default"] == "NONE"
    assert set(cfn["Parameters"]["ApiAuth"]["AllowedValues"]) == {"NONE", "JWT"}
    assert cfn["Conditions"]["UseJwt"] == {"Fn::Equals": [{"Ref": "ApiAuth"}, "JWT"]}
    body = _api(resources)
    assert body["security"] == {"Fn::If": ["UseJwt", [{"Jwt": []}], {"Ref": "AWS::NoValue"}]}
    scheme = body["components"]["Fn::If"][1]["securitySchemes"]["Jwt"]["x-amazon-apigateway-authorizer"]
    assert scheme["type"] == "jwt"
    assert scheme["identitySource"] == "$request.header.Authorization"
    assert scheme["jwtConfiguration"] == {"issuer": {"Ref": "JwtIssuer"}, "audience": [{"Ref": "JwtAudience"}]}
    assertions = cfn["Rules"]["JwtNeedsIssuerAndAudience"]["Assertions"]
    assert [a["Assert"]["Fn::Not"][0]["Fn::Equals"][0]["Ref"] for a in assertions] == ["JwtIssuer", "JwtAudience"]


def test_cors_origins_are_one_parameter_for_the_api_and_the_source_bucket(resources: dict[str, Any]) -> None:
    cors = _api(resources)["x-amazon-apigateway-cors"]
    assert cors["allowOrigins"] == {"Ref": "CorsOrigins"}
    assert set(cors["allowMethods"]) == {"GET", "POST", "DELETE"}
    assert {"authorization", "content-type"} <= set(cors["allowHeaders"])
    (rule,) = props(resources, "SourceBucket")["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedOrigins"] == {"Ref": "CorsOrigins"}
    assert rule["AllowedMethods"] == ["POST"], "browsers only ever POST uploads straight to S3"


def test_routes_are_throttled_by_the_parameters(resources: dict[str, Any]) -> None:
    (stage,) = of_type(resources, "AWS::ApiGatewayV2::Stage")
    settings = props(resources, stage)["DefaultRouteSettings"]
    assert settings == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottleRate"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottleBurst"},
    }
    assert props(resources, stage)["AccessLogSettings"]["DestinationArn"] == {
        "Fn::GetAtt": ["UploadApiLogGroup", "Arn"]
    }


def test_the_status_table_is_keyed_and_indexed_as_the_code_reads_it(resources: dict[str, Any]) -> None:
    table = props(resources, "StatusTable")
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    indexes = {i["IndexName"]: [k["AttributeName"] for k in i["KeySchema"]] for i in table["GlobalSecondaryIndexes"]}
    assert indexes == {status.BY_CREATED: ["listing", "createdAt"], status.BY_STATUS: ["status", "createdAt"]}
    update = status.transition(
        status.Update("uploads/a.jpg", status.PROCESSING, "v", "01", "e", "2026-01-01T00:00:00.000+00:00"), "uploads/"
    )
    assigned = {
        update["ExpressionAttributeNames"].get(n, n) for n in re.findall(r"(#?\w+) = ", update["UpdateExpression"])
    }
    assert {"listing", "status", "createdAt"} <= assigned, "every write keeps the record in both indexes"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


STATUS_TABLE = ("StatusTable", "Arn")


def test_the_api_functions_can_presign_for_the_upload_prefix_only_and_read_the_status_table_only(
    resources: dict[str, Any],
) -> None:
    create, read, delete = (
        role_of(resources, f) for f in ("UploadsCreateFunction", "UploadsReadFunction", "UploadsDeleteFunction")
    )
    assert s3_access(resources, create) == {("s3:PutObject", "SourceBucket", "${UploadPrefix}*")}
    assert other_grants(resources, create) == {"dynamodb:PutItem": {STATUS_TABLE}}
    assert s3_access(resources, read) == {("s3:GetObject", "DestinationBucket", "*")}
    queries = [
        statement
        for name, _, statement in role_statements(resources)
        if name == read and "dynamodb:Query" in listify(statement["Action"])
    ]
    assert [listify(q["Resource"]) for q in queries] == [
        [{"Fn::Sub": "${StatusTable.Arn}/index/" + index} for index in (status.BY_CREATED, status.BY_STATUS)]
    ]
    grants = other_grants(resources, read)
    assert grants.pop("dynamodb:GetItem") == {STATUS_TABLE}
    assert set(grants) == {"dynamodb:Query"}, "reads statuses, writes nothing"
    assert s3_access(resources, delete) == {("s3:DeleteObject", "SourceBucket", "${UploadPrefix}*")}
    assert other_grants(resources, delete) == {"dynamodb:GetItem": {STATUS_TABLE}}
    for role in (create, read, delete):
        logs = [s for name, _, s in role_statements(resources) if name == role and s["Sid"] == "WriteOwnLogs"]
        assert len(logs) == 1
        assert getatt(logs[0]["Resource"]) is not None
