"""What a packaged function reads at init besides its code: botocore's trimmed data, never botocore's own.

A client on botocore's bundled data parses the whole service model (S3's is 1.4 MB of JSON), all of
``endpoints.json`` (1.2 MB) and lists the ~450 service directories; the layer ships that data trimmed
to the functions' operations (``layers/shared/botocore_models.py``). Which files init opens does not
depend on the machine, so it is asserted exactly, like the imports in test_cold_start.py.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import botocore
import pytest

from imgpipe_bench import coldstart
from localcloud import sam

ROOT = coldstart.ROOT
FUNCTIONS = coldstart.functions()
#: Lists the files and directories ``import app`` opens or lists, and the loader its clients got.
READS = """\
import json, sys
seen = []
sys.addaudithook(lambda event, args: seen.append(str(args[0])) if event in ("open", "os.listdir") else None)
import app
from pipeline import storage
loader = storage.session().get_component("data_loader")
print(json.dumps({"paths": seen, "loader": type(loader).__name__, "search_paths": loader.search_paths}))
"""


@pytest.fixture(scope="module")
def reads(layouts: dict[str, coldstart.Layout]) -> dict[str, dict[str, object]]:
    found = {}
    for name, layout in layouts.items():
        done = subprocess.run(
            [sys.executable, "-X", "frozen_modules=on", "-c", READS],
            cwd=layout.task,
            env=coldstart.environment(layout),
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        found[name] = json.loads(done.stdout.splitlines()[-1])
    return found


@pytest.mark.parametrize("function", FUNCTIONS)
def test_init_reads_the_trimmed_data_and_none_of_botocores_own(
    function: str, layouts: dict[str, coldstart.Layout], reads: dict[str, dict[str, object]]
) -> None:
    data = layouts[function].layer / "pipeline" / "botocore_data"
    found = reads[function]
    assert found["loader"] == "TrimmedDataLoader"
    assert found["search_paths"] == [str(data)]
    paths = [str(p) for p in found["paths"]]  # type: ignore[attr-defined]
    builtin = str(Path(botocore.__file__).parent / "data")
    assert [p for p in paths if p.startswith(builtin)] == []
    assert any(p.startswith(str(data / "s3")) for p in paths), "the S3 client's model comes from the layer"


def test_the_local_clouds_layer_zip_carries_the_data_and_not_its_generator(template: dict[str, object]) -> None:
    _, artifacts = sam.package(template, "bucket")
    [layer] = [a for a in artifacts if a.source == ROOT / "layers" / "shared"]
    names = zipfile.ZipFile(io.BytesIO(layer.body)).namelist()
    assert "python/pipeline/botocore_data/botocore-version" in names
    assert "python/pipeline/botocore_data/s3/2006-03-01/service-2.json" in names
    assert not any(n.endswith(("botocore_models.py", "Makefile")) for n in names)
