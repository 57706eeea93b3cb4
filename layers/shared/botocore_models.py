"""Build step: botocore's data for the layer, trimmed to the services and operations the functions call.

A botocore client reads its service model whole at creation (S3's is 1.4 MB of JSON for 116 operations),
lists every service directory of its data path (about 450) to check the service exists, and reads
``endpoints.json`` (1.2 MB, every service of every partition). This writes, for the botocore that runs
it, the same files restricted to what the pipeline uses:

- ``<service>/<api version>/service-2.json``: the operations of ``OPERATIONS`` (and the service's endpoint
  discovery operation, when one of them can use discovery) and the shapes they reach, each exactly as
  botocore loads it (its ``sdk-extras`` merged in); every other top-level key unchanged;
- ``paginators-1.json``: the paginators of ``PAGINATORS``, as botocore loads them;
- ``endpoint-rule-set-1.json``: the service's endpoint rule set, whole;
- ``endpoints.json``: each partition whole, its ``services`` restricted to these services' endpoint prefixes;
- ``partitions.json``, ``sdk-default-configuration.json``, ``_retry.json``: whole;
- ``botocore-version``: the version they come from. ``pipeline.storage`` reads this data only under that
  same botocore version, and botocore's own data otherwise.

    python botocore_models.py OUTPUT_DIR [--botocore-version VERSION]

``--botocore-version`` makes the build fail unless the botocore found is that one. The layer's Makefile
runs it with the pinned botocore; the local cloud's packager (``localcloud.sam``) with the current environment's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

#: Every operation the functions call, by service: the pipeline's own (``pipeline.storage``,
#: ``pipeline.recovery_io``) and those of Powertools' DynamoDB idempotency layer (notify, remove).
OPERATIONS: Final[Mapping[str, tuple[str, ...]]] = {
    # CreateBucket: botocore's generate_presigned_post resolves the bucket's endpoint through its model.
    "s3": (
        "CopyObject",
        "CreateBucket",
        "DeleteObject",
        "DeleteObjects",
        "GetObject",
        "HeadObject",
        "ListObjectsV2",
        "PutObject",
    ),
    "sns": ("Publish",),
    "dynamodb": ("DeleteItem", "GetItem", "PutItem", "Query", "UpdateItem"),
    "stepfunctions": ("DescribeExecution", "ListExecutions", "StartExecution"),
}
#: The operations the functions page through with ``get_paginator``.
PAGINATORS: Final[Mapping[str, tuple[str, ...]]] = {
    "s3": ("ListObjectsV2",),
    "stepfunctions": ("ListExecutions",),
}
#: Data botocore loads whole, whatever the service.
SHARED: Final = ("partitions", "sdk-default-configuration", "_retry")
VERSION_FILE: Final = "botocore-version"


def builtin_loader() -> Any:
    """A loader of botocore's own data only (no ~/.aws/models, no AWS_DATA_PATH)."""
    from botocore.loaders import Loader

    return Loader(extra_search_paths=[Loader.BUILTIN_DATA_PATH], include_default_search_paths=False)


def shape_names(shape: Mapping[str, Any]) -> Iterator[str]:
    """The shapes a shape definition refers to directly."""
    for key in ("member", "key", "value"):
        if key in shape:
            yield shape[key]["shape"]
    for member in shape.get("members", {}).values():
        yield member["shape"]


def reachable_shapes(model: Mapping[str, Any], operations: tuple[str, ...]) -> list[str]:
    """Every shape the operations' input, output and errors reach, transitively, in the model's order."""
    pending: list[str] = []
    for name in operations:
        operation = model["operations"][name]
        pending.extend(operation[key]["shape"] for key in ("input", "output") if key in operation)
        pending.extend(error["shape"] for error in operation.get("errors", []))
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(shape_names(model["shapes"][name]))
    return [name for name in model["shapes"] if name in seen]


def kept_operations(model: Mapping[str, Any], operations: tuple[str, ...]) -> tuple[str, ...]:
    """The operations, plus the service's endpoint discovery operation when one of them can use discovery."""
    missing = sorted(set(operations) - set(model["operations"]))
    if missing:
        raise KeyError(f"{model['metadata']['serviceId']}: no operation {', '.join(missing)}")
    if any("endpointdiscovery" in model["operations"][name] for name in operations):
        discovery = [name for name, op in model["operations"].items() if op.get("endpointoperation")]
        return (*operations, *discovery)
    return operations


def trimmed_service_model(model: Mapping[str, Any], operations: tuple[str, ...]) -> dict[str, Any]:
    operations = kept_operations(model, operations)
    trimmed = dict(model)
    trimmed["operations"] = {name: model["operations"][name] for name in model["operations"] if name in operations}
    trimmed["shapes"] = {name: model["shapes"][name] for name in reachable_shapes(model, operations)}
    return trimmed


def trimmed_endpoints(endpoints: Mapping[str, Any], prefixes: set[str]) -> dict[str, Any]:
    partitions = [
        {**partition, "services": {k: v for k, v in partition["services"].items() if k in prefixes}}
        for partition in endpoints["partitions"]
    ]
    return {**endpoints, "partitions": partitions}


def _write(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")


def generate(output: Path, loader: Any = None) -> str:
    """Write the trimmed data into output (replaced if it exists); return the botocore version."""
    import botocore

    loader = loader if loader is not None else builtin_loader()
    if output.exists():
        shutil.rmtree(output)
    prefixes = set()
    for service, operations in OPERATIONS.items():
        model = loader.load_service_model(service, "service-2")
        version = model["metadata"]["apiVersion"]
        prefixes.add(model["metadata"]["endpointPrefix"])
        directory = output / service / version
        _write(directory / "service-2.json", trimmed_service_model(model, operations))
        _write(directory / "endpoint-rule-set-1.json", loader.load_service_model(service, "endpoint-rule-set-1"))
        if service in PAGINATORS:
            pagination = loader.load_service_model(service, "paginators-1", version)["pagination"]
            _write(directory / "paginators-1.json", {"pagination": {op: pagination[op] for op in PAGINATORS[service]}})
    _write(output / "endpoints.json", trimmed_endpoints(loader.load_data("endpoints"), prefixes))
    for name in SHARED:
        _write(output / f"{name}.json", loader.load_data(name))
    (output / VERSION_FILE).write_text(botocore.__version__ + "\n", encoding="utf-8")
    return str(botocore.__version__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--botocore-version", help="fail unless the botocore found is this version")
    args = parser.parse_args(argv)
    import botocore

    if args.botocore_version and botocore.__version__ != args.botocore_version:
        print(f"botocore {botocore.__version__} found, {args.botocore_version} expected", file=sys.stderr)
        return 2
    generate(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
