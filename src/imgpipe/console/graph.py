"""A state machine's definition as a graph for the browser to lay out: nodes and labelled edges, and
which edges one execution took."""

from __future__ import annotations

import itertools
from typing import Any, Final

START: Final = "__start__"
END: Final = "__end__"
#: Choice Rule comparison operators whose value labels the edge (``"PROCESS"`` reads better than the rule).
_COMPARISONS: Final = ("Equals", "LessThan", "GreaterThan", "Matches", "IsPresent", "IsNull", "IsString")


def _choice_label(rule: dict[str, Any]) -> str:
    for key, value in rule.items():
        if key.endswith(_COMPARISONS) and not key.endswith("Path"):
            return str(value)
    if "Condition" in rule:  # JSONata
        return "condition"
    return next((key.lower() for key in ("And", "Or", "Not") if key in rule), "choice")


def transitions(state: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(target, kind, label)`` for every way out of a state."""
    out: list[tuple[str, str, str]] = []
    for rule in state.get("Choices", []):
        out.append((rule["Next"], "choice", _choice_label(rule)))
    if "Default" in state:
        out.append((state["Default"], "default", "default"))
    if "Next" in state:
        out.append((state["Next"], "next", ""))
    for catcher in state.get("Catch", []):
        out.append((catcher["Next"], "catch", "catch " + ", ".join(catcher.get("ErrorEquals", []))))
    if state.get("End") or state.get("Type") in ("Succeed", "Fail"):
        out.append((END, "end", ""))
    return out


def build(definition: dict[str, Any]) -> dict[str, Any]:
    """``{"nodes": [...], "edges": [...]}`` of the top-level states (a Map or Parallel is one node)."""
    states: dict[str, Any] = definition.get("States", {})
    nodes: list[dict[str, Any]] = [{"id": START, "label": "Start", "type": "start"}]
    edges: list[dict[str, Any]] = [{"from": START, "to": definition.get("StartAt"), "kind": "start", "label": ""}]
    for name, state in states.items():
        nodes.append({"id": name, "label": name, "type": state.get("Type", "?"), "comment": state.get("Comment", "")})
        edges += [{"from": name, "to": to, "kind": kind, "label": label} for to, kind, label in transitions(state)]
    nodes.append({"id": END, "label": "End", "type": "end"})
    return {"nodes": nodes, "edges": edges}


def taken(graph: dict[str, Any], path: list[str], outcomes: dict[str, str], ended: bool) -> list[int]:
    """Indexes of the edges the execution took: from the start, between consecutive states entered
    (a Catch edge when the state was caught, another edge otherwise), and to the end once it ended."""
    edges: list[dict[str, Any]] = graph["edges"]
    steps = [(START, path[0])] if path else []
    steps += list(itertools.pairwise(path))
    if ended and path and any(e["from"] == path[-1] and e["to"] == END for e in edges):
        steps.append((path[-1], END))
    found: list[int] = []
    for origin, target in steps:
        candidates = [i for i, e in enumerate(edges) if e["from"] == origin and e["to"] == target]
        caught = outcomes.get(origin) == "caught"
        preferred = [i for i in candidates if (edges[i]["kind"] == "catch") == caught]
        chosen = (preferred or candidates)[:1]
        found += [i for i in chosen if i not in found]
    return found
