"""Parameter overrides, like ``sam deploy --parameter-overrides``, each on a fresh local cloud."""

from __future__ import annotations

import json
import time

import pytest

from localcloud.cloud import LocalCloud, LocalCloudError
from tests.integration.conftest import deploy, jpeg

pytestmark = pytest.mark.slow


def test_parameter_overrides_reach_the_functions() -> None:
    for deployed in deploy({"MaxUploadBytes": "20000", "RenditionWidths": "300"}):
        big, small = deployed.stack.upload_prefix + "big.jpg", deployed.stack.upload_prefix + "small.jpg"
        deployed.upload(big, jpeg(800, 600))
        deployed.upload(small, jpeg(400, 20))
        assert deployed.execution_for(big)["error"] == "ObjectTooLarge"
        assert deployed.execution_for(small)["status"] == "SUCCEEDED"
        assert deployed.outputs_under("small.jpg") == deployed.expected_outputs(
            "small.jpg", deployed.version_id(small), (300,)
        )
        assert deployed.outputs_under("big.jpg") == []
        [failure] = deployed.messages_for(big)
        assert failure["Message"]["error"] == "ObjectTooLarge"
        assert failure["Message"]["source"]["key"] == big


def test_unknown_parameters_are_refused() -> None:
    with LocalCloud() as cloud, pytest.raises(LocalCloudError, match="NoSuchParameter"):
        cloud.deploy({"NoSuchParameter": "1"})


def test_jwt_auth_without_an_issuer_is_refused() -> None:
    """ApiAuth=JWT needs JwtIssuer (the template's Rules say so on AWS; the local API refuses to start)."""
    with LocalCloud() as cloud, pytest.raises(LocalCloudError, match="no issuer"):
        cloud.deploy({"ApiAuth": "JWT"})


def test_one_local_cloud_per_process() -> None:
    with LocalCloud() as first:
        with pytest.raises(LocalCloudError, match="already running"), LocalCloud():
            pass
        assert first.client("s3").list_buckets()["Buckets"] == [], "a new cloud starts empty"


def test_undeliverable_events_follow_the_retry_policy_then_reach_the_dead_letter_queue() -> None:
    with LocalCloud(time_scale=0.0005) as cloud:
        stack = cloud.deploy()
        cloud.client("stepfunctions").delete_state_machine(stateMachineArn=stack.state_machine_arn)
        key = stack.upload_prefix + "orphan.jpg"
        cloud.client("s3").put_object(Bucket=stack.source_bucket, Key=key, Body=jpeg(100, 80))

        sqs = cloud.client("sqs")
        deadline = time.monotonic() + 60
        messages: list[dict] = []
        while not messages and time.monotonic() < deadline:
            messages = sqs.receive_message(
                QueueUrl=stack.dead_letter_queue_url, MessageAttributeNames=["All"], WaitTimeSeconds=1
            ).get("Messages", [])
        assert messages, "the event must land in the dead-letter queue"
        event = json.loads(messages[0]["Body"])
        assert event["detail"]["object"]["key"] == key
        attributes = {k: v["StringValue"] for k, v in messages[0]["MessageAttributes"].items()}
        assert attributes["TARGET_ARN"] == stack.state_machine_arn
        assert attributes["RULE_ARN"].endswith("ImagePipelineObjectCreated") or ":rule/" in attributes["RULE_ARN"]
        assert attributes["ERROR_CODE"]
        [failure] = cloud.stats.delivery_failures
        assert failure.attempts == 25, "one delivery and the 24 retries of the rule's RetryPolicy"
        assert failure.dead_lettered
