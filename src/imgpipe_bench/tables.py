"""Cells shared by the measurements' tables: a target's verdict and a figure that may be missing."""

from __future__ import annotations

from typing import Any


def mark(met: bool | None) -> str:
    """A target's verdict, in rich markup: yes (green), no (red), or n/a when it was not measured."""
    return "n/a" if met is None else ("[green]yes[/]" if met else "[red]no[/]")


def number(value: Any, fmt: str) -> str:
    """``value`` formatted with ``fmt``, or ``-`` when there is none."""
    return "-" if value is None else format(value, fmt)
