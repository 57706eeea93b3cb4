"""Cold starts of the packaged functions: import + init of each handler in fresh processes.

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

``measure()`` imports each function's ``app`` module (module-level init included: settings, AWS
clients, the idempotency layer) in fresh ``python -X frozen_modules=on`` processes that cannot
write ``.pyc`` files, and reports the median and minimum against the budget: 250 ms for the steps
that touch pixels (they import Pillow on their first image, never at init), 150 ms for the rest.

    .venv/bin/python -m imgpipe_bench.coldstart [--repeats 7] [--importtime FUNCTION]
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
from typing import Final

from localcloud import sam

ROOT: Final = sam.ROOT
PIXEL_FUNCTIONS: Final = frozenset({"resize", "watermark"})
PIXEL_BUDGET_MS: Final = 250.0
GLUE_BUDGET_MS: Final = 150.0
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
    "SOURCE_BUCKET": "source",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:sm",
    "POWERTOOLS_METRICS_NAMESPACE": "ImagePipeline",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
#: Times ``import app`` and lists the modules it left loaded. Nothing but sys and time is imported first.
PROBE: Final = """\
import sys, time
started = time.perf_counter()
import app
elapsed = (time.perf_counter() - started) * 1000
import json
print(json.dumps({"ms": elapsed, "modules": sorted(sys.modules)}))
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
    """One fresh process: how long ``import app`` took and what it left in ``sys.modules``."""

    ms: float
    modules: frozenset[str]

    def loaded(self, *prefixes: str) -> list[str]:
        """The loaded modules that are, or are inside, one of these packages."""
        return sorted(m for m in self.modules if any(m == p or m.startswith(p + ".") for p in prefixes))


def functions(root: Path = ROOT) -> list[str]:
    return sorted(p.parent.name for p in (root / "functions").glob("*/app.py"))


def budget_ms(function: str) -> float:
    return PIXEL_BUDGET_MS if function in PIXEL_FUNCTIONS else GLUE_BUDGET_MS


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
    _copy_package(root / "layers" / "shared" / "pipeline", layer / "pipeline")
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


def probe(layout: Layout, *, python: str = sys.executable, env: Mapping[str, str] | None = None) -> Probe:
    """Import the function's app module once, in a fresh process."""
    done = _python(layout, python, ["-c", PROBE], env)
    result = json.loads(done.stdout.splitlines()[-1])
    return Probe(ms=float(result["ms"]), modules=frozenset(result["modules"]))


@contextmanager
def _build_dir(directory: Path | None) -> Iterator[Path]:
    if directory is not None:
        yield Path(directory)
        return
    with tempfile.TemporaryDirectory(prefix="imgpipe-coldstart-") as temporary:
        yield Path(temporary)


def measure(
    functions: Sequence[str] | None = None,
    repeats: int = 7,
    *,
    build_dir: Path | None = None,
    root: Path = ROOT,
    compiled: bool = True,
) -> dict[str, dict[str, float]]:
    """Median and minimum import + init time of each function over ``repeats`` fresh processes, and its budget.

    The functions take turns (one process each per round), so that a noisy moment of a shared machine
    spreads over all of them instead of falling on one.
    """
    with _build_dir(build_dir) as directory:
        layouts = package(directory, root=root, compiled=compiled)
        names = list(functions) if functions is not None else sorted(layouts)
        unknown = sorted(set(names) - set(layouts))
        if unknown:
            raise ValueError(f"no such function: {', '.join(unknown)}")
        times: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(repeats):
            for name in names:
                times[name].append(probe(layouts[name]).ms)
    return {
        name: {"median_ms": statistics.median(ms), "min_ms": min(ms), "budget_ms": budget_ms(name)}
        for name, ms in times.items()
    }


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
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--root", type=Path, default=ROOT, help="a checkout to measure (default: this one)")
    parser.add_argument("--sources-only", action="store_true", help="ship no .pyc (a python3.12 build method)")
    parser.add_argument("--importtime", metavar="FUNCTION", help="show -X importtime's biggest imports instead")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.importtime:
        with _build_dir(None) as directory:
            layouts = package(directory, root=args.root, compiled=not args.sources_only)
            for cumulative, own, name in importtime(layouts[args.importtime]):
                print(f"{cumulative / 1000:8.1f} ms {own / 1000:8.1f} ms  {name}")
        return 0
    figures = measure(args.functions or None, args.repeats, root=args.root, compiled=not args.sources_only)
    if args.json:
        print(json.dumps(figures, indent=1))
        return 0
    print(f"{'function':<10} {'median':>9} {'min':>9} {'budget':>8}")
    for name, f in figures.items():
        verdict = "ok" if f["median_ms"] <= f["budget_ms"] else "OVER"
        print(f"{name:<10} {f['median_ms']:7.1f}ms {f['min_ms']:7.1f}ms {f['budget_ms']:6.0f}ms  {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
