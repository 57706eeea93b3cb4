"""Success notification: the message and the attributes subscribers filter on."""

from __future__ import annotations

import json
from typing import Any, TypedDict

from pipeline.models import ImageInfo, ObjectRef, Output


class MessageAttribute(TypedDict):
    DataType: str
    StringValue: str


def success_message(
    *,
    execution: str,
    source: ObjectRef,
    image: ImageInfo,
    manifest: dict[str, str],
    renditions: list[Output],
    durations_ms: dict[str, int],
) -> dict[str, Any]:
    bytes_out = sum(r["bytes"] for r in renditions)
    return {
        "status": "SUCCEEDED",
        "execution": execution,
        "source": source,
        "image": {"format": image["format"], "width": image["width"], "height": image["height"]},
        "manifest": manifest,
        "renditions": [{k: r[k] for k in ("key", "width", "height", "format", "bytes")} for r in renditions],
        "bytes_in": source["size"],
        "bytes_out": bytes_out,
        "durations_ms": durations_ms,
    }


def success_attributes(image: ImageInfo, renditions: list[Output]) -> dict[str, MessageAttribute]:
    formats = sorted({r["format"] for r in renditions})
    return {
        "status": {"DataType": "String", "StringValue": "SUCCEEDED"},
        "format": {"DataType": "String", "StringValue": image["format"].lower()},
        "output_formats": {"DataType": "String.Array", "StringValue": "[" + ",".join(f'"{f}"' for f in formats) + "]"},
    }


def dumps(document: Any) -> bytes:
    """UTF-8 JSON as stored in S3 (keys and names stay readable)."""
    return json.dumps(document, ensure_ascii=False, indent=2, default=str).encode()
