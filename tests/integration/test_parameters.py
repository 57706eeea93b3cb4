"""Parameter overrides, like ``sam deploy --parameter-overrides``, each on a fresh local cloud."""

from __future__ import annotations

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
        assert "small.jpg/300w.jpg" in deployed.keys(deployed.stack.destination_bucket)


def test_unknown_parameters_are_refused() -> None:
    with LocalCloud() as cloud, pytest.raises(LocalCloudError, match="NoSuchParameter"):
        cloud.deploy({"NoSuchParameter": "1"})


def test_one_local_cloud_per_process() -> None:
    with LocalCloud() as first:
        with pytest.raises(LocalCloudError, match="already running"), LocalCloud():
            pass
        assert first.client("s3").list_buckets()["Buckets"] == [], "a new cloud starts empty"
