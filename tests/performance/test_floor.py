"""The cold-start floor is derived from each function's own init, and does that init's third-party work.

No time is asserted here (the figures come from ``imgpipe bench --only cold-start``): what the floor
imports and which clients it creates do not depend on the machine, so they are asserted exactly, and
checked against an independent reading of the code (the import statements its modules run at import).
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from imgpipe_bench import coldstart, coldstart_floor
from imgpipe_bench.coldstart_floor import Client, Floor
from imgpipe_bench.coldstart_table import cold_start_table

FUNCTIONS = coldstart.functions()
GLUE = sorted(set(FUNCTIONS) - coldstart.PIXEL_FUNCTIONS)
#: The clients each function creates at init, in order (its app module and what it calls at module level).
CLIENTS = {
    "validate": ["s3", "dynamodb"],  # the source, then the status table
    "store": ["s3", "dynamodb"],
    "cleanup": ["s3", "dynamodb"],
    "resize": ["s3"],
    "watermark": ["s3"],
    "notify": ["sns", "dynamodb"],  # the topic, then Powertools' idempotency table
    "remove": ["s3", "dynamodb", "sns", "dynamodb"],  # ..., the status table, the topic, the idempotency table
    "reconcile": ["s3", "s3", "stepfunctions"],  # the upload listing, the manifests, the executions
    **{f"uploads_{name}": ["s3", "dynamodb"] for name in ("create", "read", "delete")},  # presigning, statuses
}
#: Powertools modules every function's code imports at init (app.py, pipeline.observability, pipeline.events).
POWERTOOLS = {
    "aws_lambda_powertools": ("Logger", "Metrics"),
    "aws_lambda_powertools.metrics": ("MetricUnit",),
    "aws_lambda_powertools.utilities.typing": ("LambdaContext",),
}
#: The steps take their events through ``event_source``; the upload API's functions route with an event handler.
API_FUNCTIONS = {"uploads_create", "uploads_read", "uploads_delete"}
STEP_POWERTOOLS = {"aws_lambda_powertools.utilities.data_classes": ("event_source",)}
API_POWERTOOLS = {"aws_lambda_powertools.event_handler": ("APIGatewayHttpResolver", "Response", "content_types")}
IDEMPOTENCY = "aws_lambda_powertools.utilities.idempotency"
#: The functions that configure Powertools' idempotency layer at init (``pipeline.idempotency.once_per_revision``).
IDEMPOTENCY_USERS = {"notify", "remove"}


def discovered(layout: coldstart.Layout) -> dict[str, Any]:
    done = coldstart._python(layout, sys.executable, ["-c", coldstart_floor.DISCOVER, *coldstart.first_party(layout)])
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def floors(layouts: dict[str, coldstart.Layout]) -> dict[str, Floor]:
    return {name: coldstart.discover(layouts[name]) for name in FUNCTIONS}


@pytest.fixture(scope="module")
def floor_layouts(
    layouts: dict[str, coldstart.Layout], floors: dict[str, Floor], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, coldstart.Layout]:
    directory = tmp_path_factory.mktemp("floors")
    return {name: coldstart.floor_layout(layouts[name], floors[name], directory / name) for name in FUNCTIONS}


def trimmed_data(layout: coldstart.Layout) -> str:
    return str(layout.layer / "pipeline" / "botocore_data")


def data_without_boto3s(floor: Floor) -> tuple[tuple[str, ...] | None, ...]:
    """A boto3 session appends boto3's own data (its resource models, never a client's) to its loader's paths."""
    return tuple(None if p is None else tuple(x for x in p if not x.endswith("/boto3/data")) for p in floor.data)


# ---------------------------------------------------------------- derived from the code, per function


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_floor_imports_boto3_first_and_the_powertools_the_function_imports(
    function: str, floors: dict[str, Floor]
) -> None:
    imports = dict(floors[function].imports)
    assert floors[function].modules[0] == "boto3"
    own = API_POWERTOOLS if function in API_FUNCTIONS else STEP_POWERTOOLS
    for module, names in {**POWERTOOLS, **own}.items():
        assert set(names) <= set(imports[module]), module
    assert (IDEMPOTENCY in imports) is (function in IDEMPOTENCY_USERS)
    assert not [m for m in imports if m.partition(".")[0] in {"pipeline", "app", *sys.stdlib_module_names}]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_floor_creates_the_clients_the_function_creates_on_the_same_botocore_data(
    function: str, floors: dict[str, Floor], layouts: dict[str, coldstart.Layout]
) -> None:
    floor = floors[function]
    assert [c.service for c in floor.clients] == CLIENTS[function]
    assert {c.session for c in floor.clients} == {0}, "one botocore session per process, as pipeline.storage has"
    assert floor.data == ((trimmed_data(layouts[function]),),)


def module_level_imports(source: Path) -> list[str]:
    """The modules a file's import statements name outside functions and ``if TYPE_CHECKING:`` blocks."""
    found: list[str] = []
    pending = list(ast.parse(source.read_text(encoding="utf-8")).body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            pending.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend(node.body + node.orelse + node.finalbody)
    return found


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_floor_imports_exactly_the_third_party_modules_the_code_imports_at_init(
    function: str, floors: dict[str, Floor], layouts: dict[str, coldstart.Layout]
) -> None:
    """An independent reading: the import statements of app.py and of every pipeline module loaded at init."""
    layout = layouts[function]
    loaded = coldstart.probe(layout).loaded(*coldstart.LAYER_PACKAGES)
    sources = [layout.task / "app.py"]
    for module in loaded:
        path = layout.layer.joinpath(*module.split("."))
        sources.append(path / "__init__.py" if path.is_dir() else path.with_suffix(".py"))
    first_party = coldstart.first_party(layout)
    read = {m for s in sources for m in module_level_imports(s) if coldstart_floor.third_party(m, first_party)}
    libraries = {m for m in read if m.partition(".")[0] in coldstart_floor.floor_packages()}
    assert set(floors[function].modules) == libraries | {"boto3"}
    assert set(floors[function].ours) == read - libraries
    if function not in coldstart.PIXEL_FUNCTIONS:
        assert floors[function].ours == ()


# ---------------------------------------------------------------- the floor program does that work and no more


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_floor_program_derives_to_itself(
    function: str, floors: dict[str, Floor], floor_layouts: dict[str, coldstart.Layout]
) -> None:
    """Run under the same recorder, the floor creates the same clients on the same data and makes the same imports."""
    again = coldstart_floor.derive(function, discovered(floor_layouts[function]), ["app"])
    assert again.clients == floors[function].clients
    assert data_without_boto3s(again) == floors[function].data
    assert set(floors[function].modules) <= set(again.modules)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_floor_loads_every_module_of_the_sdk_and_powertools_the_function_loads_at_init(
    function: str, layouts: dict[str, coldstart.Layout], floor_layouts: dict[str, coldstart.Layout]
) -> None:
    libraries = coldstart_floor.floor_packages()
    ours = {m for m in coldstart.probe(layouts[function]).modules if m.partition(".")[0] in libraries}
    floor = coldstart.probe(floor_layouts[function]).modules
    assert sorted(ours - floor) == []
    assert floor.isdisjoint({"pipeline", "pipeline.storage", "PIL", "pyvips"}), "nothing of ours in the floor"


def test_the_reference_floor_reads_botocores_own_data(
    layouts: dict[str, coldstart.Layout], floors: dict[str, Floor], tmp_path: Path
) -> None:
    layout = coldstart.floor_layout(layouts["notify"], floors["notify"], tmp_path / "task", own_data=False)
    again = coldstart_floor.derive("notify", discovered(layout), ["app"])
    assert again.clients == floors["notify"].clients
    [paths] = data_without_boto3s(again)
    assert paths is not None
    assert str(layout.layer / "botocore" / "data") in paths
    assert trimmed_data(layout) not in paths


@pytest.mark.parametrize("function", sorted(coldstart.PIXEL_FUNCTIONS))
def test_the_pixel_functions_are_timed_with_libvips_loaded_and_used_in_the_same_process(
    function: str, layouts: dict[str, coldstart.Layout]
) -> None:
    """Whether init loads pyvips or the first image does, what the 250 ms include is timed, right after init."""
    probe = coldstart.probe(layouts[function], first_use=coldstart.LIBVIPS)
    assert probe.first_use_ms is not None
    assert probe.first_use_cpu_ms is not None


# ---------------------------------------------------------------- pure: derivation, program, verdicts, table


RECORDED: dict[str, Any] = {
    "imports": [
        ["app", "__future__", ["annotations"]],
        ["app", "pipeline.steps", []],
        ["pipeline.steps", "json", []],
        ["pipeline.steps", "aws_lambda_powertools.metrics", ["MetricUnit"]],
        ["pipeline.observability", "aws_lambda_powertools", ["Logger"]],
        ["pipeline.observability", "aws_lambda_powertools", ["Metrics", "Logger"]],
        ["pipeline.storage", "botocore.session", []],
        ["pipeline.imaging", "PIL", ["Image"]],
    ],
    "clients": [
        {"service": "s3", "region": None, "session": 0, "data": ["/opt/python/pipeline/botocore_data"]},
        {"service": "sns", "region": "eu-west-1", "session": 0, "data": ["/opt/python/pipeline/botocore_data"]},
        {"service": "dynamodb", "region": None, "session": 1, "data": ["/home/.aws/models", "/botocore/data"]},
    ],
    "default_data": ["/home/.aws/models", "/botocore/data"],
}


def test_derive_keeps_the_sdk_and_powertools_imports_merged_in_order_with_boto3_first() -> None:
    floor = coldstart_floor.derive("f", RECORDED, ["app", "pipeline"], {"boto3", "botocore", "aws_lambda_powertools"})
    assert floor.ours == ("PIL",)
    assert floor.imports == (
        ("boto3", ()),
        ("aws_lambda_powertools.metrics", ("MetricUnit",)),
        ("aws_lambda_powertools", ("Logger", "Metrics")),
        ("botocore.session", ()),
    )
    assert floor.clients == (Client("s3", None, 0), Client("sns", "eu-west-1", 0), Client("dynamodb", None, 1))
    assert floor.data == (("/opt/python/pipeline/botocore_data",), None)


def test_the_program_makes_the_imports_then_the_clients_per_session() -> None:
    program = coldstart_floor.derive("f", RECORDED, ["app", "pipeline"]).program()
    compile(program, "app.py", "exec")
    lines = program.splitlines()
    assert "# Also imported at init, counted as the function's own: PIL" in lines
    assert [line for line in lines if "PIL" in line and not line.startswith("#")] == []
    assert lines.index("import boto3") < lines.index("from aws_lambda_powertools import Logger, Metrics")
    assert program.count("botocore.session.get_session()") == 2
    assert program.count("register_component") == 1
    assert "extra_search_paths=['/opt/python/pipeline/botocore_data']" in program
    assert "_SESSIONS[0].client('sns', region_name='eu-west-1')" in program
    assert "_SESSIONS[1].client('dynamodb')" in program
    assert "register_component" not in coldstart_floor.derive("f", RECORDED, ["app"]).program(own_data=False)


def probes(
    ms: float, first_use: float | None = None, *, modules: frozenset[str] = frozenset()
) -> list[coldstart.Probe]:
    return [coldstart.Probe(ms + 50, modules, None if first_use is None else first_use + 5, ms, first_use)] * 3


def test_a_glue_function_is_held_to_its_floor_plus_25_ms_and_a_pixel_function_to_250_with_libvips() -> None:
    floor = Floor("validate", (("boto3", ()),), (Client("s3"),))
    glue = coldstart.figures(
        "validate", floor, {"ours": probes(224), "floor": probes(200), "floor_botocore_data": probes(300)}
    )
    assert (glue["floor_ms"], glue["ours_ms"], glue["difference_ms"], glue["target_ms"]) == (200, 224, 24, 225)
    assert glue["met"] is True
    assert glue["libvips_ms"] is None
    assert glue["wall"]["ours_ms"] == 274
    over = coldstart.figures(
        "validate", floor, {"ours": probes(226), "floor": probes(200), "floor_botocore_data": probes(300)}
    )
    assert over["met"] is False
    pixel = coldstart.figures(
        "resize", floor, {"ours": probes(230, 30), "floor": probes(150), "floor_botocore_data": probes(300)}
    )
    assert (pixel["ours_ms"], pixel["init_ms"], pixel["libvips_ms"], pixel["target_ms"]) == (260, 230, 30, 250)
    assert pixel["met"] is False
    assert pixel["libvips"] == "after init"
    assert pixel["target"] == "<= 250 ms, libvips included"


def test_the_table_has_a_row_per_function_with_floor_ours_difference_target_and_verdict() -> None:
    floor = Floor("validate", (("boto3", ()),), (Client("s3"),))
    samples = {"ours": probes(230, 30), "floor": probes(150), "floor_botocore_data": probes(300)}
    table = cold_start_table({"resize": coldstart.figures("resize", floor, samples)})
    assert [c.header for c in table.columns][:6] == ["function", "floor", "ours", "difference", "target", "met"]
    cells = [next(iter(c.cells)) for c in table.columns]
    assert cells[:5] == ["resize", "150", "260 (230 init + 30 libvips after init)", "+110", "<= 250 (libvips included)"]
