"""The floor of a function's cold start: what the AWS SDK and Powertools it uses cost on their own.

The floor is a program with nothing of ours in it: it imports boto3, the modules of the AWS SDK and
Powertools that the function's own code imports at init (Logger, Metrics, event classes, idempotency,
botocore's ...), and creates the function's clients through boto3. Nothing of it is typed by hand per
function: it is derived from the function's init, run once under ``DISCOVER`` in its packaged layout,
which records

- every ``import`` statement executed by the function's own modules (``app`` and the layer's
  ``pipeline``): ``builtins.__import__`` sees the importing module's name, so an import that
  Powertools makes for itself is left to Powertools, as it is in the floor. Those of a floor
  library (``floor_packages()``: boto3 and Powertools with all its extras, and every distribution
  they require, from their metadata) go into the floor; other third-party imports at init (Pillow,
  pyvips ...) are the function's own choice, counted as ours and listed under ``ours``;
- every client created (``botocore.session.Session.create_client``, which boto3's clients go
  through too): its service, region, session and the search paths of that session's data loader.

A client is its service and region on a session that reads botocore's data from somewhere: the
floor's clients read the same data as the function's (the layer's trimmed botocore data when
``pipeline.storage`` gives its session a loader over it), or the comparison would count a build
step as code of ours being fast. ``program(own_data=False)`` is the same floor on botocore's own
data, a boto3 function as it is usually written, for reference.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any, Final

#: The floor's libraries: the AWS SDK and Powertools (every extra of it), and what they require.
FLOOR_DISTRIBUTIONS: Final = ("boto3", "aws-lambda-powertools")
_NAME: Final = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")

#: Records, while ``import app`` runs, the imports made by the modules named in argv and the clients created.
DISCOVER: Final = """\
import builtins, json, sys
import botocore.session

first_party = frozenset(sys.argv[1:])
imports, clients, sessions = [], [], []
original_import = builtins.__import__
original_create_client = botocore.session.Session.create_client


def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
    module = original_import(name, globals, locals, fromlist, level)
    importer = (globals or {}).get("__name__") or ""
    if level == 0 and importer.partition(".")[0] in first_party:
        imports.append([importer, name, list(fromlist or ())])
    return module


def recording_create_client(self, service_name, region_name=None, *args, **kwargs):
    if not any(s is self for s in sessions):
        sessions.append(self)
    index = next(i for i, s in enumerate(sessions) if s is self)
    paths = list(self.get_component("data_loader").search_paths)
    clients.append({"service": service_name, "region": region_name, "session": index, "data": paths})
    return original_create_client(self, service_name, region_name, *args, **kwargs)


botocore.session.Session.create_client = recording_create_client
builtins.__import__ = recording_import
try:
    import app
finally:
    builtins.__import__ = original_import
    botocore.session.Session.create_client = original_create_client
default = botocore.session.Session().get_component("data_loader").search_paths
print(json.dumps({"imports": imports, "clients": clients, "default_data": list(default)}))
"""


@dataclass(frozen=True)
class Client:
    """One client the function creates at init: service, region (None: the environment's), session."""

    service: str
    region: str | None = None
    session: int = 0


@dataclass(frozen=True)
class Floor:
    """What a function's init needs from third parties, and the program that does only that."""

    function: str
    #: (module, names): ``import module`` when names is empty, else ``from module import names``; boto3 first.
    imports: tuple[tuple[str, tuple[str, ...]], ...]
    clients: tuple[Client, ...]
    #: Per session: the search paths of its data loader, or None for botocore's default loader.
    data: tuple[tuple[str, ...] | None, ...] = ()
    #: Third-party modules the function's code imports at init that are no floor library's (counted as ours).
    ours: tuple[str, ...] = ()

    @property
    def modules(self) -> list[str]:
        return [module for module, _ in self.imports]

    def as_json(self) -> dict[str, Any]:
        return {
            "imports": [f"from {m} import {', '.join(n)}" if n else f"import {m}" for m, n in self.imports],
            "clients": [c.service if c.region is None else f"{c.service} ({c.region})" for c in self.clients],
            "botocore_data": [list(paths) if paths else "botocore's own" for paths in self.data],
            "ours": list(self.ours),
        }

    def program(self, *, own_data: bool = True) -> str:
        """The floor as a module: its imports, then its clients (on the function's botocore data unless told not)."""
        lines = [
            f'"""Cold-start floor of {self.function}, derived from its init: the AWS SDK and Powertools only."""',
            "",
            *([f"# Also imported at init, counted as the function's own: {', '.join(self.ours)}"] if self.ours else []),
            *(f"from {m} import {', '.join(n)}" if n else f"import {m}" for m, n in self.imports),
        ]
        if not self.clients:
            return "\n".join(lines) + "\n"
        sessions = max(c.session for c in self.clients) + 1
        lines += ["import boto3.session", "import botocore.loaders", "import botocore.session", "", "_SESSIONS = []"]
        for index in range(sessions):
            paths = self.data[index] if own_data and index < len(self.data) else None
            lines.append(f"_session = botocore.session.get_session()  # session {index}")
            if paths is not None:
                loader = f"Loader(extra_search_paths={list(paths)!r}, include_default_search_paths=False)"
                lines.append(f'_session.register_component("data_loader", botocore.loaders.{loader})')
            lines.append("_SESSIONS.append(boto3.session.Session(botocore_session=_session))")
        lines.append("CLIENTS = [")
        for client in self.clients:
            region = "" if client.region is None else f", region_name={client.region!r}"
            lines.append(f"    _SESSIONS[{client.session}].client({client.service!r}{region}),")
        lines.append("]")
        return "\n".join(lines) + "\n"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def floor_packages(roots: tuple[str, ...] = FLOOR_DISTRIBUTIONS) -> frozenset[str]:
    """The top-level modules of the roots and of every installed distribution they require, transitively
    (the roots' extras included: Powertools' tracer, parser, validation ... depend on them)."""
    wanted: set[str] = set()
    pending = [(name, True) for name in roots]
    while pending:
        name, with_extras = pending.pop()
        if _canonical(name) in wanted:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an extra that is not installed, so never imported
        wanted.add(_canonical(name))
        for requirement in dist.requires or []:
            text, _, marker = requirement.partition(";")
            match = _NAME.match(text)
            if match and (with_extras or "extra" not in marker):
                pending.append((match.group(1), False))
    return frozenset(
        top
        for top, dists in metadata.packages_distributions().items()
        if top.isidentifier() and not top.startswith("__") and any(_canonical(d) in wanted for d in dists)
    )


def third_party(module: str, first_party: Iterable[str]) -> bool:
    """Neither the function's own code nor the standard library."""
    top = module.partition(".")[0]
    return top not in set(first_party) and top not in sys.stdlib_module_names


def _imports(records: Iterable[Sequence[Any]], packages: Collection[str]) -> list[tuple[str, tuple[str, ...]]]:
    """Merge the recorded imports of floor libraries per module, in the order first seen; boto3 first."""
    merged: dict[str, list[str]] = {"boto3": []}
    for _importer, module, names in records:
        if module.partition(".")[0] not in packages:
            continue
        known = merged.setdefault(module, [])
        known.extend(n for n in names if n not in known)
    return [(module, tuple(names)) for module, names in merged.items()]


def derive(
    function: str, discovered: Mapping[str, Any], first_party: Iterable[str], packages: Collection[str] | None = None
) -> Floor:
    """The floor of a function from what ``DISCOVER`` recorded of its init (floor libraries: ``floor_packages()``)."""
    first_party = frozenset(first_party)
    packages = floor_packages() if packages is None else packages
    records = discovered["imports"]
    clients = tuple(Client(c["service"], c.get("region"), int(c.get("session", 0))) for c in discovered["clients"])
    default = list(discovered.get("default_data", []))
    data: dict[int, tuple[str, ...] | None] = {}
    for record in discovered["clients"]:
        paths = list(record.get("data", default))
        data.setdefault(int(record.get("session", 0)), None if paths == default else tuple(paths))
    ours = {r[1] for r in records if third_party(r[1], first_party) and r[1].partition(".")[0] not in packages}
    return Floor(
        function=function,
        imports=tuple(_imports(records, packages)),
        clients=clients,
        data=tuple(data.get(i) for i in range(len(data))),
        ours=tuple(sorted(ours)),
    )
