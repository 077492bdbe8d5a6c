"""The algorithm zoo in Chromium (issue 13): every method on at once, each panel updating, the
expensive ones in the background with their age, every panel's own cost; a contrast in two clicks
and the counterfactual; an option changed from the page.

One ``convscope live`` on the small seeded 1000-class CNN and the demo source, with
``--background-share 0`` so every method with extra rows runs in the background lane.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chromium import dashboard_page
from live_process import LiveProcess

from convscope import algorithms

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

WAIT_MS = 120_000


def tid(name: str) -> str:
    return f"[data-testid={name}]"


@pytest.fixture(scope="module")
def live(playwright_browser) -> Iterator[LiveProcess]:
    here = str(Path(__file__).resolve().parent)
    proc = LiveProcess("--no-featvis", "--source", "demo", "-m", "e2e_models:tiny_imagenet", "--input-size", "64",
                       "--no-token", "--background-share", "0", env={"PYTHONPATH": here})
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def page(live, playwright_browser):
    for pg in dashboard_page(playwright_browser, live.url, WAIT_MS):
        # count, per panel, the frames that brought a new picture of it
        pg.evaluate("""() => { const S = window.convscope; S.updates = {};
            S.on('drawn', (m) => { for (const p of m.panels) S.updates[p.name] = (S.updates[p.name] || 0) + 1; }); }""")
        yield pg


def test_every_method_on_updates_every_panel_and_labels_the_slow_ones(page):
    every = list(algorithms.names())
    page.evaluate("() => window.convscope.send({type: 'view', options: {steps: 4, samples: 4, top_channels: 4}})")
    page.evaluate("(names) => window.convscope.send({type: 'view', algorithms: names})", every)
    page.wait_for_function("(n) => window.convscope.state.algorithms.length === n", arg=len(every), timeout=WAIT_MS)
    page.evaluate("() => { window.convscope.updates = {}; }")
    # every map panel gets at least two pictures, the background ones included
    page.wait_for_function(
        "(names) => names.every((n) => (window.convscope.updates['map:' + n] || 0) >= 2)", arg=every, timeout=WAIT_MS)
    background = page.evaluate("Object.keys(window.convscope.meta.background)")
    assert set(background) == {"scorecam", "ablationcam", "integrated_gradients", "smoothgrad", "smoothgrad_sq"}
    updates = page.evaluate("window.convscope.updates")
    slowest = min(updates[f"map:{n}"] for n in background)
    assert updates["input"] > slowest and updates["map:gradcam"] > slowest  # the cheap ones never waited
    for name in background:  # labelled with their age and cost
        badge = page.locator(tid(f"age-{name.replace('_', '-')}"))
        page.wait_for_function(
            "(t) => /\\d+ frames? old · .*ms|previous selection/.test(document.querySelector(t).textContent)",
            arg=tid(f"age-{name.replace('_', '-')}"), timeout=WAIT_MS)
        assert badge.is_visible()
    for name in set(every) - set(background):  # the rest show their own cost in ms
        assert page.locator(tid(f"cost-{name.replace('_', '-')}")).text_content().endswith("ms")
    assert page.locator(tid("cost-activations")).text_content().endswith("ms")
    assert "4 masked channels" in page.locator(tid("rows-scorecam")).inner_text()  # K shown in the panel


def test_a_contrast_in_two_clicks_and_the_counterfactual(page):
    page.evaluate("() => window.convscope.send({type: 'view', algorithms: ['gradcam']})")
    page.wait_for_function("window.convscope.state.algorithms.length === 1", timeout=WAIT_MS)
    page.evaluate("() => window.convscope.send({type: 'pause', paused: true})")  # a still top-5 to click on
    page.wait_for_function("window.convscope.state.paused === true", timeout=WAIT_MS)
    rows = page.locator(f"{tid('predictions')} li")
    first, second = (int(rows.nth(i).get_attribute("data-index")) for i in (0, 1))
    # dispatched on the row itself: the Top-5 is redrawn with every frame, and a click by position
    # could land while it is replaced
    page.locator(f"{tid('predictions')} li[data-index='{first}']").dispatch_event("click")  # pin A
    page.wait_for_function("(a) => window.convscope.state.cam_class === a", arg=first, timeout=WAIT_MS)
    page.locator(tid(f"versus-{second}")).dispatch_event("click")  # rather than B
    page.wait_for_function("(b) => window.convscope.state.versus === b", arg=second, timeout=WAIT_MS)
    assert page.is_visible(tid("versus-chip"))
    page.wait_for_function(
        "(ab) => { const t = window.convscope.meta.maps.gradcam.target;"
        " return t.class === ab[0] && t.versus === ab[1]; }", arg=[first, second], timeout=WAIT_MS)
    page.locator(tid("counterfactual")).check()
    page.wait_for_function("window.convscope.meta.maps.gradcam.target.counterfactual === true", timeout=WAIT_MS)
    page.locator(tid("unversus")).click()
    page.wait_for_function("window.convscope.state.versus === null", timeout=WAIT_MS)
    assert not page.is_visible(tid("versus-chip"))
    page.evaluate("() => window.convscope.send({type: 'pause', paused: false})")


def test_an_option_from_the_page_reaches_the_maps(page):
    page.evaluate("() => window.convscope.send({type: 'view', algorithms: ['integrated_gradients']})")
    page.wait_for_selector(tid("option-steps"), timeout=WAIT_MS)  # built from the hello (again after a reconnect)
    field = page.locator(tid("option-steps"))
    field.fill("4", timeout=WAIT_MS)
    field.press("Enter")
    field.blur()
    page.wait_for_function("window.convscope.state.options.steps === 4", timeout=WAIT_MS)
    page.wait_for_function(
        "(() => { const m = window.convscope.meta.maps.integrated_gradients; return m && m.rows === '4 steps'; })()",
        timeout=WAIT_MS)
