"""Requests the SDK would send, captured and answered without a server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from botocore.awsrequest import AWSResponse


class _Empty:
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield b""


def put_object_headers(client: Any, put: Callable[[], object]) -> dict[str, str]:
    """The headers of the PutObject request ``put()`` makes through ``client``; answered 200 in place."""
    sent: dict[str, str] = {}

    def answer(request: Any, **_: Any) -> Any:
        sent.update({k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()})
        headers: Any = {"ETag": '"e"'}
        return AWSResponse(request.url, 200, headers, _Empty())

    client.meta.events.register("before-send.s3.PutObject", answer)
    put()
    return sent
