"""What the upload API's handlers share: a Powertools resolver whose errors are the API's JSON
(``{"error", "message"}``: 400 for a bad request, 404 for an unknown id or route, 503 when AWS
failed transiently), and the API's own URL as the request reached it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline import upload_api, uploads
from pipeline.errors import TransientError
from pipeline.observability import logger


def answer(status_code: int, body: object) -> Response[str]:
    return Response(status_code, content_types.APPLICATION_JSON, json.dumps(body, ensure_ascii=False))


def _error(status_code: int, error: str, message: str) -> Response[str]:
    return answer(status_code, {"error": error, "message": message})


def _bad_request(exc: uploads.BadRequest) -> Response[str]:
    return _error(400, exc.error, str(exc))


def _unknown_upload(exc: upload_api.NotFound) -> Response[str]:
    return _error(404, "NotFound", str(exc))


def _unknown_route(_: NotFoundError) -> Response[str]:
    return _error(404, "NotFound", "no such route")


def _unavailable(exc: TransientError) -> Response[str]:
    logger.warning("AWS failed transiently", extra={"cause": str(exc)})
    return _error(503, "ServiceUnavailable", "try again shortly")


def resolver() -> APIGatewayHttpResolver:
    """A resolver that answers the API's errors as JSON (other exceptions fail the invocation: a 500)."""
    app = APIGatewayHttpResolver()
    for error, answering in (
        (uploads.BadRequest, _bad_request),
        (upload_api.NotFound, _unknown_upload),
        (NotFoundError, _unknown_route),
        (TransientError, _unavailable),
    ):
        app.exception_handler(error)(answering)
    return app


def base_url(event: APIGatewayProxyEventV2) -> str:
    """``https://<domain>`` as the request reached API Gateway (the scheme and port it forwarded)."""
    headers = event.headers or {}
    proto = headers.get("x-forwarded-proto", "https").split(",")[0].strip() or "https"
    port = headers.get("x-forwarded-port", "").split(",")[0].strip()
    default = {"https": "443", "http": "80"}.get(proto)
    suffix = f":{port}" if port and port != default else ""
    return f"{proto}://{event.request_context.domain_name}{suffix}"


def handler(app: APIGatewayHttpResolver) -> Callable[[dict[str, Any], LambdaContext], dict[str, Any]]:
    """The function's Lambda handler: ``app`` resolves the request, logged with API Gateway's request id."""

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return app.resolve(event, context)

    return lambda_handler
