"""localcloud.patching on plain classes and modules: what apply installs, undo restores exactly."""

from __future__ import annotations

import types
from typing import Any

import pytest

from localcloud import patching
from localcloud.patching import Patch, Slot


class Base:
    def inherited(self) -> str:
        return "base"


class Owner(Base):
    def own(self) -> str:
        return "own"

    @classmethod
    def make(cls) -> str:
        return f"made by {cls.__name__}"


def _replaced_own(self: Owner) -> str:
    return "replaced " + str(patching.original(Owner, "own")(self))


def _replaced_make(cls: type[Owner]) -> str:
    return "replaced " + str(patching.original(Owner, "make").__func__(cls))


def _replaced_inherited(self: Owner) -> str:
    return "replaced " + str(patching.original(Owner, "inherited")(self))


@pytest.fixture
def module() -> types.ModuleType:
    made = types.ModuleType("made")
    made.value = 1  # type: ignore[attr-defined]
    return made


@pytest.fixture(autouse=True)
def _nothing_left_applied() -> Any:
    assert not patching.applied()
    yield
    patching.undo()


def test_apply_and_undo_restore_own_inherited_and_class_attributes(module: types.ModuleType) -> None:
    own, make = vars(Owner)["own"], vars(Owner)["make"]
    patches = [
        Patch(("own",), Owner, "own", _replaced_own),
        Patch(("make",), Owner, "make", classmethod(_replaced_make)),
        Patch(("inherited",), Owner, "inherited", _replaced_inherited),
        Patch(("module",), module, "value", 2),
    ]
    patching.apply(patches)
    assert (Owner().own(), Owner.make(), Owner().inherited(), module.value) == (
        "replaced own",
        "replaced made by Owner",
        "replaced base",
        2,
    )
    assert patching.applied() == patches
    patching.undo()
    assert vars(Owner)["own"] is own
    assert vars(Owner)["make"] is make
    assert "inherited" not in vars(Owner), "an inherited attribute is inherited again, not copied onto the class"
    assert Owner().inherited() == "base"
    assert module.value == 1
    assert patching.applied() == []


def test_applying_twice_keeps_the_first_original() -> None:
    own = vars(Owner)["own"]
    patch = Patch(("own",), Owner, "own", _replaced_own)
    patching.apply([patch])
    patching.apply([patch])
    assert patching.applied() == [patch]
    assert patching.original(Owner, "own") is own
    assert Owner().own() == "replaced own"


def test_original_of_an_unpatched_attribute_is_an_error() -> None:
    with pytest.raises(RuntimeError, match=r"Owner\.own is not patched"):
        patching.original(Owner, "own")


def test_patch_names_its_target(module: types.ModuleType) -> None:
    assert Patch(("x",), Owner, "own", None).target == "Owner.own"
    assert Patch(("x",), module, "value", None).target == "made.value"


def test_slot_hands_out_what_was_attached() -> None:
    slot: Slot[str] = Slot("the thing")
    with pytest.raises(RuntimeError, match="the thing is not attached"):
        slot.get()
    slot.attach("attached")
    assert slot.get() == "attached"
    slot.attach(None)
    with pytest.raises(RuntimeError, match="the thing is not attached"):
        slot.get()
