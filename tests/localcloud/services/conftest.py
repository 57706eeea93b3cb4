"""The emulated services against moto itself: each gap is still there, and each patch bridges it.

For every gap a service's patches close (``localcloud.emulator.gaps()``) there are two tests, in the
test module of that service:

* ``test_gap_<name>`` runs *unpatched* moto in-process and asserts the broken behaviour exactly
  as the pinned moto shows it. These are the upgrade alarm: when one fails after a moto upgrade,
  moto changed (probably fixed) the gap, and the patch it names is to be dropped or revisited.
* ``test_patched_<name>`` applies the patches with a fake invoker and deliverer and asserts the
  corrected behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from localcloud import emulator, patching
from tests.localcloud.services.helpers import Clients, FakeRuntime, make_clients, moto_config


@pytest.fixture(autouse=True)
def _no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's Lambda talks to Docker: point it at a daemon that is never there, whatever the host has."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/moto-patches-test/docker.sock")


@pytest.fixture
def unpatched() -> Iterator[Clients]:
    """moto as released, executing state machines in-process."""
    assert not patching.applied(), "the patches were left applied by an earlier test"
    with mock_aws(config=moto_config()):
        yield make_clients()
    assert not patching.applied()


@pytest.fixture
def runtime() -> FakeRuntime:
    return FakeRuntime()


@pytest.fixture
def patched(runtime: FakeRuntime) -> Iterator[Clients]:
    """moto with every patch applied (time scaled by 0.01), in-process."""
    assert not patching.applied(), "the patches were left applied by an earlier test"
    with mock_aws(config=moto_config()):
        emulator.apply(invoker=runtime, deliverer=runtime, time_scale=0.01)
        try:
            yield make_clients()
        finally:
            emulator.remove()
