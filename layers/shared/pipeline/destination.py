"""The destination bucket's one rule, and the S3 operations that keep it.

**The destination holds, for each source object that exists, exactly the renditions and manifest
made from its current version, and nothing for sources that no longer exist.**

- Each source key has one manifest, ``<stem>/manifest.json``: the commit point. Renditions of one
  source revision are objects of their own, ``<stem>/<revision tag>/<width>w.<ext>`` (``keys``), so
  two revisions never write the same key.
- A revision is committed by writing the manifest conditionally on what was read before
  (``If-Match`` its ETag, or ``If-None-Match: *`` when there was none), and only while the revision
  is still the source's current version. Two concurrent commits of one key cannot interleave: the
  second writer's condition fails and it reads again.
- After a commit, the replaced revision's renditions are deleted by the exact keys its manifest
  lists (never by listing a folder: another upload's key may extend this one's). The source is then
  checked again: a revision replaced or deleted during the commit takes its manifest back (a
  conditional delete, so a newer revision's manifest is never touched) and its renditions.
- A deleted source's manifest is removed conditionally, then the renditions it listed.

Every function here is safe to run twice and against any interleaving with the others; the
property test ``tests/unit/test_destination_invariant.py`` runs random interleavings against S3.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pipeline import keys, messages
from pipeline.errors import TransientError
from pipeline.models import ObjectRef
from pipeline.storage import S3Store

#: How many times a commit re-reads the manifest after losing a race for it.
COMMIT_ATTEMPTS: Final = 8
MANIFEST_VERSION: Final = 2


def revision_of(head: dict[str, Any]) -> str:
    """The revision a HEAD response names: its VersionId, else (unversioned bucket) ETag and write time."""
    version = head.get("VersionId")
    if version and version != "null":
        return str(version)
    modified = head.get("LastModified")
    stamp = modified.isoformat() if isinstance(modified, datetime) else str(modified or "")
    return f"{str(head.get('ETag', '')).strip(chr(34))}@{stamp}"


def is_current(s3: S3Store, source: ObjectRef) -> bool:
    """True while ``source``'s revision is the current version of its key."""
    head = s3.current(source["bucket"], source["key"])
    return head is not None and revision_of(head) == source["revision"]


def manifest_names(manifest: Any, source: ObjectRef) -> bool:
    """True when a manifest was written for this source revision."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("source"), dict):
        return False
    return bool(
        manifest["source"].get("revision") == source["revision"] and manifest["source"].get("key") == source["key"]
    )


def listed_renditions(manifest: Any, stem: str) -> list[str]:
    """The rendition keys a manifest lists that belong to ``stem`` (anything else in it is never deleted)."""
    renditions = manifest.get("renditions") if isinstance(manifest, dict) else None
    if not isinstance(renditions, list):
        return []
    listed = (r.get("key") for r in renditions if isinstance(r, dict))
    return [key for key in listed if isinstance(key, str) and keys.is_rendition_of(stem, key)]


@dataclass(frozen=True, slots=True)
class Destination:
    """One source key's manifest and renditions in the destination bucket."""

    s3: S3Store
    bucket: str
    stem: str

    @property
    def manifest_key(self) -> str:
        return keys.manifest_key(self.stem)

    def commit(self, source: ObjectRef, manifest: dict[str, Any], own: Sequence[str], metadata: dict[str, str]) -> str:
        """Make ``manifest`` (whose renditions ``own`` are already written) the key's manifest.

        Returns ``STORED``, ``UNCHANGED`` (this revision was committed already: a duplicate run) or
        ``SUPERSEDED`` (the source was replaced or deleted: nothing of this run is left behind).
        """
        body = messages.dumps(manifest)
        for _ in range(COMMIT_ATTEMPTS):
            previous, etag = self.s3.read_json_tagged(self.bucket, self.manifest_key)
            if manifest_names(previous, source):
                return "UNCHANGED"
            if not is_current(self.s3, source):
                self.s3.delete(self.bucket, list(own))
                return "SUPERSEDED"
            written = self.s3.write_if(
                self.bucket,
                self.manifest_key,
                body,
                "application/json",
                etag,
                CacheControl="no-cache",
                Metadata=metadata,
            )
            if written is None:
                continue  # another run committed first: read again
            self.s3.delete(self.bucket, [k for k in listed_renditions(previous, self.stem) if k not in own])
            if is_current(self.s3, source):
                return "STORED"
            self.withdraw(written, own)
            return "SUPERSEDED"
        raise TransientError(f"the manifest s3://{self.bucket}/{self.manifest_key} kept changing during the commit")

    def withdraw(self, etag: str, own: Sequence[str]) -> None:
        """Take back a manifest this run wrote (only while it is still that one) and its renditions."""
        self.s3.delete_if(self.bucket, self.manifest_key, etag)
        self.s3.delete(self.bucket, list(own))

    def clear(self, may_clear: Callable[[Any], bool]) -> list[str]:
        """Remove the manifest and the renditions it lists while ``may_clear(manifest)``; returns the keys removed.

        The manifest goes first, conditionally on the ETag it was read with: if another run commits
        in between, the delete fails, and the new manifest is read and judged again.
        """
        for _ in range(COMMIT_ATTEMPTS):
            manifest, etag = self.s3.read_json_tagged(self.bucket, self.manifest_key)
            if manifest is None or etag is None or not may_clear(manifest):
                return []
            if self.s3.delete_if(self.bucket, self.manifest_key, etag):
                listed = listed_renditions(manifest, self.stem)
                self.s3.delete(self.bucket, listed)
                return [self.manifest_key, *listed]
        raise TransientError(f"the manifest s3://{self.bucket}/{self.manifest_key} kept changing during its removal")
