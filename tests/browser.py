"""Headless Chromium for tests that look at rendered pages: the system's browser driven by
playwright (never a browser playwright downloads), with everything that phones home off."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, Page, Request, sync_playwright

# Debian's package; CHIKANEMAIL_TEST_CHROMIUM names another build.
CHROMIUM = os.environ.get("CHIKANEMAIL_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)


@contextmanager
def chromium() -> Iterator[Browser]:
    """One headless Chromium for as long as the block runs."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class OpenedPage:
    """A page loaded from a file, and every URL it asked for while loading."""

    page: Page
    requests: list[str] = field(default_factory=list)


@contextmanager
def open_file(browser: Browser, path: Path) -> Iterator[OpenedPage]:
    """Load a local HTML file in a fresh page (closed afterwards), recording its requests."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    opened = OpenedPage(page)

    def seen(request: Request) -> None:
        opened.requests.append(request.url)

    page.on("request", seen)
    try:
        page.goto(path.resolve().as_uri(), wait_until="load")
        yield opened
    finally:
        context.close()
