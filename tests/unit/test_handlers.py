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

from pipeline import errors
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
    """Runs the handlers in order, passing what the ASL's Parameters/ResultSelector pass."""

    def __init__(self, load: Callable[..., ModuleType], context: FakeLambdaContext, **overrides: str) -> None:
        self.handlers = {
            name: load(name, **overrides) for name in ("validate", "resize", "watermark", "store", "notify")
        }
        self.context = context

    def call(self, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.handlers[name].lambda_handler({**payload, "execution": EXECUTION}, self.context)
        json.dumps(result)  # results must be JSON (they travel through Step Functions)
        return result

    def run(self, upload: dict[str, Any]) -> dict[str, Any]:
        validated = self.call("validate", {"upload": upload})
        resized = self.call("resize", {"source": validated["source"], "image": validated["image"]})
        marked = self.call("watermark", {"source": validated["source"], "renditions": resized["renditions"]})
        stored = self.call(
            "store", {"source": validated["source"], "image": validated["image"], "outputs": marked["outputs"]}
        )
        notified = self.call(
            "notify",
            {
                "source": validated["source"],
                "image": validated["image"],
                "stored": stored,
                "durations": {k: v["elapsed_ms"] for k, v in (("validate", validated), ("store", stored))},
                "started": "2026-01-01T00:00:00Z",
            },
        )
        return {"validated": validated, "resized": resized, "watermarked": marked, "stored": stored, **notified}


@pytest.fixture
def chain(load_handler: Callable[..., ModuleType], lambda_context: FakeLambdaContext) -> Chain:
    return Chain(load_handler, lambda_context)


def event_upload(cloud: Cloud, key: str, encoded: bool = True) -> dict[str, Any]:
    """The upload as the state machine's 'From S3 Event' state builds it, with the key raw or form-urlencoded."""
    return {
        "bucket": cloud.source_bucket,
        "key": quote_plus(key, safe="/") if encoded else key,
        "key_encoding": "event",
    }


@pytest.mark.parametrize(
    "name",
    ["photo.jpg", "my holiday photo.jpg", "a+b=c.jpg", "café ☕ 東京.jpg", "100% real (1).jpg", "deep/dir/x.jpg"],
)
def test_pipeline_stores_renditions_and_notifies_for_exact_keys(cloud: Cloud, chain: Chain, name: str) -> None:
    key = cloud.upload_prefix + name
    body = photo()
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=body)

    result = chain.run(event_upload(cloud, key))

    assert result["validated"]["source"]["key"] == key
    stem = name
    expected = [f"{stem}/1024w.jpg", f"{stem}/1600w.jpg", f"{stem}/320w.jpg", f"{stem}/manifest.json"]
    assert cloud.keys(cloud.destination_bucket) == sorted(expected)
    for width in (1600, 1024, 320):
        obj = cloud.s3.get_object(Bucket=cloud.destination_bucket, Key=f"{stem}/{width}w.jpg")
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
    result = chain.call("validate", {"upload": event_upload(cloud, key, encoded)})
    assert result["source"]["key"] == key


def test_a_raw_event_key_wins_over_its_decoded_reading(cloud: Cloud, chain: Chain) -> None:
    raw, decoded = cloud.upload_prefix + "a+b.jpg", cloud.upload_prefix + "a b.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=raw, Body=photo(64, 48))
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=decoded, Body=photo(80, 48))
    result = chain.call("validate", {"upload": {"bucket": cloud.source_bucket, "key": raw, "key_encoding": "event"}})
    assert result["source"]["key"] == raw


def test_manual_input_takes_the_key_verbatim(cloud: Cloud, chain: Chain) -> None:
    key = cloud.upload_prefix + "plus+sign and space.png"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(400, 300, "PNG"))
    result = chain.call("validate", {"upload": {"bucket": cloud.source_bucket, "key": key, "key_encoding": "none"}})
    assert result["source"]["key"] == key
    assert result["image"]["format"] == "PNG"
    assert (result["image"]["width"], result["image"]["height"]) == (400, 300)


def test_format_is_sniffed_from_content_not_extension(cloud: Cloud, chain: Chain) -> None:
    key = cloud.upload_prefix + "really-a-webp.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(700, 500, "WEBP"))
    result = chain.run(event_upload(cloud, key))
    assert result["validated"]["image"]["format"] == "WEBP"
    assert "really-a-webp.jpg/700w.jpg" in cloud.keys(cloud.destination_bucket)


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
    with pytest.raises(error) as caught:
        handler.lambda_handler({"upload": event_upload(cloud, key), "execution": EXECUTION}, lambda_context)
    # The Lambda runtime reports the class name as errorType; the state machine matches on it.
    assert type(caught.value).__name__ == error.__name__
    assert str(caught.value)


def test_validate_rejects_missing_and_foreign_keys(
    cloud: Cloud, load_handler: Callable[..., ModuleType], lambda_context: FakeLambdaContext
) -> None:
    handler = load_handler("validate")
    missing = {"bucket": cloud.source_bucket, "key": cloud.upload_prefix + "gone.jpg"}
    with pytest.raises(errors.SourceMissing):
        handler.lambda_handler({"upload": missing, "execution": EXECUTION}, lambda_context)
    outside = {"bucket": cloud.source_bucket, "key": "elsewhere/x.jpg"}
    with pytest.raises(errors.InvalidInput, match="outside the upload prefix"):
        handler.lambda_handler({"upload": outside, "execution": EXECUTION}, lambda_context)
    with pytest.raises(errors.InvalidInput):
        handler.lambda_handler({"execution": EXECUTION}, lambda_context)


def test_resize_refuses_a_source_replaced_after_validation(cloud: Cloud, chain: Chain) -> None:
    key = cloud.upload_prefix + "replaced.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(800, 600))
    validated = chain.call("validate", {"upload": {"bucket": cloud.source_bucket, "key": key}})
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(900, 600))
    with pytest.raises(errors.SourceChanged):
        chain.call("resize", {"source": validated["source"], "image": validated["image"]})


def test_store_is_idempotent_for_the_same_source_and_etag(cloud: Cloud, chain: Chain) -> None:
    key = cloud.upload_prefix + "twice.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(800, 600))
    first = chain.run(event_upload(cloud, key))
    before = {
        k: cloud.s3.head_object(Bucket=cloud.destination_bucket, Key=k)["LastModified"]
        for k in cloud.keys(cloud.destination_bucket)
    }
    # A retried Store (e.g. its response was lost) after staging was already cleared.
    again = chain.call(
        "store",
        {
            "source": first["validated"]["source"],
            "image": first["validated"]["image"],
            "outputs": first["watermarked"]["outputs"],
        },
    )
    assert again["unchanged"] is True
    assert again["renditions"] == first["stored"]["renditions"]
    after = {
        k: cloud.s3.head_object(Bucket=cloud.destination_bucket, Key=k)["LastModified"]
        for k in cloud.keys(cloud.destination_bucket)
    }
    assert after == before


def test_no_handler_writes_to_the_source_bucket(cloud: Cloud, chain: Chain) -> None:
    key = cloud.upload_prefix + "loop.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(700, 500))
    chain.run(event_upload(cloud, key))
    assert cloud.keys(cloud.source_bucket) == [key]


def test_watermark_and_formats_follow_configuration(
    cloud: Cloud, load_handler: Callable[..., ModuleType], lambda_context: FakeLambdaContext
) -> None:
    chain = Chain(load_handler, lambda_context, OUTPUT_FORMATS="webp,jpeg", WATERMARK_MIN_WIDTH="1000")
    key = cloud.upload_prefix + "formats.png"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(1200, 800, "PNG", "RGBA"))
    result = chain.run(event_upload(cloud, key))
    outputs = result["watermarked"]["outputs"]
    assert {(o["width"], o["format"]) for o in outputs} == {(w, f) for w in (1200, 1024, 320) for f in ("webp", "jpeg")}
    assert {o["width"]: o["watermarked"] for o in outputs} == {1200: True, 1024: True, 320: False}
    webp = cloud.s3.get_object(Bucket=cloud.destination_bucket, Key="formats.png/1200w.webp")
    assert webp["ContentType"] == "image/webp"
    with Image.open(io.BytesIO(webp["Body"].read())) as img:
        assert img.format == "WEBP"
        assert img.mode == "RGBA", "WebP keeps the alpha channel"
        assert img.getchannel("A").getpixel((2, 2)) == 0, "the transparent corner stays transparent"
    jpeg = cloud.s3.get_object(Bucket=cloud.destination_bucket, Key="formats.png/1200w.jpg")["Body"].read()
    with Image.open(io.BytesIO(jpeg)) as img:
        assert img.mode == "RGB"
        corner: Any = img.crop((0, 0, 5, 5)).getextrema()
        assert all(low > 240 for low, _high in corner), "JPEG flattens transparency onto white"


def test_cleanup_removes_only_what_the_failed_execution_wrote(
    cloud: Cloud, chain: Chain, load_handler: Callable[..., ModuleType], lambda_context: FakeLambdaContext
) -> None:
    key = cloud.upload_prefix + "half-done.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(800, 600))
    validated = chain.call("validate", {"upload": {"bucket": cloud.source_bucket, "key": key}})
    resized = chain.call("resize", {"source": validated["source"], "image": validated["image"]})
    marked = chain.call("watermark", {"source": validated["source"], "renditions": resized["renditions"]})
    assert cloud.keys(cloud.staging_bucket), "the steps left intermediates in staging"
    # Store failed half way: one rendition copied, no manifest.
    first = marked["outputs"][0]
    stem = "half-done.jpg"
    cloud.s3.copy_object(
        CopySource={"Bucket": first["bucket"], "Key": first["key"]},
        Bucket=cloud.destination_bucket,
        Key=f"{stem}/{first['width']}w.jpg",
        Metadata={"source-etag": validated["source"]["etag"]},
        MetadataDirective="REPLACE",
    )
    # An object of another upload of the same name must survive.
    cloud.s3.put_object(
        Bucket=cloud.destination_bucket, Key=f"{stem}/999w.jpg", Body=b"x", Metadata={"source-etag": "other"}
    )
    state = {"upload": {"bucket": cloud.source_bucket, "key": key}, "validated": validated, "error": {"Error": "X"}}

    result = load_handler("cleanup").lambda_handler({"state": state, "execution": EXECUTION}, lambda_context)

    assert cloud.keys(cloud.staging_bucket) == []
    assert cloud.keys(cloud.destination_bucket) == [f"{stem}/999w.jpg"]
    assert result["staging_deleted"] == len(resized["renditions"]) + len(marked["outputs"])
    assert result["outputs_deleted"] == 1


def test_cleanup_keeps_a_completely_stored_result_and_ignores_unvalidated_failures(
    cloud: Cloud, chain: Chain, load_handler: Callable[..., ModuleType], lambda_context: FakeLambdaContext
) -> None:
    key = cloud.upload_prefix + "complete.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(700, 500))
    done = chain.run(event_upload(cloud, key))
    stored = cloud.keys(cloud.destination_bucket)
    cleanup = load_handler("cleanup")
    # E.g. Notify failed after Store completed: the renditions and the manifest stay.
    state = {"validated": done["validated"], "error": {"Error": "TransientError"}}
    assert cleanup.lambda_handler({"state": state, "execution": EXECUTION}, lambda_context)["outputs_deleted"] == 0
    assert cloud.keys(cloud.destination_bucket) == stored
    # Validate failed: nothing was written, nothing is touched.
    result = cleanup.lambda_handler({"state": {"upload": {"key": "x"}}, "execution": EXECUTION}, lambda_context)
    assert result["staging_deleted"] == result["outputs_deleted"] == 0


def test_a_duplicate_execution_stores_nothing_new_and_notifies_once(cloud: Cloud, chain: Chain) -> None:
    """The same Object Created event delivered twice runs the pipeline twice: one set of outputs, one message."""
    key = cloud.upload_prefix + "twice delivered.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(900, 600))
    first = chain.run(event_upload(cloud, key))
    outputs = {
        k: cloud.s3.head_object(Bucket=cloud.destination_bucket, Key=k)["ETag"]
        for k in cloud.keys(cloud.destination_bucket)
    }

    second = chain.run(event_upload(cloud, key))

    assert second["stored"]["unchanged"] is True
    assert {
        k: cloud.s3.head_object(Bucket=cloud.destination_bucket, Key=k)["ETag"]
        for k in cloud.keys(cloud.destination_bucket)
    } == outputs
    assert second["message_id"] == first["message_id"], "the first notification's result is replayed"
    assert len(cloud.messages()) == 1


def test_new_content_under_the_same_key_is_notified_again(cloud: Cloud, chain: Chain) -> None:
    key = cloud.upload_prefix + "replaced later.jpg"
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(900, 600))
    first = chain.run(event_upload(cloud, key))
    cloud.s3.put_object(Bucket=cloud.source_bucket, Key=key, Body=photo(800, 600))
    second = chain.run(event_upload(cloud, key))
    assert second["message_id"] != first["message_id"]
    assert [m["message"]["source"]["etag"] for m in cloud.messages()] == [
        first["validated"]["source"]["etag"],
        second["validated"]["source"]["etag"],
    ]
