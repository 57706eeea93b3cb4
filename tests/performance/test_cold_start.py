"""Cold-start guards, like Powertools' tests/performance: import each handler in a fresh process.

The bounds are generous on purpose (shared CI machines vary by ±50%); they catch a regression
such as an eager heavy import, not a few milliseconds. The figures themselves come from
`imgpipe bench`, never from a timed test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))
ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "x",
    "STAGING_BUCKET": "staging",
    "DESTINATION_BUCKET": "destination",
    "TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:topic",
    "IDEMPOTENCY_TABLE": "table",
    "SOURCE_BUCKET": "source",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:sm",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
PROBE = """
import json, sys, time
started = time.perf_counter()
import app
elapsed = (time.perf_counter() - started) * 1000
print(json.dumps({"ms": elapsed, "modules": sorted(m for m in sys.modules if m.split(".")[0] in
      ("aws_xray_sdk", "pydantic", "PIL", "numpy", "aws_lambda_powertools"))}))
"""
BUDGET_MS = 1500


def cold_start(function: str) -> dict[str, object]:
    env = {**os.environ, **ENV, "PYTHONPATH": f"{ROOT / 'functions' / function}:{ROOT / 'layers' / 'shared'}"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT / "functions" / function,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.parametrize("function", FUNCTIONS)
def test_import_and_init_stay_within_budget(function: str) -> None:
    cold_start(function)  # the first run writes .pyc files, as `sam build` ships them
    result = cold_start(function)
    assert float(str(result["ms"])) < BUDGET_MS, result


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_tracing_sdk_or_validation_framework_is_imported(function: str) -> None:
    """Tracer would import the X-Ray SDK (~250 ms) even with tracing off; Parser would import pydantic."""
    modules = cold_start(function)["modules"]
    assert isinstance(modules, list)
    assert not [m for m in modules if m.startswith(("aws_xray_sdk", "pydantic", "numpy"))], modules


@pytest.mark.parametrize("function", ["store", "notify", "cleanup"])
def test_functions_that_never_touch_pixels_do_not_import_pillow(function: str) -> None:
    modules = cold_start(function)["modules"]
    assert isinstance(modules, list)
    assert not [m for m in modules if m.startswith("PIL")], modules
