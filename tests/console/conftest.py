"""Browser tests' fixtures: Debian's Chromium driven by Playwright (never a browser Playwright downloads),
and ``imgpipe serve`` with its console, as a user starts it."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from localcloud.cloud import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "out" / "screenshots"
BIN = Path(sys.executable).parent


def need_chromium() -> None:
    """Skip without Chromium on a developer's machine; in CI (``CI`` set) its absence is a failure."""
    if CHROMIUM.is_file():
        return
    reason = f"{CHROMIUM} is missing: apt-get install -y chromium (the browser tests never download one)"
    if os.environ.get("CI"):
        pytest.fail(reason + "; CI must run them", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Served:
    """A running ``imgpipe serve``: what it printed once ready."""

    proc: subprocess.Popen[str]
    ready: dict[str, Any]
    stderr: Path

    @property
    def console(self) -> str:
        return str(self.ready["consoleUrl"])

    @property
    def outputs(self) -> dict[str, str]:
        return dict(self.ready["outputs"])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    need_chromium()  # no local cloud for nothing
    tmp = tmp_path_factory.mktemp("serve")
    stderr = tmp / "serve.stderr"
    ports = [str(free_port()) for _ in range(3)]
    command = [str(BIN / "imgpipe"), "serve", "--json", "--port", ports[0], "--api-port", ports[1]]
    command += ["--console-port", ports[2], "--time-scale", "0.01"]
    with stderr.open("w") as err:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
    try:
        line: list[str] = []
        reader = threading.Thread(
            target=lambda: line.append(proc.stdout.readline() if proc.stdout else ""), daemon=True
        )
        reader.start()
        reader.join(180)
        assert line, f"imgpipe serve never got ready:\n{stderr.read_text()[-3000:]}"
        assert line[0].strip(), f"imgpipe serve exited:\n{stderr.read_text()[-3000:]}"
        yield Served(proc, json.loads(line[0]), stderr)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Tab:
    """A page of the console, and what its console reported."""

    page: Any
    base: str
    errors: list[str] = field(default_factory=list)

    def go(self, path: str) -> Any:
        return self.page.goto(self.base + path)

    def shoot(self, name: str, *, full_page: bool = True) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        width = self.page.viewport_size["width"]
        wide = self.page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= width, f"{name} is {wide} px wide in a {width} px window: it scrolls sideways"
        path = SCREENSHOTS / f"{name}-{width}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def tab(browser: Any, served: Served) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    opened = Tab(page, served.console)
    page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: opened.errors.append(str(e)))
    yield opened
    context.close()
    assert opened.errors == [], "the browser's console reported errors"


def photo(width: int = 1600, height: int = 1200) -> bytes:
    """A photograph-like JPEG: gradients and shapes, so the renditions have something to show."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    overlay = Image.radial_gradient("L").resize((width, height))
    image = Image.merge(
        "RGB", (image.getchannel(0), overlay, Image.linear_gradient("L").rotate(90).resize((width, height)))
    )
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88)
    return out.getvalue()


def to_docs_png(screenshot: Path, target: Path) -> None:
    """A small PNG for the docs: 256 colours (octree keeps the outcome colours apart)."""
    with Image.open(screenshot) as shot:
        shot.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(target, optimize=True)
