"""Cold starts of the packaged functions against their floor, in fresh processes, interleaved.

``package(build_dir)`` lays the code out the way ``sam build`` ships it (the Makefiles in
``functions/<name>/`` and ``layers/shared/``) and Lambda mounts it:

- ``<build_dir>/functions/<name>/``, the function's zip, is ``/var/task``;
- ``<build_dir>/layer/python/``, the layer's ``python/`` directory, is ``/opt/python``: the
  ``pipeline`` package, botocore's data trimmed to what the functions call in ``pipeline/botocore_data``
  (``layers/shared/botocore_models.py``, run on the current environment's botocore, which the layer's
  Makefile runs on the pinned one), and the distributions of ``layers/shared/requirements.txt`` (with
  what they require), copied from the current environment as ``pip install --target`` would place them.

Both are compiled with hash-based, unchecked ``.pyc`` files, which stay valid inside a zip (a zip
keeps modification times to 2 s, so timestamp-based ``.pyc`` files go stale, and Lambda's read-only
file system means every cold start then compiles the sources again). The layer ships boto3 and
botocore itself (before the runtime's on ``sys.path``, as in Lambda), so they are measured compiled
the same way.

``measure()`` derives each function's floor from its own init (``imgpipe_bench.coldstart_floor``:
boto3, the AWS SDK and Powertools modules its code imports, its clients created through boto3 on
the same botocore data), writes it as the ``app`` module of a second ``/var/task`` on the same layer,
compiled the same way, and times ``import app`` of both (module-level init included: settings, AWS
clients, the idempotency layer) in fresh ``python -X frozen_modules=on`` processes that cannot write
``.pyc`` files, taking turns, in CPU and wall-clock ms. Targets: the glue functions' init at most
their floor + 25 ms; resize and watermark at most 250 ms including libvips: what is timed for them
is init, then, in the same process, ``import pyvips`` and a 1x1 operation (only the operation when
init already loaded libvips; the figures say which).

    .venv/bin/python -m imgpipe_bench.coldstart [--repeats 15] [--floor FUNCTION] [--importtime FUNCTION]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from rich.console import Console

from imgpipe_bench import coldstart_floor
from imgpipe_bench.coldstart_floor import Floor
from localcloud import sam

ROOT: Final = sam.ROOT
PIXEL_FUNCTIONS: Final = frozenset({"resize", "watermark"})
#: Resize and watermark: init, then libvips loaded and used once, at most this.
PIXEL_TARGET_MS: Final = 250.0
#: The other (glue) functions: init at most their floor plus this.
GLUE_ALLOWANCE_MS: Final = 25.0
#: The targets' descriptions, for a glue function (False) and a pixel function (True).
TARGETS: Final = {
    False: f"<= floor + {GLUE_ALLOWANCE_MS:.0f} ms",
    True: f"<= {PIXEL_TARGET_MS:.0f} ms, libvips included",
}
#: The layer's own packages (the rest of the layer is third-party distributions).
LAYER_PACKAGES: Final = ("pipeline",)
#: What a function's environment needs for its module-level init (template.yaml gives the real values).
ENV: Final = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "x",
    "AWS_SESSION_TOKEN": "x",
    "STAGING_BUCKET": "staging",
    "DESTINATION_BUCKET": "destination",
    "TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:topic",
    "IDEMPOTENCY_TABLE": "table",
    "STATUS_TABLE": "status",
    "SOURCE_BUCKET": "source",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:sm",
    "POWERTOOLS_METRICS_NAMESPACE": "ImagePipeline",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
#: Times ``import app`` (wall clock and this process's CPU time), then what replaces ``# FIRST USE`` (its times
#: as first_use), and lists the modules ``import app`` left loaded. Nothing but sys and time is imported first.
PROBE: Final = """\
import sys, time
started, cpu = time.perf_counter(), time.process_time()
import app
times = [(time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000]
modules = sorted(sys.modules)
first_use = None
# FIRST USE
import json
print(json.dumps({"ms": times, "first_use_ms": first_use, "modules": modules}))
"""
#: libvips loaded and used once: the part of a pixel function's first image that its 250 ms include.
LIBVIPS: Final = """\
started, cpu = time.perf_counter(), time.process_time()
import pyvips
pyvips.Image.black(1, 1).avg()
first_use = [(time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000]
"""
_NAME: Final = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class Layout:
    """One packaged function: its code (``/var/task``) and its layer's ``python/`` (``/opt/python``)."""

    function: str
    task: Path
    layer: Path

    @property
    def path(self) -> list[Path]:
        """The directories in front of the runtime's own on ``sys.path``, in Lambda's order."""
        return [self.task, self.layer]


@dataclass(frozen=True)
class Probe:
    """One fresh process: how long ``import app`` took, what it left in ``sys.modules``, and the first use after.

    Times are wall-clock ms and CPU ms (``time.process_time()``: all the process's threads, not the
    time it waited for a core, which on a shared machine is most of the noise).
    """

    ms: float
    modules: frozenset[str]
    first_use_ms: float | None = None
    cpu_ms: float = 0.0
    first_use_cpu_ms: float | None = None

    def total(self, *, cpu: bool = True) -> float:
        """Import + init, plus the first use when there was one."""
        if cpu:
            return self.cpu_ms + (self.first_use_cpu_ms or 0.0)
        return self.ms + (self.first_use_ms or 0.0)

    def loaded(self, *prefixes: str) -> list[str]:
        """The loaded modules that are, or are inside, one of these packages."""
        return sorted(m for m in self.modules if any(m == p or m.startswith(p + ".") for p in prefixes))


def functions(root: Path = ROOT) -> list[str]:
    return sorted(p.parent.name for p in (root / "functions").glob("*/app.py"))


def first_party(layout: Layout) -> list[str]:
    """The top-level names of the function's own code: its modules in ``/var/task`` and the layer's packages."""
    return sorted({p.stem for p in layout.task.glob("*.py")} | set(LAYER_PACKAGES))


def requirement_names(lines: Iterable[str]) -> list[str]:
    """The distribution names in requirements lines (comments, options and extras-only lines left out)."""
    names = []
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if not text or text.startswith("-"):
            continue
        requirement, _, marker = text.partition(";")
        if "extra" in marker:
            continue
        match = _NAME.match(requirement)
        if match:
            names.append(match.group(1))
    return names


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions(requirements: Path) -> list[metadata.Distribution]:
    """The installed distributions a requirements file names, with what they require."""
    found: dict[str, metadata.Distribution] = {}
    pending = requirement_names(requirements.read_text(encoding="utf-8").splitlines())
    while pending:
        name = _canonical(pending.pop())
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise FileNotFoundError(f"{requirements}: {name} is not installed in {sys.prefix}") from None
        found[name] = dist
        pending.extend(requirement_names(dist.requires or []))
    return [found[name] for name in sorted(found)]


def _install(dist: metadata.Distribution, target: Path) -> None:
    """Place a distribution's files under target, as ``pip install --target`` does (hard links when possible)."""
    for file in dist.files or []:
        if file.parts[0] == ".." or "__pycache__" in file.parts:
            continue
        source = Path(str(dist.locate_file(file)))
        destination = target / file
        if not source.is_file() or destination.exists():
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, destination)
        except OSError:
            shutil.copy2(source, destination)


def _copy_package(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)


def _copy_modules(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for module in source.glob("*.py"):
        shutil.copy2(module, target / module.name)


def compile_tree(directory: Path) -> None:
    """Compile every ``.py`` under directory to unchecked hash-based ``.pyc`` files, as the Makefiles do."""
    done = subprocess.run(  # noqa: S603 (this interpreter, on a directory of this build)
        [sys.executable, "-m", "compileall", "-q", "-f", "-j", "0", "--invalidation-mode", "unchecked-hash", directory],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SyntaxError(f"{directory}: some sources do not compile\n{done.stdout}{done.stderr}")


def package(build_dir: Path, *, root: Path = ROOT, compiled: bool = True) -> dict[str, Layout]:
    """Lay out every function and the shared layer in build_dir (new or empty); compile them unless told not to.

    ``compiled=False`` ships sources only: what a ``BuildMethod: python3.12`` build ships (the builder
    unpacks wheels without compiling them).
    """
    build_dir = Path(build_dir)
    if build_dir.exists() and any(build_dir.iterdir()):
        raise FileExistsError(f"{build_dir} is not empty")
    layer = build_dir / "layer" / "python"
    layer.mkdir(parents=True)
    for name in LAYER_PACKAGES:
        _copy_package(root / "layers" / "shared" / name, layer / name)
    sam.generate_botocore_data(layer / "pipeline" / "botocore_data", root / "layers" / "shared")
    for dist in distributions(root / "layers" / "shared" / "requirements.txt"):
        _install(dist, layer)
    layouts = {}
    for name in functions(root):
        task = build_dir / "functions" / name
        _copy_modules(root / "functions" / name, task)
        layouts[name] = Layout(name, task, layer)
    if compiled:
        compile_tree(layer)
        for layout in layouts.values():
            compile_tree(layout.task)
    return layouts


def environment(layout: Layout, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment like Lambda's: no AWS profile or config files, no .pyc writes (read-only code)."""
    scratch = layout.task.parent.parent
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(scratch),
        "AWS_CONFIG_FILE": str(scratch / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(scratch / "no-aws-credentials"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": os.pathsep.join(str(p) for p in layout.path),
        "LAMBDA_TASK_ROOT": str(layout.task),
        "POWERTOOLS_SERVICE_NAME": layout.function,
        **ENV,
        **(extra or {}),
    }


def _python(
    layout: Layout, python: str, arguments: Sequence[str], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(  # noqa: S603 (the interpreter the caller chose, on code of this repository)
        [python, "-X", "frozen_modules=on", *arguments],
        cwd=layout.task,
        env=environment(layout, env),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{layout.function}: import app failed:\n{done.stderr}")
    return done


def probe(
    layout: Layout, *, python: str = sys.executable, env: Mapping[str, str] | None = None, first_use: str = ""
) -> Probe:
    """Import the function's app module once, in a fresh process, then run ``first_use`` (timed apart)."""
    done = _python(layout, python, ["-c", PROBE.replace("# FIRST USE\n", first_use)], env)
    result = json.loads(done.stdout.splitlines()[-1])
    wall, cpu = result["ms"]
    first_wall, first_cpu = result["first_use_ms"] or (None, None)
    modules = frozenset(result["modules"])
    return Probe(ms=wall, modules=modules, first_use_ms=first_wall, cpu_ms=cpu, first_use_cpu_ms=first_cpu)


def discover(layout: Layout, *, python: str = sys.executable) -> Floor:
    """The function's floor, derived from its init run once under ``coldstart_floor.DISCOVER``."""
    names = first_party(layout)
    done = _python(layout, python, ["-c", coldstart_floor.DISCOVER, *names])
    return coldstart_floor.derive(layout.function, json.loads(done.stdout.splitlines()[-1]), names)


def floor_layout(layout: Layout, floor: Floor, task: Path, *, own_data: bool = True, compiled: bool = True) -> Layout:
    """The floor as the ``app`` module of its own ``/var/task`` (new), on the function's layer, compiled alike."""
    task.mkdir(parents=True)
    (task / "app.py").write_text(floor.program(own_data=own_data), encoding="utf-8")
    if compiled:
        compile_tree(task)
    return Layout(layout.function, task, layout.layer)


@contextmanager
def _build_dir(directory: Path | None) -> Iterator[Path]:
    if directory is not None:
        yield Path(directory)
        return
    with tempfile.TemporaryDirectory(prefix="imgpipe-coldstart-") as temporary:
        yield Path(temporary)


#: What each function is timed against, per round: the function, its floor, its floor on botocore's own data.
KINDS: Final = ("ours", "floor", "floor_botocore_data")


def _contenders(layout: Layout, floor: Floor, directory: Path, compiled: bool) -> dict[str, tuple[Layout, str]]:
    """Per kind, the layout a process imports ``app`` from and what it runs after (libvips for resize/watermark)."""
    first_use = LIBVIPS if layout.function in PIXEL_FUNCTIONS else ""
    return {
        "ours": (layout, first_use),
        "floor": (floor_layout(layout, floor, directory / "floor", compiled=compiled), ""),
        "floor_botocore_data": (
            floor_layout(layout, floor, directory / "floor-botocore-data", own_data=False, compiled=compiled),
            "",
        ),
    }


def _interleaved(
    contenders: Mapping[str, Mapping[str, tuple[Layout, str]]], repeats: int
) -> dict[str, dict[str, list[Probe]]]:
    """``repeats`` rounds of one fresh process per function and kind; each round starts one kind later."""
    samples: dict[str, dict[str, list[Probe]]] = {name: {kind: [] for kind in KINDS} for name in contenders}
    for turn in range(repeats):
        for name, runs in contenders.items():
            for kind in KINDS[turn % len(KINDS) :] + KINDS[: turn % len(KINDS)]:
                layout, first_use = runs[kind]
                samples[name][kind].append(probe(layout, first_use=first_use))
    return samples


def target_ms(function: str, floor_ms: float) -> float:
    return PIXEL_TARGET_MS if function in PIXEL_FUNCTIONS else floor_ms + GLUE_ALLOWANCE_MS


def _medians(function: str, samples: Mapping[str, Sequence[Probe]], *, cpu: bool) -> dict[str, Any]:
    """Medians in CPU or wall-clock ms, the target computed from them and its verdict."""
    ours = samples["ours"]
    floor_ms = statistics.median(p.total(cpu=cpu) for p in samples["floor"])
    ours_ms = statistics.median(p.total(cpu=cpu) for p in ours)
    libvips = [p.first_use_cpu_ms if cpu else p.first_use_ms for p in ours]
    target = target_ms(function, floor_ms)
    return {
        "floor_ms": floor_ms,
        "ours_ms": ours_ms,
        "difference_ms": ours_ms - floor_ms,
        "target_ms": target,
        "met": ours_ms <= target,
        "init_ms": statistics.median(p.cpu_ms if cpu else p.ms for p in ours),
        "libvips_ms": None if None in libvips else statistics.median(v or 0.0 for v in libvips),
        "floor_botocore_data_ms": statistics.median(p.total(cpu=cpu) for p in samples["floor_botocore_data"]),
    }


def figures(function: str, floor: Floor, samples: Mapping[str, Sequence[Probe]]) -> dict[str, Any]:
    """One function's medians against its target, in CPU ms, and the same in wall-clock ms under ``wall``.

    Ours is import + init, plus libvips loaded and used once for resize and watermark; the verdict is
    on CPU time, which a busy shared machine disturbs far less than the wall clock.
    """
    pixel = function in PIXEL_FUNCTIONS
    libvips = "at init" if "pyvips" in samples["ours"][0].modules else "after init"
    return {
        **_medians(function, samples, cpu=True),
        "target": TARGETS[pixel],
        "libvips": libvips if pixel else None,
        "wall": _medians(function, samples, cpu=False),
        "repeats": len(samples["ours"]),
        "floor": floor.as_json(),
    }


def measure(
    functions: Sequence[str] | None = None,
    repeats: int = 15,
    *,
    build_dir: Path | None = None,
    root: Path = ROOT,
    compiled: bool = True,
) -> dict[str, dict[str, Any]]:
    """Each function's cold start and its floor, medians of ``repeats`` fresh processes each (``figures()``).

    The functions and their floors take turns (one process each per round), so that a noisy moment of
    a shared machine spreads over all of them instead of falling on one.
    """
    with _build_dir(build_dir) as directory:
        layouts = package(directory, root=root, compiled=compiled)
        names = list(functions) if functions is not None else sorted(layouts)
        unknown = sorted(set(names) - set(layouts))
        if unknown:
            raise ValueError(f"no such function: {', '.join(unknown)}")
        floors = {name: discover(layouts[name]) for name in names}
        contenders = {
            name: _contenders(layouts[name], floors[name], directory / "floors" / name, compiled) for name in names
        }
        samples = _interleaved(contenders, repeats)
    return {name: figures(name, floors[name], samples[name]) for name in names}


def importtime(layout: Layout, *, python: str = sys.executable, top: int = 25) -> list[tuple[int, int, str]]:
    """``-X importtime`` of ``import app``: (cumulative µs, self µs, module), the biggest cumulative first.

    Module-level init (settings, clients) is in the self time of ``app``.
    """
    done = _python(layout, python, ["-X", "importtime", "-c", "import app"])
    return sorted(_importtime_rows(done.stderr.splitlines()), reverse=True)[:top]


def _importtime_rows(lines: Iterable[str]) -> Iterator[tuple[int, int, str]]:
    for line in lines:
        if not line.startswith("import time:"):
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|", 2)
        if own.strip().isdigit():
            yield int(cumulative), int(own), name.rstrip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgpipe_bench.coldstart", description=__doc__.split("\n")[0])
    parser.add_argument("functions", nargs="*", help="functions to measure (default: all)")
    parser.add_argument("--repeats", type=int, default=15, help="fresh processes per function and per floor")
    parser.add_argument("--root", type=Path, default=ROOT, help="a checkout to measure (default: this one)")
    parser.add_argument("--sources-only", action="store_true", help="ship no .pyc (a python3.12 build method)")
    parser.add_argument("--importtime", metavar="FUNCTION", help="show -X importtime's biggest imports instead")
    parser.add_argument("--floor", metavar="FUNCTION", help="show the floor program derived for FUNCTION instead")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.importtime or args.floor:
        with _build_dir(None) as directory:
            layouts = package(directory, root=args.root, compiled=not args.sources_only)
            if args.floor:
                print(discover(layouts[args.floor]).program(), end="")
                return 0
            for cumulative, own, name in importtime(layouts[args.importtime]):
                print(f"{cumulative / 1000:8.1f} ms {own / 1000:8.1f} ms  {name}")
        return 0
    measured = measure(args.functions or None, args.repeats, root=args.root, compiled=not args.sources_only)
    if args.json:
        print(json.dumps(measured, indent=1))
    else:
        from imgpipe_bench.coldstart_table import cold_start_table

        Console(width=1 << 12).print(cold_start_table(measured))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
