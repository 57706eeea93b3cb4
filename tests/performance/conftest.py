"""The packaged functions, laid out and compiled once for every test here (``imgpipe_bench.coldstart.package``)."""

from __future__ import annotations

import pytest

from imgpipe_bench import coldstart


@pytest.fixture(scope="session")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, coldstart.Layout]:
    return coldstart.package(tmp_path_factory.mktemp("build"))
