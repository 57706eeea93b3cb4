"""The destination invariant under random interleavings of uploads, overwrites, deletions and failures.

**The destination holds, for each source object that exists, exactly the renditions and manifest made
from its current version, and nothing for sources that no longer exist.**

Each upload or deletion starts an execution, as its S3 event would; executions advance one step at a
time in an order hypothesis chooses, and any of them may fail at any step (its failure branch then
runs). The steps are the pipeline's own (``pipeline.steps``) on real images, against S3 (moto, with
versioning and conditional writes). Once every execution has ended, the destination must hold exactly
what the invariant says: for each key whose current version was processed successfully, its manifest
and the renditions it lists, and nothing else at all.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from PIL import Image

from pipeline import keys, steps
from pipeline.events import CleanupEvent, RemoveEvent, ResizeEvent, StoreEvent, ValidateEvent, WatermarkEvent
from pipeline.settings import (
    EncodeSettings,
    Limits,
    RenditionSettings,
    Source,
    Staging,
    StoreSettings,
    WatermarkSettings,
)
from pipeline.storage import S3Store, Topic

PREFIX = "uploads/"
#: Keys chosen to collide if anything listed a folder or confused a key with a rendition or manifest name.
KEYS = ("a.jpg", "a.jpg/sub.jpg", "a.jpg/320w.jpg", "a.jpg/manifest.json")
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:ImagePipeline:"


def _image(width: int, height: int, fmt: str, shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (shade, 120, 255 - shade)).save(buf, fmt)
    return buf.getvalue()


#: Contents an upload can have: two real images of different sizes, and a broken one.
CONTENTS = (_image(80, 60, "JPEG", 40), _image(50, 40, "PNG", 200), _image(80, 60, "JPEG", 90)[:300])


@dataclass
class Run:
    """One execution: the steps still to run, as the state machine would chain them."""

    name: str
    input: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)
    next: str = "validate"
    fail_at: str | None = None


@dataclass
class World:
    s3: Any
    store: S3Store
    topic: Topic
    source: Source
    store_settings: StoreSettings
    renditions: RenditionSettings
    encode: EncodeSettings
    marks: WatermarkSettings
    limits: Limits
    runs: list[Run] = field(default_factory=list)
    #: For each source key: the VersionId of its current version (None once deleted) and the run its event started.
    latest: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)

    def event(self, key: str, detail_type: str, version: str | None) -> dict[str, Any]:
        obj: dict[str, Any] = {"key": key, "sequencer": f"{len(self.runs):08X}"}
        if version:
            obj["version-id"] = version
        return {
            "id": f"event-{len(self.runs)}",
            "source": "aws.s3",
            "detail-type": detail_type,
            "detail": {"bucket": {"name": self.source.bucket}, "object": obj},
        }

    def put(self, key: str, content: int) -> None:
        version = self.s3.put_object(Bucket=self.source.bucket, Key=PREFIX + key, Body=CONTENTS[content])["VersionId"]
        self.start(PREFIX + key, "Object Created", version)

    def delete(self, key: str) -> None:
        marker = self.s3.delete_object(Bucket=self.source.bucket, Key=PREFIX + key).get("VersionId")
        self.start(PREFIX + key, "Object Deleted", marker)

    def start(self, key: str, detail_type: str, version: str | None) -> None:
        run = Run(name=f"run-{len(self.runs)}", input=self.event(key, detail_type, version))
        self.runs.append(run)
        self.latest[key] = (version if detail_type == "Object Created" else None, run.name)

    def settle(self) -> None:
        """Run every execution to its end, oldest first."""
        while pending := self.pending():
            self.advance(pending[0])

    def pending(self) -> list[Run]:
        return [run for run in self.runs if run.next != "done"]

    def advance(self, run: Run) -> None:
        """Run the execution's next step (or its failure branch, when it is set to fail there)."""
        execution = EXECUTION + run.name
        if run.fail_at == run.next and run.next not in ("cleanup", "remove"):
            run.state["error"] = {"Error": "TransientError", "Cause": json.dumps({"errorMessage": "injected"})}
            run.next = "cleanup"
            return
        step, state = run.next, run.state
        if step == "validate":
            run.state = steps.validate(ValidateEvent(run.input), self.source, self.limits, self.store)
            run.next = {"PROCESS": "resize", "DELETED": "remove", "REJECTED": "cleanup"}.get(
                run.state["outcome"], "done"
            )
        elif step == "resize":
            payload = {"source": state["source"], "image": state["image"], "execution": execution}
            state["resized"] = steps.resize(ResizeEvent(payload), self.renditions, self.store)
            run.next = "watermark"
        elif step == "watermark":
            payload = {"source": state["source"], "renditions": state["resized"]["renditions"], "execution": execution}
            marked = steps.watermark_and_encode(
                WatermarkEvent(payload), self.marks, self.encode, self.store_settings.staging, self.store
            )
            state["watermarked"] = marked
            run.next = "store"
        elif step == "store":
            payload = {
                "source": state["source"],
                "image": state["resized"]["image"],
                "outputs": state["watermarked"]["outputs"],
                "execution": execution,
            }
            state["stored"] = steps.store(StoreEvent(payload), self.store_settings, self.store)
            run.next = "done"
        elif step == "remove":
            removed = steps.remove(
                RemoveEvent({"source": state["source"], "execution": execution}),
                self.store_settings,
                self.store,
                self.topic,
            )
            state["removed"] = removed
            run.next = "done"
        elif step == "cleanup":
            answer = steps.cleanup(
                CleanupEvent({"state": state, "execution": execution}), self.store_settings, self.store
            )
            self.outcomes[run.name] = answer["outcome"]
            run.next = "done"
            return
        if run.next == "done":
            self.outcomes.setdefault(run.name, "ENDED")

    def expected(self) -> set[str]:
        """What the invariant allows in the destination: each current version's outputs, where a run committed them.

        Any run may commit a version: its own event's, a duplicate's, or a deletion event's that found
        the key uploaded again. A version no run committed (it failed, or was rejected) shows nothing.
        """
        wanted: set[str] = set()
        for key, (version, _) in self.latest.items():
            committed = [
                run.state["stored"]
                for run in self.runs
                if version is not None
                and run.state.get("source", {}).get("revision") == version
                and run.state.get("stored", {}).get("outcome") in ("STORED", "UNCHANGED")
            ]
            if committed:
                wanted.add(keys.manifest_key(keys.stem(key, PREFIX)))
                wanted.update(r["key"] for r in committed[0]["renditions"])
        return wanted


@st.composite
def scripts(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    actions = st.one_of(
        st.tuples(st.just("put"), st.sampled_from(KEYS), st.integers(0, len(CONTENTS) - 1)),
        st.tuples(st.just("delete"), st.sampled_from(KEYS)),
        st.tuples(st.just("step"), st.integers(0, 50)),
        st.tuples(st.just("step"), st.integers(0, 50)),
        st.tuples(st.just("fail"), st.integers(0, 50), st.sampled_from(["resize", "watermark", "store"])),
        st.tuples(st.just("settle")),
    )
    return draw(st.lists(actions, min_size=1, max_size=24))


def _world() -> Iterator[World]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        for name in ("source", "destination", "staging"):
            s3.create_bucket(Bucket=name)
        s3.put_bucket_versioning(Bucket="source", VersioningConfiguration={"Status": "Enabled"})
        topic_arn = boto3.client("sns", region_name="us-east-1").create_topic(Name="outcomes")["TopicArn"]
        staging = Staging(bucket="staging", prefix="staging/")
        yield World(
            s3=s3,
            store=S3Store(s3),
            topic=Topic(boto3.client("sns", region_name="us-east-1"), topic_arn),
            source=Source(bucket="source", upload_prefix=PREFIX),
            store_settings=StoreSettings(
                destination_bucket="destination", upload_prefix=PREFIX, cache_control="no-cache", staging=staging
            ),
            renditions=RenditionSettings(widths=(64, 32), max_pixels=1_000_000, staging=staging),
            encode=EncodeSettings(formats=("jpeg",), jpeg_quality=80, webp_quality=80, avif_quality=60),
            marks=WatermarkSettings(text="", logo="", position="bottom-right", opacity=0.0, min_width=0),
            limits=Limits(max_upload_bytes=1 << 20, max_pixels=1_000_000, upload_prefix=PREFIX),
        )


def _keys(s3: Any, bucket: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=scripts())
@example(script=[("put", "a.jpg", 0), ("settle",), ("put", "a.jpg", 1), ("settle",)])  # replaced by a smaller image
@example(script=[("put", "a.jpg/sub.jpg", 0), ("put", "a.jpg", 2), ("settle",)])  # a failure beside a longer key
@example(script=[("put", "a.jpg", 0), ("step", 0), ("step", 0), ("put", "a.jpg", 1), ("settle",)])  # overwrite mid-run
@example(script=[("put", "a.jpg", 0), ("step", 0), ("step", 0), ("delete", "a.jpg"), ("settle",)])  # delete mid-run
@example(script=[("put", "a.jpg", 0), ("settle",), ("put", "a.jpg", 2), ("settle",)])  # replaced by a broken file
def test_after_any_interleaving_the_destination_holds_exactly_the_current_versions_outputs(
    script: list[tuple[Any, ...]],
) -> None:
    for world in _world():
        for action in script:
            pending = world.pending()
            if action[0] == "put":
                world.put(action[1], action[2])
            elif action[0] == "delete":
                world.delete(action[1])
            elif pending and action[0] == "step":
                world.advance(pending[action[1] % len(pending)])
            elif pending and action[0] == "fail":
                pending[action[1] % len(pending)].fail_at = action[2]
            elif action[0] == "settle":
                world.settle()
        world.settle()

        assert _keys(world.s3, "destination") == world.expected()
        assert _keys(world.s3, "staging") == set(), "every execution cleared its intermediates"
        for key in world.expected():
            if key.endswith("/manifest.json"):
                manifest = json.loads(world.s3.get_object(Bucket="destination", Key=key)["Body"].read())
                head = world.s3.head_object(Bucket="source", Key=manifest["source"]["key"])
                assert manifest["source"]["version_id"] == head["VersionId"], "the manifest names the current version"
