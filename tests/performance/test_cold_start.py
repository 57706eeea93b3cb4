"""Cold-start guards, like Powertools' tests/performance: import each handler as it is shipped, in fresh processes.

The code is laid out and compiled as `sam build` ships it (``imgpipe_bench.coldstart.package``) and imported by
processes that cannot write .pyc files, as in Lambda's read-only /var/task and /opt. What init imports does
not depend on the machine, so it is asserted exactly: an eager heavy import fails here on any machine. The
times, against each function's floor (``test_floor.py``), come from ``imgpipe bench --only cold-start`` (and
``python -m imgpipe_bench.coldstart``), never from a timed test: a shared machine under load makes any time
bound flake.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from imgpipe_bench import coldstart

ROOT = coldstart.ROOT
FUNCTIONS = coldstart.functions()
#: Never imported at init: the X-Ray SDK (Tracer imports it even with tracing off), validation frameworks
#: (Powertools' parser and validator), and the imaging libraries, which only the steps that read pixels
#: import, on their first image (libvips included: the cold-start figures count it after init).
FRAMEWORKS = ("aws_xray_sdk", "pydantic", "fastjsonschema", "jsonschema")
IMAGING = ("PIL", "numpy", "simplejpeg", "pyspng", "webp", "pillow_heif", "pyvips", "cffi", "_cffi_backend", "_libvips")
HEAVY = (*FRAMEWORKS, *IMAGING)
#: Clients come from botocore; boto3 (and s3transfer under it) is imported only by Powertools' idempotency layer.
BOTO3 = ("boto3", "s3transfer")
BOTO3_USERS = {"notify", "remove"}
UNCHECKED_HASH_PYC = 0b01  # the flags word of a PEP 552 .pyc: hash-based, source not checked


@pytest.fixture(scope="module")
def probes(layouts: dict[str, coldstart.Layout]) -> dict[str, coldstart.Probe]:
    return {name: coldstart.probe(layouts[name]) for name in FUNCTIONS}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_tracing_sdk_validation_framework_or_imaging_library_at_init(
    function: str, probes: dict[str, coldstart.Probe]
) -> None:
    assert probes[function].loaded(*HEAVY) == []


@pytest.mark.parametrize("function", sorted(set(FUNCTIONS) - BOTO3_USERS))
def test_clients_come_from_botocore_without_boto3(function: str, probes: dict[str, coldstart.Probe]) -> None:
    assert probes[function].loaded(*BOTO3) == []


def test_every_module_ships_an_unchecked_hash_pyc(layouts: dict[str, coldstart.Layout]) -> None:
    """A zip keeps modification times to 2 s: only hash-based .pyc files stay valid in one."""
    layer = next(iter(layouts.values())).layer
    handlers = [source for layout in layouts.values() for source in layout.task.glob("*.py")]
    sources = [*(layer / "pipeline").rglob("*.py"), *handlers]
    assert len(sources) > len(layouts)
    for source in sources:
        header = Path(importlib.util.cache_from_source(str(source))).read_bytes()[:8]
        assert header[:4] == importlib.util.MAGIC_NUMBER, source
        assert int.from_bytes(header[4:8], "little") == UNCHECKED_HASH_PYC, source


def test_the_shipped_pyc_files_are_what_runs_after_a_zip_round_trip(
    layouts: dict[str, coldstart.Layout], tmp_path: Path
) -> None:
    layout = layouts["store"]
    archive = tmp_path / "store.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(layout.task.rglob("*")):
            out.write(path, path.relative_to(layout.task))
    task = tmp_path / "task"
    with zipfile.ZipFile(archive) as unzipped:
        unzipped.extractall(task)
    # The source is never read: a handler that only its .pyc can provide still loads.
    (task / "app.py").write_text("raise SystemExit('app.py was compiled again at init')\n", encoding="utf-8")
    probe = coldstart.probe(coldstart.Layout("store", task, layout.layer))
    assert "app" in probe.modules


# ---------------------------------------------------------------- the real build (sam build, makefile)


def code_resources(template: dict[str, Any]) -> dict[str, Path]:
    uris = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}
    return {
        name: ROOT / res["Properties"][uris[res["Type"]]]
        for name, res in template["Resources"].items()
        if res["Type"] in uris
    }


def test_every_function_and_layer_is_built_by_the_makefile_in_its_directory(template: dict[str, Any]) -> None:
    resources = code_resources(template)
    assert len(resources) == len(FUNCTIONS) + 1
    for name, directory in resources.items():
        assert template["Resources"][name]["Metadata"]["BuildMethod"] == "makefile", name
        makefile = (directory / "Makefile").read_text(encoding="utf-8")
        assert f"\nbuild-{name}:" in makefile, name
        if "include " in makefile:  # the functions share one recipe
            assert "../handler.mk" in makefile, name
            makefile = (directory.parent / "handler.mk").read_text(encoding="utf-8")
        assert "--invalidation-mode unchecked-hash" in makefile, name


needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def make(directory: Path, target: str, artifacts: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Run a build target as sam build does: in a copy of the code directory, with ARTIFACTS_DIR set."""
    scratch = artifacts.parent / "scratch"
    shutil.copytree(directory, scratch, ignore=shutil.ignore_patterns("__pycache__"))
    artifacts.mkdir()
    return subprocess.run(
        ["make", *options, "-f", str(directory / "Makefile"), target, f"ARTIFACTS_DIR={artifacts}"],
        cwd=scratch,
        env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        check=False,
    )


@needs_make
@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_function_build_ships_the_handler_compiled(function: str, tmp_path: Path) -> None:
    logical_id = "".join(part.capitalize() for part in function.split("_")) + "Function"
    artifacts = tmp_path / "artifacts"
    done = make(ROOT / "functions" / function, f"build-{logical_id}", artifacts)
    assert done.returncode == 0, done.stderr
    assert (artifacts / "app.py").is_file()
    assert not (artifacts / "Makefile").exists()
    compiled = artifacts / "__pycache__" / f"app.{sys.implementation.cache_tag}.pyc"
    assert int.from_bytes(compiled.read_bytes()[4:8], "little") == UNCHECKED_HASH_PYC


@needs_make
def test_the_layer_build_installs_for_arm64_and_compiles_everything(tmp_path: Path) -> None:
    """Only a dry run: the real one downloads the wheels."""
    done = make(ROOT / "layers" / "shared", "build-SharedLayer", tmp_path / "artifacts", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "--platform manylinux2014_aarch64" in done.stdout
    assert "--requirement requirements.txt" in done.stdout
    # pyvips is a source distribution only: its wheel is built first and found there
    assert "pip wheel --quiet --no-deps" in done.stdout
    assert '"pyvips==3.2.0"' in done.stdout
    assert "--find-links" in done.stdout
    assert "--invalidation-mode unchecked-hash" in done.stdout
    # botocore's trimmed data comes from the botocore the layer ships
    from importlib.metadata import version

    assert f"--botocore-version {version('botocore')}" in done.stdout
    assert 'PYTHONPATH="' in done.stdout
