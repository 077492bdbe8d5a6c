"""Debian's Chromium for Playwright: its path, the flags every browser test launches it with."""

from __future__ import annotations

import os
from collections.abc import Iterator

from helpers.tools import require

CHROMIUM = os.environ.get("CONVSCOPE_CHROMIUM", "/usr/bin/chromium")  # another path only to test the skip
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def launch() -> Iterator:
    """Yield a launched browser (skipped, or failed under CI, without Chromium or Playwright)."""
    require(os.access(CHROMIUM, os.X_OK), f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "the playwright package is not installed (pip install playwright)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def dashboard_page(browser, url: str, wait_ms: int, width: int = 1440, height: int = 900) -> Iterator:
    """Yield a page on the dashboard at ``url`` once its first frame is drawn; on exit, fail if the
    page threw a JavaScript exception meanwhile."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("window.convscope && window.convscope.framesDrawn > 0", timeout=wait_ms)
    yield page
    context.close()
    assert not errors, errors  # no JavaScript exception during the tests
