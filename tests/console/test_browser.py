"""The console in a real headless Chromium, driven as a person would: drop a photo and a broken file,
watch both executions end, open the failed one, start one from events/, filter and page the list,
read the messages; a screenshot of every page at 1280 and 390 px wide in out/screenshots/."""

from __future__ import annotations

import base64
import json
import re
import signal
import subprocess
import urllib.request
from typing import Any

import pytest
from playwright.sync_api import Locator, expect

from localcloud.cloud import aws_client, free_port
from tests.console.conftest import BIN, SCREENSHOTS, Served, Tab, photo, to_docs_png

pytestmark = pytest.mark.slow
ENDED_S = 180_000  # ms: how long an upload may take to end on a busy 2-core machine
PHOTO = photo()
BROKEN = PHOTO[: len(PHOTO) // 2]
WIDTHS = (1280, 390)


def drop(tab: Tab, selector: str, name: str, body: bytes, kind: str) -> None:
    """Drop a file on ``selector`` as a person drags one there: a drop event carrying a DataTransfer."""
    transfer = tab.page.evaluate_handle(
        """([name, data, kind]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: kind }));
            return transfer;
        }""",
        [name, base64.b64encode(body).decode(), kind],
    )
    tab.page.dispatch_event(selector, "dragenter", {"dataTransfer": transfer})
    tab.page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def card(tab: Tab, name: str) -> Any:
    return tab.page.locator("#uploads-list article.upload", has=tab.page.locator(f"h3 a:text-is('{name}')"))


def test_drop_a_photo_and_a_broken_file_and_watch_both_end(tab: Tab) -> None:
    tab.go("/uploads")
    drop(tab, "#dropzone", "photo.jpg", PHOTO, "image/jpeg")
    tab.page.set_input_files("#files", files=[{"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": BROKEN}])
    expect(tab.page.locator("#progress li[data-state=ok]")).to_have_count(2)
    expect(card(tab, "photo.jpg").locator(".badge")).to_have_text("SUCCEEDED", timeout=ENDED_S)
    expect(card(tab, "broken.jpg").locator(".badge")).to_have_text("FAILED", timeout=ENDED_S)
    expect(card(tab, "broken.jpg")).to_contain_text("CorruptImage")

    images = card(tab, "photo.jpg").locator("img")
    expect(images).to_have_count(3)
    tab.page.wait_for_function(
        "sel => [...document.querySelectorAll(sel)].every((i) => i.complete && i.naturalWidth > 0)",
        arg="#uploads-list article.upload img",
    )
    widths = images.evaluate_all("all => all.map((i) => i.naturalWidth)")
    assert sorted(widths) == [320, 1024, 1600]
    captions = card(tab, "photo.jpg").locator("figcaption").all_inner_texts()
    assert all(re.fullmatch(r"\d+\u00d7\d+ \u00b7 jpeg \u00b7 [\d,]+ B", c) for c in captions), captions
    manifest = card(tab, "photo.jpg").locator("details.manifest")
    manifest.locator("summary").click()
    expect(manifest.locator("pre")).to_contain_text('"renditions"')
    expect(manifest.locator("summary")).to_contain_text("/photo.jpg/manifest.json")
    link = card(tab, "photo.jpg").locator("a:text-is('execution')")
    assert (link.get_attribute("href") or "").startswith("/executions/")
    for width in WIDTHS:
        tab.page.set_viewport_size({"width": width, "height": 900})
        tab.shoot("uploads")
    card(tab, "photo.jpg").locator("h3 a").click()
    expect(tab.page.locator("h1")).to_contain_text("Upload")
    expect(tab.page.locator("article.upload img")).to_have_count(3)
    for width in WIDTHS:
        tab.page.set_viewport_size({"width": width, "height": 900})
        tab.shoot("upload")


def _open_execution_of(tab: Tab, key_part: str) -> None:
    tab.go("/executions")
    row = tab.page.locator("table.executions tbody tr", has_text=key_part).first
    row.locator("a.execution-name").click()
    expect(tab.page.locator("#graph[data-ready=true]")).to_be_attached()


def test_the_failed_execution_shows_its_failed_state_error_and_path(tab: Tab) -> None:
    _open_execution_of(tab, "broken.jpg")
    page = tab.page
    expect(page.locator("#execution-status")).to_have_text("FAILED")
    expect(page.locator("#execution-error")).to_have_text("CorruptImage")

    def node(name: str) -> Locator:
        found: Locator = page.locator(f'.node[data-state="{name}"]')
        return found

    expect(node("Failed")).to_have_attribute("data-outcome", "failed")
    for name in ("Validate", "Route", "Cleanup", "Failed or Superseded", "Publish Failure"):
        expect(node(name)).to_have_attribute("data-outcome", "succeeded")
    for name in ("Resize", "Watermark", "Store", "Notify", "Superseded"):
        expect(node(name)).to_have_attribute("data-outcome", "not-entered")
    for target in ("Cleanup", "Publish Failure", "Failed"):
        expect(page.locator(f'.edge.taken[data-to="{target}"]')).to_have_count(1)
    expect(page.locator('.edge.taken[data-to="Resize"]')).to_have_count(0)

    details = page.locator("#state-details")
    node("Publish Failure").click()
    expect(details.locator("table.attempts tbody tr")).to_have_count(1)
    expect(details).to_contain_text("Input")
    node("Failed").click()
    expect(details.locator("h3")).to_contain_text("Failed")
    expect(details).to_contain_text("CorruptImage")
    expect(details).to_contain_text("truncated")

    page.set_viewport_size({"width": 1280, "height": 1200})
    page.evaluate("window.scrollTo(0, 0)")
    docs = tab.shoot("console-execution-viewport", full_page=False)
    to_docs_png(docs, SCREENSHOTS / "console-execution.png")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        tab.shoot("execution-failed")


def test_keyboard_focus_reaches_the_states_and_enter_opens_one(tab: Tab) -> None:
    _open_execution_of(tab, "photo.jpg")
    page = tab.page
    page.locator("body").focus()
    for _ in range(40):
        page.keyboard.press("Tab")
        focused = page.evaluate("() => document.activeElement.closest('.node')?.dataset.state ?? null")
        if focused:
            break
    assert focused, "Tab never reached a state of the graph"
    page.keyboard.press("Enter")
    expect(page.locator("#state-details h3")).to_contain_text(focused)
    assert page.locator(f'.node[data-state="{focused}"]').get_attribute("aria-pressed") == "true"
    page.keyboard.press("ArrowDown")
    moved = page.evaluate("() => document.activeElement.closest('.node')?.dataset.state ?? null")
    assert moved, "focus stays on the graph"
    assert moved != focused, "arrow keys move between states"
    page.keyboard.press(" ")
    expect(page.locator("#state-details h3")).to_contain_text(moved)
    expect(page.locator('.node[data-state="Notify"]')).to_have_attribute("data-outcome", "succeeded")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        tab.shoot("execution-succeeded")


def test_start_an_execution_from_an_events_input(tab: Tab, served: Served) -> None:
    page = tab.page
    tab.go("/start")
    page.select_option("#example", "manual-execution.json")
    expect(page.locator("#input")).to_have_value(re.compile(served.outputs["SourceBucketName"]))
    expect(page.locator("#input")).not_to_have_value(re.compile("your-source-bucket"))
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        tab.shoot("start")
    page.fill("#input", '{"bucket": "nope", "key": ')
    page.click("text=Start execution >> nth=-1")
    expect(page.locator("#input-error")).to_contain_text("not valid JSON")
    expect(page.locator("#input")).to_have_attribute("aria-invalid", "true")
    assert page.url.endswith("/start"), "nothing was sent"
    page.select_option("#example", "failure-missing-object.json")
    page.select_option("#example", "manual-execution.json")
    expect(page.locator("#input-error")).to_be_empty()
    page.locator("#start-form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/executions/[^/]+$"))
    expect(page.locator("#execution-status")).to_have_text("SUCCEEDED", timeout=ENDED_S)
    expect(page.locator('.node[data-state="Notify"]')).to_have_attribute("data-outcome", "succeeded")
    expect(page.locator("table.history tbody tr").last).to_contain_text("ExecutionSucceeded")
    expect(page.locator("#execution-more")).to_contain_text("Execution output")
    expect(page.locator(".facts").first).to_contain_text("uploads/my holiday photo +1.jpg")


def test_the_list_filters_by_status_and_pages(tab: Tab, served: Served) -> None:
    sfn = aws_client("stepfunctions", served.ready["endpointUrl"])
    machine, bucket = served.outputs["StateMachineArn"], served.outputs["SourceBucketName"]
    for n in range(10):  # each ends quickly as SourceMissing
        sfn.start_execution(
            stateMachineArn=machine, input=f'{{"bucket": "{bucket}", "key": "uploads/missing-{n}.jpg"}}'
        )
    page = tab.page
    tab.go("/executions")
    page.select_option("#status", "FAILED")
    page.wait_for_url(re.compile(r"status=FAILED"))
    rows = page.locator("table.executions tbody tr[data-status]")
    expect(rows.first).to_be_visible()
    assert set(rows.evaluate_all("all => all.map((r) => r.dataset.status)")) == {"FAILED"}
    expect(page.locator("table.executions")).to_contain_text("broken.jpg", timeout=ENDED_S)
    page.select_option("#status", "")
    page.select_option("#size", "10")
    page.wait_for_url(re.compile(r"size=10"))
    expect(rows).to_have_count(10)
    first = rows.evaluate_all("all => all.map((r) => r.querySelector('a.execution-name').textContent)")
    page.click("a[rel=next]")
    expect(rows.first).not_to_have_text(re.compile(re.escape(first[0])))
    second = rows.evaluate_all("all => all.map((r) => r.querySelector('a.execution-name').textContent)")
    assert second
    assert not set(first) & set(second)
    page.click("a[rel=prev]")
    expect(rows.first.locator("a.execution-name")).to_have_text(first[0])
    tab.go("/executions")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        tab.shoot("executions")


def test_messages_show_what_a_subscriber_received(tab: Tab) -> None:
    page = tab.page
    tab.go("/messages")
    cards = page.locator("#messages-list article.message")
    expect(cards.filter(has_text="photo.jpg").first).to_have_attribute("data-status", "SUCCEEDED")
    expect(cards.filter(has_text="broken.jpg").first).to_have_attribute("data-status", "FAILED")
    page.select_option("#kind", "failure")
    page.wait_for_url(re.compile(r"kind=failure"))
    expect(cards.filter(has_text="photo.jpg")).to_have_count(0)
    assert set(cards.evaluate_all("all => all.map((c) => c.dataset.status)")) == {"FAILED"}
    expect(page.locator("#dead-letter")).to_contain_text("about 0 messages")
    tab.go("/messages")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        tab.shoot("messages")


@pytest.mark.parametrize("path", ["/executions", "/start", "/uploads", "/messages", "execution", "upload"])
def test_every_control_is_labelled_and_a_phone_needs_no_sideways_scrolling(tab: Tab, served: Served, path: str) -> None:
    page = tab.page
    if path == "execution":
        _open_execution_of(tab, "photo.jpg")
    elif path == "upload":
        with urllib.request.urlopen(served.ready["apiUrl"] + "/uploads?limit=50", timeout=30) as reply:
            listed = json.loads(reply.read())["uploads"]
        tab.go("/uploads/" + next(u["id"] for u in listed if u["key"].endswith("/photo.jpg")))
    else:
        tab.go(path)
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button')]
            .filter((e) => e.type !== 'hidden')
            .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
            .map((e) => e.outerHTML)"""
    )
    assert unlabelled == []
    assert page.locator("img:not([alt])").count() == 0
    assert page.locator("h1").count() == 1
    page.set_viewport_size({"width": 390, "height": 844})
    overflow = page.evaluate("() => document.documentElement.scrollWidth")
    assert overflow <= 390, f"{path} is {overflow} px wide on a 390 px phone"


def test_imgpipe_console_against_a_running_serve(served: Served) -> None:
    """The command a user runs against a deployed stack, here pointed at the local cloud's endpoint."""
    port = free_port()
    command = [str(BIN / "imgpipe"), "console", "--stack", "imgpipe", "--port", str(port)]
    command += ["--endpoint-url", served.ready["endpointUrl"]]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.rstrip().endswith(f"http://127.0.0.1:{port}"), line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/executions", timeout=30) as reply:
            assert "broken.jpg" in reply.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/messages", timeout=30) as reply:
            assert "imgpipe-console-" in reply.read().decode(), "on a local cloud it subscribes by itself"
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "stopped" in stderr
