"""The project root is found in one place: $IMGPIPE_ROOT, the current directory's checkout, or this checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcloud import sam


def test_the_variable_names_the_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGPIPE_ROOT", str(tmp_path))
    assert sam.project_root() == tmp_path.resolve()


def test_a_checkout_is_found_from_any_directory_inside_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMGPIPE_ROOT", raising=False)
    (tmp_path / "template.yaml").write_text("Resources: {}\n", encoding="utf-8")
    (tmp_path / "functions").mkdir()
    inside = tmp_path / "events" / "deep"
    inside.mkdir(parents=True)
    monkeypatch.chdir(inside)
    assert sam.project_root() == tmp_path.resolve()


def test_elsewhere_it_is_the_checkout_the_package_runs_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMGPIPE_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    root = sam.project_root()
    assert (root / "template.yaml").is_file()
    assert (root / "src" / "localcloud" / "sam.py").resolve() == Path(sam.__file__).resolve()
