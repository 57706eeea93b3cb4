"""The execution page's colours for retries and catches, in Chromium: a local cloud in this process
(so faults can be injected) with the console beside it. A Resize whose worker is killed once is
retried; a Watermark whose worker keeps dying is caught and the failure branch runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Locator, expect

from imgpipe.console.backend import local_backend
from imgpipe.console.server import ConsoleServer
from localcloud.cloud import LocalCloud, Stack
from localcloud.faults import InvocationFault
from tests.console.conftest import Tab, need_chromium, photo

pytestmark = pytest.mark.slow
WIDTHS = (1280, 390)


@dataclass
class Faulted:
    cloud: LocalCloud
    stack: Stack
    console: str
    executions: dict[str, str]  # key -> execution name


def _run(cloud: LocalCloud, stack: Stack, key: str, fault: InvocationFault) -> str:
    """Upload ``key`` with ``fault`` armed; the name of its execution once it has ended."""
    cloud.inject_fault(fault)
    sfn = cloud.client("stepfunctions")
    before = {e["executionArn"] for e in sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]}
    cloud.client("s3").put_object(Bucket=stack.source_bucket, Key=key, Body=photo(900, 600))
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        listed = sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
        ended = [e for e in listed if e["executionArn"] not in before and e["status"] != "RUNNING"]
        if ended:
            cloud.clear_faults()
            return str(ended[0]["name"])
        time.sleep(0.2)
    raise TimeoutError(key)


@pytest.fixture(scope="module")
def faulted() -> Iterator[Faulted]:
    need_chromium()
    with LocalCloud(time_scale=0.01) as cloud:
        stack = cloud.deploy()
        with ConsoleServer(local_backend(cloud.endpoint), port=0, subscribe=True) as console:
            names = {
                "retried": _run(
                    cloud, stack, "uploads/retried.jpg", InvocationFault(function="ResizeFunction", count=1)
                ),
                "caught": _run(
                    cloud, stack, "uploads/caught.jpg", InvocationFault(function="WatermarkFunction", count=4)
                ),
            }
            yield Faulted(cloud, stack, console.url, names)


@pytest.fixture
def page_of(browser: Any, faulted: Faulted) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = Tab(context.new_page(), faulted.console)
    opened.page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
    yield opened
    context.close()
    assert opened.errors == []


def _node(tab: Tab, name: str) -> Locator:
    found: Locator = tab.page.locator(f'.node[data-state="{name}"]')
    return found


def test_a_retried_state_says_how_often_and_shows_each_attempt(page_of: Tab, faulted: Faulted) -> None:
    page_of.go("/executions/" + faulted.executions["retried"])
    expect(page_of.page.locator("#execution-status")).to_have_text("SUCCEEDED")
    resize = _node(page_of, "Resize")
    expect(resize).to_have_attribute("data-outcome", "retried")
    expect(resize).to_have_attribute("data-retries", "1")
    expect(resize.locator("text.sub")).to_have_text("retried 1\u00d7")
    resize.click()
    attempts = page_of.page.locator("#state-details table.attempts tbody tr")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(0)).to_contain_text("Runtime.ExitError")
    expect(attempts.nth(1)).to_contain_text("succeeded")
    for width in WIDTHS:
        page_of.page.set_viewport_size({"width": width, "height": 900})
        page_of.shoot("execution-retried")


def test_a_caught_state_and_the_failure_branch(page_of: Tab, faulted: Faulted) -> None:
    page_of.go("/executions/" + faulted.executions["caught"])
    expect(page_of.page.locator("#execution-error")).to_have_text("Runtime.ExitError")
    expect(_node(page_of, "Watermark")).to_have_attribute("data-outcome", "caught")
    expect(_node(page_of, "Resize")).to_have_attribute("data-outcome", "succeeded")
    for name in ("Cleanup", "Failed or Superseded", "Publish Failure"):
        expect(_node(page_of, name)).to_have_attribute("data-outcome", "succeeded")
    expect(_node(page_of, "Failed")).to_have_attribute("data-outcome", "failed")
    expect(_node(page_of, "Store")).to_have_attribute("data-outcome", "not-entered")
    catch = page_of.page.locator('.edge.taken.kind-catch[data-from="Watermark"][data-to="Cleanup"]')
    expect(catch).to_have_count(1)
    _node(page_of, "Watermark").click()
    expect(page_of.page.locator("#state-details table.attempts tbody tr")).to_have_count(4)
    expect(page_of.page.locator("#state-details .state-error")).to_contain_text("Runtime.ExitError")
    for width in WIDTHS:
        page_of.page.set_viewport_size({"width": width, "height": 900})
        page_of.shoot("execution-caught")


def test_a_running_execution_updates_live(page_of: Tab, faulted: Faulted) -> None:
    """Opened while it runs (a Watermark worker dying four times keeps it running for seconds), the page
    polls, recolours the graph and fills the history until the execution ends."""
    cloud, stack = faulted.cloud, faulted.stack
    sfn = cloud.client("stepfunctions")
    before = {e["executionArn"] for e in sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]}
    cloud.inject_fault(InvocationFault(function="WatermarkFunction", count=4))
    try:
        cloud.client("s3").put_object(Bucket=stack.source_bucket, Key="uploads/live.jpg", Body=photo(900, 600))
        deadline = time.monotonic() + 60
        while not (
            new := [
                e
                for e in sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
                if e["executionArn"] not in before
            ]
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        response = page_of.go("/executions/" + new[0]["name"])
        assert 'data-status="RUNNING"' in response.text(), "opened while it runs"
        page = page_of.page
        expect(page.locator("#execution-status")).to_have_text("FAILED", timeout=120_000)
    finally:
        cloud.clear_faults()
    expect(_node(page_of, "Watermark")).to_have_attribute("data-outcome", "caught")
    expect(_node(page_of, "Failed")).to_have_attribute("data-outcome", "failed")
    expect(page.locator("table.history tbody tr").last).to_contain_text("ExecutionFailed")
    assert int(page.locator("#graph").get_attribute("data-refreshes") or 0) > 0, "the graph was recoloured live"
    assert page.locator("#execution-live[hx-trigger]").count() == 0, "polling stops once it has ended"
