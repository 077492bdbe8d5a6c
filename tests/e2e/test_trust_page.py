"""Trust, live, in Chromium (issue 17): the sanity switch draws a randomised twin of each map with
its rank correlation, and the deletion button puts each map's deletion AUC in its title.

``convscope live`` on the demo source with a small seeded CNN at 96 px (``e2e_models:tiny_imagenet``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from live_process import LiveProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

WAIT_MS = 90_000


@pytest.fixture(scope="module")
def live(playwright_browser) -> Iterator[LiveProcess]:
    here = str(Path(__file__).resolve().parent)
    proc = LiveProcess("--no-featvis", "--source", "demo", "-m", "e2e_models:tiny_imagenet", "--input-size", "96", "--no-token",
                       env={"PYTHONPATH": here})
    yield proc
    proc.stop()


def test_sanity_panels_and_deletion_scores_appear(live, playwright_browser):
    context = playwright_browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(live.url)
        page.wait_for_function("window.convscope && window.convscope.framesDrawn > 0", timeout=WAIT_MS)
        assert page.locator("[data-testid=sanity-panel]").count() == 0  # off: nothing drawn, nothing asked
        maps = page.evaluate("window.convscope.state.algorithms")
        assert maps
        # all layers of the model (conv1, conv2, fc) re-initialised: the menu lists them
        page.select_option("[data-testid=sanity-layers]", label="all 3 layers")
        page.check("[data-testid=sanity]")
        page.wait_for_function(
            "document.querySelectorAll('[data-testid=sanity-panel]:not([hidden]) img[src^=\"data:image/jpeg\"]')"
            f".length === {len(maps)}", timeout=WAIT_MS)
        panels = page.evaluate("""() => [...document.querySelectorAll('[data-testid=sanity-panel]')].map(f => ({
            name: f.dataset.trust, rho: f.querySelector('[data-testid=sanity-rho]').textContent,
            after: f.previousElementSibling && f.previousElementSibling.dataset.algorithm,
            ok: f.querySelector('img').complete && f.querySelector('img').naturalWidth > 0}))""")
        assert sorted(p["name"] for p in panels) == sorted(maps)
        for p in panels:
            assert p["after"] == p["name"]  # next to the real map
            assert p["rho"].startswith("ρ ")
            value = p["rho"][2:]
            assert value == "–" or -1 <= float(value) <= 1, p
        trust = page.evaluate("window.convscope.lastTrust")
        assert trust["top_layers"] == trust["layers"] == 3

        page.click("[data-testid=deletion]")
        page.wait_for_function(
            f"document.querySelectorAll('[data-testid=deletion-score]:not([hidden])').length === {len(maps)}",
            timeout=WAIT_MS)
        scores = page.evaluate("window.convscope.lastDeletion.scores")
        assert sorted(scores) == sorted(maps) and all(0 <= v <= 1 for v in scores.values())
        shown = page.locator("[data-testid=deletion-score]").first.text_content()
        assert shown.startswith("del ")

        page.uncheck("[data-testid=sanity]")
        page.wait_for_function("[...document.querySelectorAll('[data-testid=sanity-panel]')].every(f => f.hidden)",
                               timeout=WAIT_MS)
        assert page.evaluate("window.convscope.errors.length") == 0
    finally:
        context.close()
    assert not errors, errors
