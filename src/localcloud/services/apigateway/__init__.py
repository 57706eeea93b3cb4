"""The local cloud's HTTP API: what API Gateway does for an ``AWS::ApiGatewayV2::Api`` (an ``AWS::Serverless::HttpApi``)
with Lambda proxy integrations, which moto does not model.

``HttpApi(definition, invoke=...)`` takes the API's OpenAPI ``Body`` (intrinsics resolved) and serves it on a local
port: routes, payload format 2.0, CORS, JWT authorizers and route throttling. See the modules for each part.
"""

from localcloud.services.apigateway.server import MAX_BODY_BYTES, HttpApi, Invoke
from localcloud.services.apigateway.throttling import Throttle, TokenBucket

__all__ = ["MAX_BODY_BYTES", "HttpApi", "Invoke", "Throttle", "TokenBucket"]
