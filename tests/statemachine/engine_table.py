"""Render the engines table of docs/testing.md from out/statemachine-results/<engine>.json (``make engine-table``).

The state-machine suite writes one file per engine after a run of its whole suite on that engine
(tests/statemachine/conftest.py); this replaces what stands between the two marker comments of
docs/testing.md with a table of every case and test, one column per engine that has a file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "out" / "statemachine-results"
DOC = ROOT / "docs" / "testing.md"
START = "<!-- engine-table:start (make engine-table writes this table) -->"
END = "<!-- engine-table:end -->"
#: The engines in column order, and what to say of one that has no results here.
ENGINES = {
    "embedded": "always runs",
    "sfn-local": "not run here: it needs Docker (make test-sfn-local)",
    "localstack": "not run yet: make test-localstack",
}
MARKS = {"passed": "passed", "failed": "**failed**", "skipped": "skipped"}


def order(label: str) -> tuple[int, str]:
    """Pipeline cases first, then the backfill's, then the other tests."""
    if label.startswith("Backfill: "):
        return 1, label
    return (2 if "::" in label else 0), label


def render(runs: dict[str, dict[str, Any]]) -> str:
    engines = [engine for engine in ENGINES if engine in runs]
    labels = sorted({label for run in runs.values() for label in run["results"]}, key=order)
    header = ["case", *(f"{engine} ({runs[engine]['version']})" for engine in engines)]
    lines = [f"| {' | '.join(header)} |", f"| {' | '.join(['---'] * len(header))} |"]
    for label in labels:
        cells = [MARKS.get(runs[engine]["results"].get(label, ""), "not run") for engine in engines]
        lines.append(f"| {label.replace('|', '\\|')} | {' | '.join(cells)} |")
    totals = []
    for engine in engines:
        results = list(runs[engine]["results"].values())
        counts = ", ".join(f"{results.count(outcome)} {outcome}" for outcome in MARKS if outcome in results)
        totals.append(f"{engine}: {counts} (run {runs[engine]['run']})")
    missing = [f"{engine}: {why}" for engine, why in ENGINES.items() if engine not in runs]
    return "\n".join([*lines, "", *(f"- {line}" for line in totals + missing)])


def main() -> int:
    runs = {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(RESULTS.glob("*.json"))}
    if not runs:
        print(f"no results in {RESULTS}: run the state-machine suite first (make test)", file=sys.stderr)
        return 2
    text = DOC.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"{DOC} has no {START} ... {END} markers", file=sys.stderr)
        return 2
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    DOC.write_text(f"{before}{START}\n{render(runs)}\n{END}{after}", encoding="utf-8")
    print(f"{DOC.relative_to(ROOT)}: the engines table from {', '.join(sorted(runs))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
