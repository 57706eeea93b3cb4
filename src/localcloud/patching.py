"""How the local cloud changes moto: a ``Patch`` names what it replaces; applying and undoing are written here once.

moto is pinned exactly (pyproject.toml). Every patch closes one or more gaps measured in that version and
names them (``closes``); each emulated service declares its patches beside its behaviour
(``localcloud.services``), and each gap has a pair of tests beside that service: ``test_gap_<name>``
(unpatched moto still shows it: an upgrade that fixes it fails there and names the patch to drop) and
``test_patched_<name>`` (the patch closes it).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import moto

MOTO_VERSION = "5.2.5"

#: An attribute the owner did not define itself (it was inherited): undo deletes the replacement.
_INHERITED = object()


@dataclass(frozen=True)
class Patch:
    """While the local cloud runs, ``owner.attribute`` (a class or module attribute of moto) is ``replacement``."""

    closes: tuple[str, ...]
    owner: Any
    attribute: str
    replacement: Any

    @property
    def target(self) -> str:
        """``Owner.attribute``, as the docs and the tests name it."""
        return f"{getattr(self.owner, '__qualname__', getattr(self.owner, '__name__', self.owner))}.{self.attribute}"


@dataclass(frozen=True)
class _Applied:
    patch: Patch
    own: Any  # what the owner's own namespace held (restored by undo), or _INHERITED
    original: Any  # what the attribute resolved to: the replacement's way to the original behaviour


_lock = threading.RLock()
_applied: dict[tuple[int, str], _Applied] = {}


def apply(patches: Iterable[Patch]) -> None:
    """Install the patches not yet installed (applying twice keeps the first originals)."""
    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(f"the local cloud patches moto {MOTO_VERSION}; moto {moto.__version__} is installed")
    with _lock:
        for patch in patches:
            key = (id(patch.owner), patch.attribute)
            if key in _applied:
                continue
            own = vars(patch.owner).get(patch.attribute, _INHERITED)
            original = inspect.getattr_static(patch.owner, patch.attribute)
            _applied[key] = _Applied(patch, own, original)
            setattr(patch.owner, patch.attribute, patch.replacement)


def undo() -> None:
    """Restore every patched attribute, last applied first."""
    with _lock:
        for applied in reversed(list(_applied.values())):
            patch = applied.patch
            if applied.own is _INHERITED:
                delattr(patch.owner, patch.attribute)
            else:
                setattr(patch.owner, patch.attribute, applied.own)
        _applied.clear()


def applied() -> list[Patch]:
    """The patches installed now, in the order they were."""
    with _lock:
        return [a.patch for a in _applied.values()]


def original(owner: Any, attribute: str) -> Any:
    """What ``owner.attribute`` was before it was patched, unbound (a classmethod stays a classmethod object)."""
    with _lock:
        found = _applied.get((id(owner), attribute))
    if found is None:
        raise RuntimeError(
            f"{getattr(owner, '__name__', owner)}.{attribute} is not patched (the local cloud is not running)"
        )
    return found.original


class Slot[T]:
    """The one object a patch calls back into (the local cloud's Lambda workers, its event delivery)."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._value: T | None = None

    def attach(self, value: T | None) -> None:
        self._value = value

    def get(self) -> T:
        if self._value is None:
            raise RuntimeError(f"{self._what} is not attached (the local cloud is not running)")
        return self._value
