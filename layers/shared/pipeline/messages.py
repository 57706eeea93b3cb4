"""Messages to the topic (succeeded, failed, deleted) and the attributes subscribers filter on.

Messages are for people and programs: names, a one-line reason, the source and the execution.
No stack trace, file path or echoed input reaches them; those stay in the function logs.
"""

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


#: Longest reason a message carries.
REASON_CHARS = 300


def one_line(text: str, limit: int = REASON_CHARS) -> str:
    """The first line of a text, cut to ``limit`` characters."""
    line = next((part.strip() for part in str(text).splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def source_summary(source: dict[str, Any] | None) -> dict[str, Any] | None:
    """Bucket, key and version of a source, as far as they are known."""
    if not isinstance(source, dict):
        return None
    summary = {name: source.get(name) for name in ("bucket", "key", "version_id", "revision") if source.get(name)}
    if isinstance(source.get("keys"), list) and len(source["keys"]) > 1:
        summary["keys"] = [one_line(str(key), 1100) for key in source["keys"][:2]]
    for name, value in summary.items():
        if isinstance(value, str):
            summary[name] = one_line(value, 1100)
    return summary or None


def failure_message(
    *, execution: str, error: str, reason: str, step: str, source: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "status": "FAILED",
        "error": error,
        "reason": one_line(reason),
        "step": step,
        "source": source_summary(source),
        "execution": execution,
    }


def deleted_message(*, execution: str, source: dict[str, Any], removed: list[str]) -> dict[str, Any]:
    return {
        "status": "DELETED",
        "source": source_summary(source),
        "removed": removed,
        "execution": execution,
    }


def status_attributes(status: str, **more: str) -> dict[str, MessageAttribute]:
    attributes = {"status": MessageAttribute(DataType="String", StringValue=status)}
    for name, value in more.items():
        attributes[name] = MessageAttribute(DataType="String", StringValue=value)
    return attributes
