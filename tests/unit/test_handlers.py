"""The five handlers against moto S3 and SNS, fed as the state machine feeds them."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any
from urllib.parse import quote_plus

import pytest
from PIL import Image, ImageDraw

from pipeline import errors, keys
from tests import images
from tests.conftest import Cloud, FakeLambdaContext

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:ImagePipeline:test"


def photo(width: int = 1600, height: int = 1200, fmt: str = "JPEG", mode: str = "RGB") -> bytes:
    img = Image.new("RGBA", (width, height))
    draw = ImageDraw.Draw(img)
    for x in range(0, width, 40):
        draw.rectangle([x, 0, x + 20, height], fill=(x % 255, (x * 3) % 255, 120, 255))
    draw.ellipse([width // 4, height // 4, width // 2, height // 2], fill=(250, 240, 10, 255))
    draw.rectangle([0, 0, width // 8, height // 8], fill=(0, 0, 0, 0))  # a transparent corner
    buf = io.BytesIO()
    img.convert(mode).save(buf, fmt)
    return buf.getvalue()


class Chain:
    """Runs the handlers as the state machine does, passing what the ASL's Parameters/ResultSelector pass."""

    def __init__(self, load: Callable[..., ModuleType], context: FakeLambdaContext, **overrides: str) -> None:
        self.handlers = {
            name: load(name, **overrides)
            for name in ("validate", "resize", "watermark", "store", "notify", "cleanup", "remove")
        }
        self.context = context

    def call(self, name: str, payload: Any) -> dict[str, Any]:
        if name != "validate":  # Validate receives the execution input as it is
            payload = {**payload, "execution": EXECUTION}
        result: dict[str, Any] = self.handlers[name].lambda_handler(payload, self.context)
        json.dumps(result)  # results must be JSON (they travel through Step Functions)
        return result

    def run(self, execution_input: Any) -> dict[str, Any]:
        validated = self.call("validate", execution_input)
        if validated["outcome"] != "PROCESS":
            return {"validated": validated}
        resized = self.call("resize", {"source": validated["source"], "image": validated["image"]})
        marked = self.call("watermark", {"source": validated["source"], "renditions": resized["renditions"]})
        stored = self.call(
            "store", {"source": validated["source"], "image": resized["image"], "outputs": marked["outputs"]}
        )
        notified = self.call(
            "notify",
            {
                "source": validated["source"],
                "image": resized["image"],
                "stored": stored,
                "durations": {k: v["elapsed_ms"] for k, v in (("validate", validated), ("store", stored))},
                "started": "2026-01-01T00:00:00Z",
            },
        )
        return {"validated": validated, "resized": resized, "watermarked": marked, "stored": stored, **notified}


@pytest.fixture
def chain(load_handler: Callable[..., ModuleType], lambda_context: FakeLambdaContext) -> Chain:
    return Chain(load_handler, lambda_context)


def s3_event(cloud: Cloud, key: str, encoded: bool = True, detail_type: str = "Object Created") -> dict[str, Any]:
    """The EventBridge event S3 sends for the key's current version, with the key raw or form-urlencoded."""
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/") if encoded else key, "sequencer": "0A"}
    if detail_type == "Object Created":
        head = cloud.s3.head_object(Bucket=cloud.source_bucket, Key=key)
        obj.update({"etag": head["ETag"].strip('"'), "version-id": head["VersionId"], "size": head["ContentLength"]})
    return {
        "version": "0",
        "id": "7e4b2d3c-0000-4000-8000-000000000000",
        "detail-type": detail_type,
        "source": "aws.s3",
        "detail": {"bucket": {"name": cloud.source_bucket}, "object": obj},
    }


def rendition(source: dict[str, Any], stem: str, width: int, ext: str = "jpg") -> str:
    return keys.rendition_key(stem, source["revision"], width, ext)


@pytest.mark.parametrize(
    "name",
    ["photo.jpg", "my holiday photo.jpg", "a+b=c.jpg", "café ☕ 東京.jpg", "100% real (1).jpg", "deep/dir/x.jpg"],
)
def test_pipeline_stores_renditions_and_notifies_for_exact_keys(cloud: Cloud, chain: Chain, name: str) -> None:
    key = cloud.upload_prefix + name
    body = photo()
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=body)

    result = chain.run(s3_event(cloud, key))

    source = result["validated"]["source"]
    assert source["key"] == key
    assert (
        source["revision"]
        == source["version_id"]
        == cloud.s3.head_object(Bucket=cloud.source_bucket, Key=key)["VersionId"]
    )
    stem = name
    expected = [rendition(source, stem, w) for w in (1600, 1024, 320)] + [f"{stem}/manifest.json"]
    assert cloud.keys(cloud.destination_bucket) == sorted(expected)
    for width in (1600, 1024, 320):
        obj = cloud.s3.get_object(Bucket=cloud.destination_bucket, Key=rendition(source, stem, width))
        assert obj["ContentType"] == "image/jpeg"
        assert "max-age" in obj["CacheControl"]
        assert obj["Metadata"]["source-etag"] == result["validated"]["source"]["etag"]
        with Image.open(io.BytesIO(obj["Body"].read())) as img:
            assert img.format == "JPEG"
            assert img.width == width
            assert img.height == round(1200 * width / 1600)
    manifest = json.loads(
        cloud.s3.get_object(Bucket=cloud.destination_bucket, Key=f"{stem}/manifest.json")["Body"].read()
    )
    assert manifest["source"]["key"] == key
    assert [r["width"] for r in manifest["renditions"]] == [1600, 1024, 320]
    assert cloud.keys(cloud.staging_bucket) == [], "staging must be cleared"
    assert cloud.s3.get_object(Bucket=cloud.source_bucket, Key=key)["Body"].read() == body, "source untouched"

    [note] = cloud.messages()
    assert note["attributes"]["status"] == "SUCCEEDED"
    assert note["attributes"]["format"] == "jpeg"
    assert note["message"]["source"]["key"] == key
    assert note["message"]["execution"] == EXECUTION
    assert note["message"]["bytes_in"] == len(body)
    assert note["message"]["bytes_out"] == sum(r["bytes"] for r in manifest["renditions"])
    assert {r["key"] for r in note["message"]["renditions"]} == set(expected) - {f"{stem}/manifest.json"}
    assert set(note["message"]["durations_ms"]) >= {"validate", "store", "total"}
    assert result["message_id"]


@pytest.mark.parametrize("encoded", [True, False])
@pytest.mark.parametrize("name", ["a b.jpg", "a+b.jpg", "50%25 off.jpg", "50% off.jpg", "café.jpg"])
def test_event_keys_resolve_whether_raw_or_form_urlencoded(
    cloud: Cloud, chain: Chain, name: str, encoded: bool
) -> None:
    key = cloud.upload_prefix + name
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(64, 48))
    result = chain.call("validate", s3_event(cloud, key, encoded))
    assert result["source"]["key"] == key


def test_a_raw_event_key_wins_over_its_decoded_reading(cloud: Cloud, chain: Chain) -> None:
    raw, decoded = cloud.upload_prefix + "a+b.jpg", cloud.upload_prefix + "a b.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=raw, Body=photo(64, 48))
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=decoded, Body=photo(80, 48))
    event = s3_event(cloud, raw, encoded=False)
    result = chain.call("validate", event)
    assert result["source"]["key"] == raw


def test_manual_input_takes_the_key_verbatim(cloud: Cloud, chain: Chain) -> None:
    key = cloud.upload_prefix + "plus+sign and space.png"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(400, 300, "PNG"))
    result = chain.call("validate", {"bucket": cloud.source_bucket, "key": key})
    assert result["source"]["key"] == key
    assert result["image"]["format"] == "PNG"
    assert (result["image"]["width"], result["image"]["height"]) == (400, 300)


def test_format_is_sniffed_from_content_not_extension(cloud: Cloud, chain: Chain) -> None:
    key = cloud.upload_prefix + "really-a-webp.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(700, 500, "WEBP"))
    result = chain.run(s3_event(cloud, key))
    assert result["validated"]["image"]["format"] == "WEBP"
    assert rendition(result["validated"]["source"], "really-a-webp.jpg", 700) in cloud.keys(cloud.destination_bucket)


@pytest.mark.parametrize(
    ("body", "error", "overrides"),
    [
        (b"", errors.EmptyObject, {}),
        (b"just some text, named like a photo\n" * 20, errors.UnsupportedFormat, {}),
        (b"%PDF-1.7\n" + b"0" * 400, errors.UnsupportedFormat, {}),
        (None, errors.ObjectTooLarge, {"MAX_UPLOAD_BYTES": "1000"}),
        (None, errors.TooManyPixels, {"MAX_PIXELS": "10000"}),
        ("truncated", errors.CorruptImage, {}),
    ],
)
def test_validate_rejects_with_named_errors(
    cloud: Cloud,
    load_handler: Callable[..., ModuleType],
    lambda_context: FakeLambdaContext,
    body: bytes | str | None,
    error: type[Exception],
    overrides: dict[str, str],
) -> None:
    data = photo(800, 600)
    if body is None:
        body = data
    elif body == "truncated":
        body = data[: len(data) // 2]
    key = cloud.upload_prefix + "bad.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=body)
    handler = load_handler("validate", **overrides)
    result = handler.lambda_handler(s3_event(cloud, key), lambda_context)
    # A rejection is Validate's answer (the Route state sends it to the failure branch), named like an error.
    assert result["outcome"] == "REJECTED"
    assert result["error"]["Error"] == error.__name__
    assert result["error"]["Cause"]
    assert result["source"]["key"] == key


def test_validate_rejects_missing_and_foreign_keys(
    cloud: Cloud, load_handler: Callable[..., ModuleType], lambda_context: FakeLambdaContext
) -> None:
    handler = load_handler("validate")

    def rejection(execution_input: Any) -> tuple[str, str]:
        result = handler.lambda_handler(execution_input, lambda_context)
        assert result["outcome"] == "REJECTED"
        return result["error"]["Error"], result["error"]["Cause"]

    missing = {"bucket": cloud.source_bucket, "key": cloud.upload_prefix + "gone.jpg"}
    assert rejection(missing)[0] == "SourceMissing"
    error, cause = rejection({"bucket": cloud.source_bucket, "key": "elsewhere/x.jpg"})
    assert error == "InvalidInput"
    assert "outside the upload prefix" in cause
    assert rejection({"execution": EXECUTION})[0] == "InvalidInput"
    assert rejection(["not", "an", "object"])[0] == "InvalidInput"


def test_a_source_replaced_after_validation_is_read_at_its_pinned_version_and_superseded(
    cloud: Cloud, chain: Chain
) -> None:
    key = cloud.upload_prefix + "replaced.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(800, 600))
    validated = chain.call("validate", {"bucket": cloud.source_bucket, "key": key})
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(900, 600))
    resized = chain.call("resize", {"source": validated["source"], "image": validated["image"]})
    assert resized["renditions"][0]["width"] == 800, "the pinned version is read, not the newer one"
    marked = chain.call("watermark", {"source": validated["source"], "renditions": resized["renditions"]})
    stored = chain.call(
        "store", {"source": validated["source"], "image": resized["image"], "outputs": marked["outputs"]}
    )
    assert stored["outcome"] == "SUPERSEDED"
    assert cloud.keys(cloud.destination_bucket) == [], "a superseded revision leaves nothing behind"
    assert cloud.keys(cloud.staging_bucket) == []
    notified = chain.call("notify", {"source": validated["source"], "image": resized["image"], "stored": stored})
    assert notified == {"outcome": "SUPERSEDED", "message_id": None, "elapsed_ms": notified["elapsed_ms"]}
    assert cloud.messages() == []


def test_store_is_idempotent_for_the_same_revision(cloud: Cloud, chain: Chain) -> None:
    key = cloud.upload_prefix + "twice.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(800, 600))
    first = chain.run(s3_event(cloud, key))
    before = {
        k: cloud.s3.head_object(Bucket=cloud.destination_bucket, Key=k)["ETag"]
        for k in cloud.keys(cloud.destination_bucket)
    }
    # A retried Store (e.g. its response was lost) after staging was already cleared.
    again = chain.call(
        "store",
        {
            "source": first["validated"]["source"],
            "image": first["resized"]["image"],
            "outputs": first["watermarked"]["outputs"],
        },
    )
    assert again["outcome"] == "UNCHANGED"
    assert again["renditions"] == first["stored"]["renditions"]
    after = {
        k: cloud.s3.head_object(Bucket=cloud.destination_bucket, Key=k)["ETag"]
        for k in cloud.keys(cloud.destination_bucket)
    }
    assert after == before


def test_no_handler_writes_to_the_source_bucket(cloud: Cloud, chain: Chain) -> None:
    key = cloud.upload_prefix + "loop.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(700, 500))
    chain.run(s3_event(cloud, key))
    assert cloud.keys(cloud.source_bucket) == [key]


def test_watermark_and_formats_follow_configuration(
    cloud: Cloud, load_handler: Callable[..., ModuleType], lambda_context: FakeLambdaContext
) -> None:
    chain = Chain(load_handler, lambda_context, OUTPUT_FORMATS="webp,jpeg", WATERMARK_MIN_WIDTH="1000")
    key = cloud.upload_prefix + "formats.png"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(1200, 800, "PNG", "RGBA"))
    result = chain.run(s3_event(cloud, key))
    source = result["validated"]["source"]
    outputs = result["watermarked"]["outputs"]
    assert {(o["width"], o["format"]) for o in outputs} == {(w, f) for w in (1200, 1024, 320) for f in ("webp", "jpeg")}
    assert {o["width"]: o["watermarked"] for o in outputs} == {1200: True, 1024: True, 320: False}
    webp = cloud.s3.get_object(Bucket=cloud.destination_bucket, Key=rendition(source, "formats.png", 1200, "webp"))
    assert webp["ContentType"] == "image/webp"
    with Image.open(io.BytesIO(webp["Body"].read())) as img:
        assert img.format == "WEBP"
        assert img.mode == "RGBA", "WebP keeps the alpha channel"
        assert img.getchannel("A").getpixel((2, 2)) == 0, "the transparent corner stays transparent"
    jpeg_key = rendition(source, "formats.png", 1200)
    jpeg = cloud.s3.get_object(Bucket=cloud.destination_bucket, Key=jpeg_key)["Body"].read()
    with Image.open(io.BytesIO(jpeg)) as img:
        assert img.mode == "RGB"
        corner: Any = img.crop((0, 0, 5, 5)).getextrema()
        assert all(low > 240 for low, _high in corner), "JPEG flattens transparency onto white"


def _failed_in_store(cloud: Cloud, chain: Chain, key: str) -> dict[str, Any]:
    """The state of an execution whose Store copied one rendition, then failed before the manifest."""
    validated = chain.call("validate", {"bucket": cloud.source_bucket, "key": key})
    resized = chain.call("resize", {"source": validated["source"], "image": validated["image"]})
    marked = chain.call("watermark", {"source": validated["source"], "renditions": resized["renditions"]})
    assert cloud.keys(cloud.staging_bucket), "the steps left intermediates in staging"
    first = marked["outputs"][0]
    cloud.s3.copy_object(
        CopySource={"Bucket": first["bucket"], "Key": first["key"]},
        Bucket=cloud.destination_bucket,
        Key=rendition(validated["source"], keys.stem(key, cloud.upload_prefix), first["width"]),
    )
    cause = json.dumps(
        {
            "errorMessage": "PUT s3://x/y: 503",
            "errorType": "TransientError",
            "stackTrace": ['  File "/var/task/app.py"'],
        }
    )
    return {
        **validated,
        "resized": resized,
        "watermarked": marked,
        "error": {"Error": "TransientError", "Cause": cause},
    }


def test_cleanup_removes_what_the_failed_execution_wrote_and_reports_for_people(
    cloud: Cloud, chain: Chain, load_handler: Callable[..., ModuleType], lambda_context: FakeLambdaContext
) -> None:
    key = cloud.upload_prefix + "half-done.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(800, 600))
    # Another upload whose key extends this one's: its outputs must survive (no folder is listed).
    other = cloud.upload_prefix + "half-done.jpg/sub.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=other, Body=photo(640, 480))
    chain.run(s3_event(cloud, other))
    survivors = cloud.keys(cloud.destination_bucket)
    state = _failed_in_store(cloud, chain, key)

    result = load_handler("cleanup").lambda_handler({"state": state, "execution": EXECUTION}, lambda_context)

    assert cloud.keys(cloud.staging_bucket) == []
    assert cloud.keys(cloud.destination_bucket) == survivors
    assert result["outcome"] == "FAILED"
    assert result["error"] == {"Error": "TransientError", "Cause": "PUT s3://x/y: 503"}
    message = result["message"]
    assert message == {
        "status": "FAILED",
        "error": "TransientError",
        "reason": "PUT s3://x/y: 503",
        "step": "store",
        "source": {k: state["source"][k] for k in ("bucket", "key", "version_id", "revision")},
        "execution": EXECUTION,
    }
    assert "stackTrace" not in json.dumps(result)
    assert "/var/task" not in json.dumps(result)


def test_a_failed_current_revision_takes_the_older_revisions_outputs_with_it(
    cloud: Cloud, chain: Chain, load_handler: Callable[..., ModuleType], lambda_context: FakeLambdaContext
) -> None:
    key = cloud.upload_prefix + "replaced-by-broken.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(800, 600))
    chain.run(s3_event(cloud, key))
    assert cloud.keys(cloud.destination_bucket)
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(800, 600)[:3000])
    rejected = chain.call("validate", s3_event(cloud, key))
    assert rejected["outcome"] == "REJECTED"
    result = load_handler("cleanup").lambda_handler({"state": rejected, "execution": EXECUTION}, lambda_context)
    assert result["outcome"] == "FAILED"
    assert result["message"]["step"] == "validate"
    assert result["error"]["Error"] == "CorruptImage"
    assert cloud.keys(cloud.destination_bucket) == [], "the destination never shows a replaced version"


def test_cleanup_keeps_a_completely_stored_result_and_ignores_unvalidated_failures(
    cloud: Cloud, chain: Chain, load_handler: Callable[..., ModuleType], lambda_context: FakeLambdaContext
) -> None:
    key = cloud.upload_prefix + "complete.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(700, 500))
    done = chain.run(s3_event(cloud, key))
    stored = cloud.keys(cloud.destination_bucket)
    cleanup = load_handler("cleanup")
    # E.g. Notify failed after Store completed: the renditions and the manifest stay.
    state = {
        **done["validated"],
        "resized": done["resized"],
        "watermarked": done["watermarked"],
        "stored": done["stored"],
    }
    state["error"] = {"Error": "TransientError", "Cause": "SNS throttled"}
    result = cleanup.lambda_handler({"state": state, "execution": EXECUTION}, lambda_context)
    assert (result["outcome"], result["message"]["step"]) == ("FAILED", "notify")
    assert cloud.keys(cloud.destination_bucket) == stored
    # Validate did not answer: nothing was written, nothing is touched.
    crashed = {"error": {"Error": "Sandbox.Timedout", "Cause": "Task timed out"}, "step": "validate"}
    result = cleanup.lambda_handler({"state": crashed, "execution": EXECUTION}, lambda_context)
    assert result["message"]["source"] is None
    assert cloud.keys(cloud.destination_bucket) == stored


def test_a_failure_of_a_replaced_revision_is_superseded_and_touches_nothing(
    cloud: Cloud, chain: Chain, load_handler: Callable[..., ModuleType], lambda_context: FakeLambdaContext
) -> None:
    key = cloud.upload_prefix + "moot.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(800, 600))
    state = _failed_in_store(cloud, chain, key)
    orphan = rendition(state["source"], "moot.jpg", 800)
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(640, 480))
    newer = chain.run(s3_event(cloud, key))["validated"]["source"]
    assert orphan in cloud.keys(cloud.destination_bucket)
    result = load_handler("cleanup").lambda_handler({"state": state, "execution": EXECUTION}, lambda_context)
    assert result["outcome"] == "SUPERSEDED"
    assert cloud.keys(cloud.destination_bucket) == sorted(
        [rendition(newer, "moot.jpg", w) for w in (640, 320)] + ["moot.jpg/manifest.json"]
    ), "the newer revision's outputs stay; the failed run's own uncommitted rendition goes"


def test_a_duplicate_execution_stores_nothing_new_and_notifies_once(cloud: Cloud, chain: Chain) -> None:
    """The same Object Created event delivered twice runs the pipeline twice: one set of outputs, one message."""
    key = cloud.upload_prefix + "twice delivered.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(900, 600))
    first = chain.run(s3_event(cloud, key))
    outputs = {
        k: cloud.s3.head_object(Bucket=cloud.destination_bucket, Key=k)["ETag"]
        for k in cloud.keys(cloud.destination_bucket)
    }

    second = chain.run(s3_event(cloud, key))

    assert second["stored"]["outcome"] == "UNCHANGED"
    assert {
        k: cloud.s3.head_object(Bucket=cloud.destination_bucket, Key=k)["ETag"]
        for k in cloud.keys(cloud.destination_bucket)
    } == outputs
    assert second["message_id"] == first["message_id"], "the first notification's result is replayed"
    assert len(cloud.messages()) == 1


def test_earlier_content_uploaded_again_is_a_new_revision_and_notified_again(cloud: Cloud, chain: Chain) -> None:
    """A, then B, then A again: three uploads, three messages, and the destination holds the last A only."""
    key = cloud.upload_prefix + "a-b-a.jpg"
    a, b = photo(900, 600), photo(800, 600)
    runs = []
    for body in (a, b, a):
        cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=body)
        runs.append(chain.run(s3_event(cloud, key)))
    assert len({run["message_id"] for run in runs}) == 3
    messages = cloud.messages()
    assert [m["message"]["source"]["revision"] for m in messages] == [
        r["validated"]["source"]["revision"] for r in runs
    ]
    last = runs[-1]["validated"]["source"]
    assert cloud.keys(cloud.destination_bucket) == sorted(
        [rendition(last, "a-b-a.jpg", w) for w in (900, 320)] + ["a-b-a.jpg/manifest.json"]
    )


def test_a_deleted_source_loses_its_outputs_by_exact_key(
    cloud: Cloud, chain: Chain, load_handler: Callable[..., ModuleType], lambda_context: FakeLambdaContext
) -> None:
    key, longer = cloud.upload_prefix + "gone.jpg", cloud.upload_prefix + "gone.jpg/320w.jpg"
    for k in (key, longer):
        cloud.s3.put_object(Bucket=cloud.source_bucket, Key=k, Body=photo(700, 500))
        chain.run(s3_event(cloud, k))
    kept = [k for k in cloud.keys(cloud.destination_bucket) if k.startswith("gone.jpg/320w.jpg/")]
    assert len(kept) == 3
    cloud.messages()
    cloud.s3.delete_object(Bucket=cloud.source_bucket, Key=key)

    decided = chain.call("validate", s3_event(cloud, key, detail_type="Object Deleted"))
    assert decided["outcome"] == "DELETED"
    removed = chain.call("remove", {"source": decided["source"]})

    assert removed["outcome"] == "DELETED"
    assert cloud.keys(cloud.destination_bucket) == kept
    [message] = cloud.messages()
    assert message["attributes"]["status"] == "DELETED"
    assert message["message"]["removed"][0] == "gone.jpg/manifest.json"
    assert len(message["message"]["removed"]) == 3
    again = chain.call("remove", {"source": decided["source"]})
    assert again["message_id"] == removed["message_id"], "a duplicate deletion event publishes nothing new"


def test_inputs_naming_another_bucket_or_a_malformed_name_are_rejected_not_retried(cloud: Cloud, chain: Chain) -> None:
    key = cloud.upload_prefix + "t1/photo.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(700, 500))
    chain.run(s3_event(cloud, key))
    before = cloud.keys(cloud.destination_bucket)
    for bucket in ("evil-bucket", "bad/name", cloud.destination_bucket):
        result = chain.call("validate", {"bucket": bucket, "key": key})
        assert (result["outcome"], result["error"]["Error"], result["source"]) == ("REJECTED", "InvalidInput", None)
    assert cloud.keys(cloud.destination_bucket) == before


@pytest.mark.parametrize("encoded", [True, False])
def test_a_deleted_key_loses_its_outputs_whichever_way_the_event_writes_it(
    cloud: Cloud, chain: Chain, encoded: bool
) -> None:
    key = cloud.upload_prefix + "a+b c%.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(700, 500))
    chain.run(s3_event(cloud, key, encoded))
    assert len(cloud.keys(cloud.destination_bucket)) == 3
    cloud.s3.delete_object(Bucket=cloud.source_bucket, Key=key)
    decided = chain.call("validate", s3_event(cloud, key, encoded, detail_type="Object Deleted"))
    assert decided["outcome"] == "DELETED"
    removed = chain.call("remove", {"source": decided["source"]})
    assert removed["outcome"] == "DELETED"
    assert cloud.keys(cloud.destination_bucket) == []
    assert len(removed["removed"]) == 3


def test_an_animated_upload_is_processed_from_its_first_frame_and_its_frames_counted(
    cloud: Cloud, chain: Chain
) -> None:
    frames = [Image.new("RGB", (640, 480), (40 * i, 90, 160)) for i in range(5)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    key = cloud.upload_prefix + "animated.gif"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=buf.getvalue())
    result = chain.run(s3_event(cloud, key))
    assert result["stored"]["outcome"] == "STORED"
    manifest = json.loads(
        cloud.s3.get_object(Bucket=cloud.destination_bucket, Key="animated.gif/manifest.json")["Body"].read()
    )
    assert manifest["image"]["frames"] == 5
    first = cloud.s3.get_object(Bucket=cloud.destination_bucket, Key=manifest["renditions"][0]["key"])["Body"].read()
    with Image.open(io.BytesIO(first)) as img:
        assert img.format == "JPEG"
        assert img.size == (640, 480)
        pixel: Any = img.convert("RGB").getpixel((10, 10))
        assert pixel[0] < 20, "the first frame (red 0), not a later one"


@pytest.mark.parametrize(
    ("name", "body", "image"),
    [
        pytest.param(
            "bitmap.bmp",
            photo(640, 480, "BMP"),
            {"format": "BMP", "width": 640, "height": 480, "frames": 1, "orientation": 1},
            id="bmp",
        ),
        pytest.param(
            "phone.heic",
            images.oriented_jpeg(6, (640, 480), fmt="HEIF"),
            {"format": "HEIF", "width": 640, "height": 480, "frames": 1, "orientation": 1},
            id="heic-turned-by-its-transformations",
        ),
        pytest.param(
            "burst.heic",
            images.encode(images.photo((640, 480)), "HEIF", save_all=True, append_images=[images.photo((320, 240))]),
            {"format": "HEIF", "width": 640, "height": 480, "frames": 2, "orientation": 1},
            id="heic-of-two-images",
        ),
    ],
)
def test_bmp_and_heic_uploads_are_processed(
    cloud: Cloud, chain: Chain, name: str, body: bytes, image: dict[str, Any]
) -> None:
    key = cloud.upload_prefix + name
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=body)
    result = chain.run(s3_event(cloud, key))
    assert {k: result["validated"]["image"][k] for k in image} == image
    assert result["stored"]["outcome"] == "STORED"
    manifest = json.loads(
        cloud.s3.get_object(Bucket=cloud.destination_bucket, Key=f"{name}/manifest.json")["Body"].read()
    )
    assert manifest["image"]["frames"] == image["frames"]
    assert [(r["width"], r["height"]) for r in manifest["renditions"]] == [(640, 480), (320, 240)]
    largest = cloud.s3.get_object(Bucket=cloud.destination_bucket, Key=manifest["renditions"][0]["key"])["Body"]
    with Image.open(io.BytesIO(largest.read())) as img:
        assert (img.format, img.size) == ("JPEG", (640, 480))
        if name == "phone.heic":  # the markers image, upright: red top-left, blue top-right
            top_left: Any = img.convert("RGB").getpixel((8, 8))
            top_right: Any = img.convert("RGB").getpixel((631, 8))
            assert top_left[0] > 180 > top_left[2]
            assert top_right[2] > 180 > top_right[0]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(photo(400, 300, "BMP")[:-100], errors.CorruptImage, id="bmp-truncated"),
        pytest.param(images.encode(images.photo((400, 300)), "HEIF")[:-100], errors.CorruptImage, id="heic-truncated"),
        pytest.param(images.ftyp(b"heic", [b"mif1", b"heic"]) + bytes(500), errors.CorruptImage, id="heic-no-meta"),
        pytest.param(
            images.ftyp(b"mif1", [b"mif1", b"miaf"]) + bytes(500), errors.UnsupportedFormat, id="heif-no-codec"
        ),
    ],
)
def test_validate_rejects_damaged_bmp_and_heic(
    cloud: Cloud,
    load_handler: Callable[..., ModuleType],
    lambda_context: FakeLambdaContext,
    body: bytes,
    error: type[Exception],
) -> None:
    key = cloud.upload_prefix + "damaged.heic"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=body)
    result = load_handler("validate").lambda_handler(s3_event(cloud, key), lambda_context)
    assert (result["outcome"], result["error"]["Error"]) == ("REJECTED", error.__name__)
    assert result["error"]["Cause"]
