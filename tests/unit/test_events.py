"""events/*.json are usable execution inputs and describe what they claim."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline import keys

EVENTS = Path(__file__).resolve().parents[2] / "events"


def load(name: str) -> dict[str, Any]:
    document = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def test_every_event_is_listed_in_the_events_readme() -> None:
    readme = (EVENTS / "README.md").read_text(encoding="utf-8")
    files = sorted(p.name for p in EVENTS.glob("*.json"))
    assert len(files) >= 7
    missing = [name for name in files if f"`{name}`" not in readme]
    assert missing == []


def test_s3_event_matches_the_rule_and_decodes_to_the_manual_key(template: dict[str, Any]) -> None:
    event = load("s3-object-created.json")
    pattern = template["Resources"]["ImagePipeline"]["Properties"]["Events"]["ObjectCreated"]["Properties"]["Pattern"]
    assert event["source"] in pattern["source"]
    assert event["detail-type"] in pattern["detail-type"]
    prefix = template["Parameters"]["UploadPrefix"]["Default"]
    assert event["detail"]["object"]["key"].startswith(prefix)
    decoded = keys.decode_event_key(event["detail"]["object"]["key"])
    assert decoded == load("manual-execution.json")["key"] == "uploads/my holiday photo +1.jpg"


@pytest.mark.parametrize("name", sorted(p.name for p in EVENTS.glob("failure-*.json")))
def test_failure_inputs_have_the_shape_their_case_needs(name: str) -> None:
    event = load(name)
    if name == "failure-invalid-input.json":
        assert "detail" not in event
        assert not {"bucket", "key"} <= set(event), "must match neither accepted input shape"
    else:
        assert set(event) == {"bucket", "key"}
