"""template.yaml to CloudFormation, offline: package like ``sam package``, transform like ``sam deploy``.

aws-sam-translator only accepts S3 locations for code and definitions, so packaging
replaces each local ``CodeUri``/``ContentUri`` with the S3 location of a zip (the caller
uploads the zips) and inlines each ``DefinitionUri`` as ``Definition``.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


def project_root() -> Path:
    """The project the local cloud deploys, found once: ``$IMGPIPE_ROOT``, else the first of the current
    directory and its parents that holds template.yaml and functions/, else the checkout this package
    was installed from in development mode."""
    configured = os.environ.get("IMGPIPE_ROOT")
    if configured:
        return Path(configured).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "template.yaml").is_file() and (candidate / "functions").is_dir():
            return candidate
    return Path(__file__).resolve().parents[2]


#: The one place every path of the project starts from.
ROOT: Final = project_root()
TEMPLATE: Final = ROOT / "template.yaml"

_CODE_PROPERTIES: Final = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}
_SKIP: Final = ("__pycache__", ".pytest_cache", ".mypy_cache")
#: The layer's build step that writes botocore's trimmed data (layers/shared/Makefile), and where.
_BOTOCORE_MODELS: Final = "botocore_models.py"
_BOTOCORE_DATA: Final = "python/pipeline/botocore_data/"
#: What builds a code directory (BuildMethod: makefile) rather than ships in it.
_BUILD_FILES: Final = frozenset({"Makefile", _BOTOCORE_MODELS})


class TemplateError(ValueError):
    """template.yaml cannot be packaged or transformed."""


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    """Parse a SAM template, short-form intrinsics (!Ref, !Sub, ...) included."""
    try:
        document = yaml_parse(path.read_text(encoding="utf-8"))
    except Exception as exc:
        raise TemplateError(f"{path}: {exc}") from exc
    if not isinstance(document, dict) or "Resources" not in document:
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources)")
    return document


def function_environment(logical_id: str, template: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The environment template.yaml gives a function with its parameters at their defaults: the Globals'
    and the function's own variables whose values are literals or parameter references (the names of
    resources, known only once deployed, are left out). Code that needs the pipeline's defaults outside
    a deployment (the measurements) reads them here, from the one place they are written."""
    template = load() if template is None else template
    defaults = {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}
    shared = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    own = template["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {})
    env: dict[str, str] = {}
    for name, value in {**shared, **own}.items():
        if isinstance(value, str | int | float):
            env[name] = str(value)
        elif isinstance(value, dict) and value.get("Ref") in defaults:
            env[name] = defaults[value["Ref"]]
    return env


@dataclass(frozen=True)
class Artifact:
    """A zip of one resource's code, ready to upload."""

    logical_id: str
    source: Path
    key: str
    body: bytes = field(repr=False)


def zip_directory(directory: Path, prefix: str = "") -> bytes:
    """A deterministic zip of a directory (sorted entries, fixed timestamps)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(_files(directory)):
            info = zipfile.ZipInfo(prefix + path.relative_to(directory).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def generate_botocore_data(output: Path, layer_source: Path = ROOT / "layers" / "shared") -> bool:
    """Write botocore's trimmed data into ``output`` as the layer's Makefile does, from this interpreter's
    botocore (the one the local functions run with); False when the layer has no generator (a checkout
    from before it existed: its functions read botocore's own data)."""
    generator = layer_source / "botocore_models.py"
    if not generator.is_file():
        return False
    done = subprocess.run(  # noqa: S603 (this interpreter, on the layer's own build script)
        [sys.executable, generator, output], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{generator} failed:\n{done.stderr}")
    return True


def add_generated_botocore_data(body: bytes, source: Path) -> bytes:
    """A layer zip with what its Makefile generates besides its sources: botocore's trimmed data."""
    with tempfile.TemporaryDirectory(prefix="imgpipe-botocore-data-") as scratch:
        output = Path(scratch) / "botocore_data"
        if not generate_botocore_data(output, source):
            return body
        buf = io.BytesIO(body)
        with zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(output.rglob("*")):
                if path.is_file():
                    name = _BOTOCORE_DATA + path.relative_to(output).as_posix()
                    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                    info.external_attr = 0o644 << 16
                    archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def _files(directory: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = [d for d in dirnames if d not in _SKIP]
        for name in filenames:
            if not name.endswith((".pyc", ".pyo")) and name not in _BUILD_FILES:
                yield Path(dirpath) / name


def package(
    template: Mapping[str, Any],
    bucket: str,
    base: Path = ROOT,
    zipper: Callable[[Path, str], bytes] = zip_directory,
) -> tuple[dict[str, Any], list[Artifact]]:
    """Return the template with S3 code locations and inlined definitions, and the zips to upload."""
    packaged = copy.deepcopy(dict(template))
    artifacts: list[Artifact] = []
    for logical_id, resource in packaged["Resources"].items():
        kind = resource.get("Type")
        props = resource.setdefault("Properties", {})
        prop = _CODE_PROPERTIES.get(kind)
        if prop and isinstance(props.get(prop), str) and not props[prop].startswith("s3://"):
            source = (base / props[prop]).resolve()
            if not source.is_dir():
                raise TemplateError(f"{logical_id}.{prop}: {source} is not a directory")
            # A layer's Python code is served from python/ in the layer (what `sam build` lays out).
            body = zipper(source, "python/" if kind == "AWS::Serverless::LayerVersion" else "")
            if kind == "AWS::Serverless::LayerVersion":
                body = add_generated_botocore_data(body, source)
            key = f"{logical_id}/{hashlib.sha256(body).hexdigest()[:16]}.zip"
            artifacts.append(Artifact(logical_id, source, key, body))
            props[prop] = f"s3://{bucket}/{key}"
        if kind == "AWS::Serverless::StateMachine" and isinstance(props.get("DefinitionUri"), str):
            path = base / props.pop("DefinitionUri")
            try:
                props["Definition"] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise TemplateError(f"{logical_id}.DefinitionUri: {path}: {exc}") from exc
    return packaged, artifacts


class OfflinePolicyLoader(ManagedPolicyLoader):  # type: ignore[misc]
    """Resolves AWS managed policy names to ARNs without calling IAM."""

    def __init__(self, partition: str = "aws") -> None:
        self.partition = partition

    def load(self) -> dict[str, str]:
        names = ("AWSLambdaBasicExecutionRole", "AWSLambdaRole", "AWSXrayWriteOnlyAccess", "AWSXRayDaemonWriteAccess")
        return {
            name: f"arn:{self.partition}:iam::aws:policy/service-role/{name}"
            if name in ("AWSLambdaBasicExecutionRole", "AWSLambdaRole")
            else f"arn:{self.partition}:iam::aws:policy/{name}"
            for name in names
        }


def to_cloudformation(
    packaged: Mapping[str, Any], parameters: Mapping[str, str] | None = None, region: str = "us-east-1"
) -> dict[str, Any]:
    """Transform a packaged SAM template into plain CloudFormation (no AWS call)."""
    values: dict[str, Any] = {"AWS::Region": region, "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
    values.update(parameters or {})
    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region
    try:
        return dict(transform(copy.deepcopy(dict(packaged)), values, OfflinePolicyLoader()))
    except Exception as exc:
        raise TemplateError(f"aws-sam-translator rejected the template: {exc}") from exc
    finally:
        if previous is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous


def main() -> int:
    """``python -m localcloud.sam``: print template.yaml as aws-sam-translator transforms it, as JSON.

    What ``make security`` scans besides template.yaml: the roles, rules and schedules SAM generates.
    """
    try:
        packaged, _ = package(load(), "artifacts-bucket")
        document = to_cloudformation(packaged)
    except TemplateError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    sys.stdout.write(json.dumps(document, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
