"""Step Functions Local's mock configuration file (MockConfigFile.json), read for the embedded engine.

Format (https://docs.aws.amazon.com/step-functions/latest/dg/sfn-local-mock-cfg-file.html)::

    {"StateMachines": {NAME: {"TestCases": {CASE: {STATE: RESPONSE}}}},
     "MockedResponses": {RESPONSE: {"0": {"Return": ...}, "1-2": {"Throw": {"Error": E, "Cause": C}}}}}

Attempts count from "0", ranges are inclusive and must follow each other without gaps. The
result is built from moto's own mock classes, which its interpreter already evaluates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from moto.stepfunctions.parser.mocking.mock_config import (
    MockedResponse,
    MockedResponseReturn,
    MockedResponseThrow,
    MockTestCase,
    StateMockedResponses,
)


class MockConfigError(ValueError):
    """The mock configuration file is not in Step Functions Local's format."""


def load(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MockConfigError(f"{path}: {exc}") from exc
    validate(document, str(path))
    return dict(document)


def _range(text: str, where: str) -> tuple[int, int]:
    parts = text.split("-")
    try:
        bounds = [int(p) for p in parts]
    except ValueError:
        raise MockConfigError(f"{where}: attempt {text!r} is not a number or a range like '1-2'") from None
    if len(bounds) == 1:
        bounds.append(bounds[0])
    if len(bounds) != 2 or bounds[0] < 0 or bounds[1] < bounds[0]:
        raise MockConfigError(f"{where}: attempt range {text!r} is invalid")
    return bounds[0], bounds[1]


def validate(document: Any, where: str = "mock config") -> None:
    """Raise MockConfigError naming the first thing that is not in the expected format."""
    if not isinstance(document, dict):
        raise MockConfigError(f"{where}: the document must be an object")
    machines, responses = document.get("StateMachines"), document.get("MockedResponses")
    if not isinstance(machines, dict) or not isinstance(responses, dict):
        raise MockConfigError(f"{where}: needs objects 'StateMachines' and 'MockedResponses'")
    for name, response in responses.items():
        if not isinstance(response, dict) or not response:
            raise MockConfigError(f"{where}: MockedResponses.{name} must be a non-empty object")
        expected = 0
        for attempts, outcome in sorted(response.items(), key=lambda kv: _range(kv[0], f"{where}: {name}")[0]):
            start, end = _range(attempts, f"{where}: MockedResponses.{name}")
            if start != expected:
                raise MockConfigError(f"{where}: MockedResponses.{name} attempts must follow on from {expected}")
            expected = end + 1
            if not isinstance(outcome, dict) or len({"Return", "Throw"} & set(outcome)) != 1:
                raise MockConfigError(f"{where}: MockedResponses.{name}.{attempts} needs exactly one of Return, Throw")
            throw = outcome.get("Throw")
            if throw is not None and not (isinstance(throw, dict) and isinstance(throw.get("Error"), str)):
                raise MockConfigError(f"{where}: MockedResponses.{name}.{attempts}.Throw needs an Error string")
    for machine, spec in machines.items():
        cases = spec.get("TestCases") if isinstance(spec, dict) else None
        if not isinstance(cases, dict):
            raise MockConfigError(f"{where}: StateMachines.{machine} needs 'TestCases'")
        for case, states in cases.items():
            if not isinstance(states, dict):
                raise MockConfigError(f"{where}: {machine}.{case} must map state names to responses")
            for state, response_name in states.items():
                if response_name not in responses:
                    raise MockConfigError(f"{where}: {machine}.{case}.{state} names unknown response {response_name!r}")


def test_case(document: dict[str, Any], state_machine: str, case: str) -> MockTestCase:
    """The moto MockTestCase for ``state_machine#case``."""
    machine = document["StateMachines"].get(state_machine)
    if machine is None:
        raise MockConfigError(f"the mock config has no state machine {state_machine!r}")
    states = machine["TestCases"].get(case)
    if states is None:
        raise MockConfigError(f"the mock config has no test case {case!r} for {state_machine!r}")
    per_state = []
    for state, response_name in states.items():
        mocked: list[MockedResponse] = []
        for attempts, outcome in document["MockedResponses"][response_name].items():
            start, end = _range(attempts, response_name)
            if "Return" in outcome:
                mocked.append(MockedResponseReturn(start, end, outcome["Return"]))
            else:
                throw = outcome["Throw"]
                mocked.append(MockedResponseThrow(start, end, throw["Error"], str(throw.get("Cause", ""))))
        per_state.append(StateMockedResponses(state, response_name, mocked))
    return MockTestCase(state_machine, case, per_state)
