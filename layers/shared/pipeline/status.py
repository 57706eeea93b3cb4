"""The status record of an upload: what it is, how it is keyed, and when a write may replace it.

One record per source key under the upload prefix, in the status table, keyed by ``id``: the id the
upload API gave out (the key is ``<prefix><id>/<filename>``), or for a key written straight into S3
``s3-`` and 32 hex digits of the key's SHA-256. Either way the id follows from the key alone
(``id_for_key``), so a step that knows only the key finds the record the API made.

Writes are ordered by the source version they are about. A write for a newer version (a greater S3
event ``sequencer``) replaces whatever is there; a write for the same version only moves forward
(PENDING, then PROCESSING, then an outcome); a write for an older version changes nothing. That is
all in the condition ``transition`` builds, so DynamoDB decides it atomically: a stale execution,
however late, never overwrites a newer status. No code here talks to AWS.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pipeline.models import Output

PENDING, PROCESSING, SUCCEEDED, FAILED, SUPERSEDED, DELETED = (
    "PENDING",
    "PROCESSING",
    "SUCCEEDED",
    "FAILED",
    "SUPERSEDED",
    "DELETED",
)
STATUSES: Final = (PENDING, PROCESSING, SUCCEEDED, FAILED, SUPERSEDED, DELETED)
#: How far along a version is: a write for the same version must go further.
RANK: Final = {PENDING: 0, PROCESSING: 1, SUCCEEDED: 2, FAILED: 2, SUPERSEDED: 2, DELETED: 2}
#: The constant partition of the ``byCreated`` index, which lists every record newest first.
LISTING: Final = "upload"
#: The table's indexes (template.yaml): every record by ``listing``, or by ``status``; both sorted by ``createdAt``.
BY_CREATED: Final = "byCreated"
BY_STATUS: Final = "byStatus"
#: S3 sequencers are hex strings of varying length, ordered once left-padded to one length (S3 docs).
SEQUENCER_DIGITS: Final = 48
UNKNOWN_SEQUENCER: Final = "0" * SEQUENCER_DIGITS
_API_ID: Final = re.compile(r"[0-9a-f]{32}")
_HEX: Final = re.compile(r"[0-9A-Fa-f]{1,48}")


def new_id(random_hex: str) -> str:
    """An API upload id from 32 random hex digits (``uuid4().hex``)."""
    if not _API_ID.fullmatch(random_hex):
        raise ValueError(f"an upload id is 32 lower-case hex digits, got {random_hex!r}")
    return random_hex


def id_for_key(upload_prefix: str, key: str) -> str:
    """The record's id for a source key: the API's id when the key is ``<prefix><id>/<name>``, else
    ``s3-`` and a digest of the key."""
    rest = key[len(upload_prefix) :] if key.startswith(upload_prefix) else None
    if rest is not None:
        head, sep, name = rest.partition("/")
        if sep and name and "/" not in name and _API_ID.fullmatch(head):
            return head
    return "s3-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def is_id(value: str) -> bool:
    """Whether ``value`` has the shape of a record id (API ids and key digests alike)."""
    return bool(_API_ID.fullmatch(value.removeprefix("s3-")))


def sequencer_order(sequencer: str | None) -> str:
    """An S3 event sequencer as a string that sorts in event order (unknown: before every known one)."""
    if not sequencer or not _HEX.fullmatch(sequencer):
        return UNKNOWN_SEQUENCER
    return sequencer.upper().rjust(SEQUENCER_DIGITS, "0")


@dataclass(frozen=True, slots=True)
class Update:
    """What a step learned about one version of an upload."""

    key: str
    status: str
    version: str
    sequencer: str | None
    execution: str
    at: str
    error: str | None = None
    reason: str | None = None
    renditions: Sequence[Output] = ()


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def rendition_summary(outputs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What the record keeps of each rendition (the API presigns a URL for ``key`` when asked)."""
    return [
        {"key": o["key"], "width": o["width"], "height": o["height"], "format": o["format"], "bytes": o["bytes"]}
        for o in outputs
    ]


def transition(update: Update, upload_prefix: str) -> dict[str, Any]:
    """The UpdateItem arguments (without TableName) that write ``update`` only where it is not stale.

    Allowed: a new record; a PENDING record of the same key (the API's, waiting for its upload); a
    record of an older version (a smaller sequencer); the same version further along. A manual
    execution knows no sequencer: it may only move its own version forward, or replace a record
    that knows none either.
    """
    if update.status not in RANK or update.status == PENDING:
        raise ValueError(f"a step writes PROCESSING or an outcome, not {update.status!r}")
    order = sequencer_order(update.sequencer)
    newer = "#seq < :seq" if order != UNKNOWN_SEQUENCER else "#seq = :seq"
    condition = (
        "attribute_not_exists(id) OR (#key = :key AND "
        f"(#status = :pending OR {newer} OR (#version = :version AND #rank < :rank)))"
    )
    assignments = [
        "#key = :key",
        "#status = :status",
        "#rank = :rank",
        "#version = :version",
        "#seq = :seq",
        "execution = :execution",
        "updatedAt = :at",
        "createdAt = if_not_exists(createdAt, :at)",
        "listing = :listing",
        "renditions = :renditions",
        "#error = :error",
        "reason = :reason",
    ]
    values = {
        ":key": _s(update.key),
        ":status": _s(update.status),
        ":pending": _s(PENDING),
        ":rank": {"N": str(RANK[update.status])},
        ":version": _s(update.version),
        ":seq": _s(order),
        ":execution": _s(update.execution),
        ":at": _s(update.at),
        ":listing": _s(LISTING),
        ":renditions": _s(json.dumps(rendition_summary(update.renditions), separators=(",", ":"))),
        ":error": _s(update.error or ""),
        ":reason": _s(update.reason or ""),
    }
    return {
        "Key": {"id": _s(id_for_key(upload_prefix, update.key))},
        "UpdateExpression": "SET " + ", ".join(assignments) + " REMOVE #ttl",
        "ConditionExpression": condition,
        "ExpressionAttributeNames": {
            "#key": "key",
            "#status": "status",
            "#rank": "rank",
            "#version": "version",
            "#seq": "sequencer",
            "#error": "error",
            "#ttl": "ttl",
        },
        "ExpressionAttributeValues": values,
    }


def pending(
    upload_id: str, key: str, *, created_at: str, expires_at: str, expires_epoch: int, keep_s: int
) -> dict[str, Any]:
    """The PutItem arguments (without TableName) of the record the API makes with an upload URL.

    The id is new, so the put is conditional on no record having it. The record expires (DynamoDB
    TTL) ``keep_s`` after the URL does, unless an upload moves it on (every step's write removes ``ttl``).
    """
    return {
        "Item": {
            "id": _s(upload_id),
            "key": _s(key),
            "status": _s(PENDING),
            "rank": {"N": "0"},
            "version": _s(""),
            "sequencer": _s(UNKNOWN_SEQUENCER),
            "execution": _s(""),
            "createdAt": _s(created_at),
            "updatedAt": _s(created_at),
            "expiresAt": _s(expires_at),
            "listing": _s(LISTING),
            "renditions": _s("[]"),
            "error": _s(""),
            "reason": _s(""),
            "ttl": {"N": str(expires_epoch + keep_s)},
        },
        "ConditionExpression": "attribute_not_exists(id)",
    }


@dataclass(frozen=True, slots=True)
class Record:
    """A status record as the API shows it."""

    id: str
    key: str
    status: str
    version: str
    execution: str
    error: str | None
    reason: str | None
    renditions: list[dict[str, Any]]
    created_at: str
    updated_at: str
    expires_at: str | None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Record:
        def text(name: str) -> str:
            return str(item.get(name, {}).get("S", ""))

        return cls(
            id=text("id"),
            key=text("key"),
            status=text("status"),
            version=text("version"),
            execution=text("execution"),
            error=text("error") or None,
            reason=text("reason") or None,
            renditions=list(json.loads(text("renditions") or "[]")),
            created_at=text("createdAt"),
            updated_at=text("updatedAt"),
            expires_at=text("expiresAt") or None,
        )
