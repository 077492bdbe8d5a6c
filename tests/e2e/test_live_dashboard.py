"""The dashboard in a real browser: Playwright drives Debian's Chromium against ``convscope live``.

One ``convscope live`` process (efficientnet_lite0 with its ImageNet weights, a looping H.264
test video) and one browser serve the whole module; selections are shared by every viewer, so
each test sets the selection it needs. Without /usr/bin/chromium the tests skip, except under
``CI=true``, where they fail. The selection test takes a screenshot; with
``CONVSCOPE_UPDATE_DOCS=1`` it is written to ``docs/dashboard.png`` (else to a temporary folder,
so ``make test`` leaves the tree clean).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from chromium import CHROMIUM, CHROMIUM_ARGS, dashboard_page  # noqa: F401 - make_dashboard_gif.py imports the first two here
from live_process import LiveProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

TOKEN = "e2e-token-0123456789"
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
WAIT_MS = 90_000  # one frame of the full engine on a busy 2-core CPU can take seconds


def _tid(name: str) -> str:
    return f"[data-testid={name}]"


@pytest.fixture(scope="module")
def live(video_factory, playwright_browser) -> Iterator[LiveProcess]:
    video = video_factory("h264", ".mp4", frames=100, fps=25)
    proc = LiveProcess("--no-featvis", "--source", str(video), "--loop", "--token", TOKEN)
    yield proc
    proc.stop()


@pytest.fixture
def page(live, playwright_browser):
    yield from dashboard_page(playwright_browser, live.url, WAIT_MS)


def canvas(page, testid: str) -> str:
    """The pixels of a canvas, as a data URL, to compare two moments."""
    return page.evaluate(f"document.querySelector('{_tid(testid)}').toDataURL()")


def state(page) -> dict:
    return page.evaluate("window.convscope.state")


def wait(page, condition: str) -> None:
    page.wait_for_function(condition, timeout=WAIT_MS)


def send(page, message: dict) -> None:
    page.evaluate(f"window.convscope.sendRaw({json.dumps(json.dumps(message))})")


def wait_frames(page, n: int = 1) -> None:
    """Wait until ``n`` more frames have been drawn."""
    start = page.evaluate("window.convscope.framesDrawn")
    wait(page, f"window.convscope.framesDrawn >= {start + n}")


def click_cell(page, testid: str, index: int, geometry: str) -> None:
    """Click cell ``index`` of the activation grid or FC map, placed as the frame header says."""
    x, y = page.evaluate(
        """([sel, i, geo]) => {
            const c = document.querySelector(sel);
            const g = window.convscope.meta[geo];
            const w = geo === 'fc' ? g.cell : g.tile_w, h = geo === 'fc' ? g.cell : g.tile_h;
            const r = c.getBoundingClientRect();
            return [r.left + ((i % g.cols) + 0.5) * w * r.width / c.width,
                    r.top + (Math.floor(i / g.cols) + 0.5) * h * r.height / c.height];
        }""",
        [_tid(testid), index, geometry],
    )
    page.mouse.click(x, y)


def set_paused(page, paused: bool) -> None:
    if state(page)["paused"] != paused:
        page.click(_tid("pause"))
    wait(page, f"window.convscope.state.paused === {json.dumps(paused)}")


def test_startup_says_how_the_model_runs(live):
    assert "convscope: efficientnet_lite0: 49 BatchNorm folded into convs, channels_last\n" in live.stdout


def test_page_needs_the_token(live, playwright_browser):
    context = playwright_browser.new_context()
    try:
        response = context.new_page().goto(live.url.split("?")[0])
        assert response.status == 403
    finally:
        context.close()


def test_frames_change_over_time(page):
    set_paused(page, False)
    first = canvas(page, "input-frame")
    wait_frames(page, 2)
    assert canvas(page, "input-frame") != first
    preds = page.locator(f"{_tid('predictions')} li")
    assert preds.count() == 5
    status = page.inner_text(_tid("status"))
    assert "playing" in status and "dashboard" in status and "network" in status
    assert "skipped" not in status  # a file skips nothing: its position is on the timeline
    assert page.inner_text(_tid("position")).startswith("frame ")


def test_menus_come_from_the_server(page):
    hello = page.evaluate("window.convscope.hello")
    conv = page.locator(f"{_tid('conv-layer-select')} option")
    # every feature map of efficientnet_lite0, grouped by kind: its 49 convs among them
    assert conv.count() == len(hello["conv_layers"]) > 49
    assert sum(la["kind"] == "conv" for la in hello["conv_layers"]) == 49
    assert page.locator(f"{_tid('conv-layer-select')} optgroup").count() >= 3
    assert page.eval_on_selector(_tid("conv-layer-select"), "e => e.value") == "blocks.4"  # the grid default
    assert page.eval_on_selector("#cam-layer", "e => e.value") == "bn2"  # Grad-CAM on the head layer
    assert "conv_stem" in conv.first.inner_text() and "32×112×112" in conv.first.inner_text()
    assert page.locator(f"{_tid('fc-layer-select')} option").count() == len(hello["linear_layers"])
    algs = page.locator("#algorithms input")
    assert algs.count() == len(hello["algorithms"]) >= 3
    for a in hello["algorithms"]:  # every registered algorithm can be shown
        assert page.locator(_tid(a["name"].replace("_", "-"))).count() == 1
    extra = next(a["name"] for a in hello["algorithms"] if a["name"] not in state(page)["algorithms"])
    box = page.locator(f"#algorithms input[value={extra}]")
    blank = canvas(page, extra.replace("_", "-"))
    box.click()  # the box shows the shared state: it turns on when the server's state says so
    wait(page, f"window.convscope.state.algorithms.includes({json.dumps(extra)})")
    assert box.is_checked()
    try:
        wait(page, f"{json.dumps(extra)} in window.convscope.meta.maps")
        assert page.is_visible(_tid(extra.replace("_", "-")))
        assert canvas(page, extra.replace("_", "-")) != blank
    finally:
        box.click()
        wait(page, f"!window.convscope.state.algorithms.includes({json.dumps(extra)})")


def test_selections_on_a_paused_frame(page, live, tmp_path):
    """Pause, then choose a layer, a tile, an FC cell and a class: each is computed on the frozen frame."""
    try:
        set_paused(page, True)
        hello = page.evaluate("window.convscope.hello")
        layer = hello["conv_layers"][len(hello["conv_layers"]) // 2]["name"]
        page.select_option(_tid("conv-layer-select"), layer)
        wait(page, f"window.convscope.meta.activations.layer === {json.dumps(layer)}")
        frozen = canvas(page, "input-frame")
        zoom, gb = canvas(page, "channel-zoom"), canvas(page, "guided-backprop")
        channel = 5 if state(page)["channel"] != 5 else 6

        click_cell(page, "activation-grid", channel, "activations")
        wait(page, f"window.convscope.meta.channel.index === {channel} && window.convscope.state.selection === 'channel'")
        text = page.inner_text(_tid("selection"))
        assert layer in text and f"channel {channel}" in text
        assert canvas(page, "channel-zoom") != zoom
        assert canvas(page, "guided-backprop") != gb
        assert canvas(page, "input-frame") == frozen  # pause freezes the input

        top = page.evaluate("window.convscope.meta.predictions[0]")
        gb = canvas(page, "guided-backprop")
        click_cell(page, "fc-map", top["index"], "fc")
        wait(page, f"window.convscope.meta.fc.selected === {top['index']}")
        text = page.inner_text(_tid("selection"))
        assert f"neuron {top['index']}" in text and top["label"] in text and "=" in text
        assert canvas(page, "guided-backprop") != gb  # now explains the neuron

        second = page.evaluate("window.convscope.meta.predictions[1]")
        cam = canvas(page, "gradcam")
        page.locator(f"{_tid('predictions')} li").nth(1).click()
        wait(page, f"window.convscope.state.cam_class === {second['index']}")
        wait(page, f"(window.convscope.meta.maps.gradcam.target || {{}}).class === {second['index']}")
        assert page.locator(f"{_tid('predictions')} li.pinned .prob").inner_text().endswith("%")  # the "vs" button follows it
        assert second["label"] in page.locator("figure.map[data-algorithm=gradcam] figcaption").inner_text()
        assert canvas(page, "gradcam") != cam
        assert canvas(page, "input-frame") == frozen

        shot = DOCS_SCREENSHOT if os.environ.get("CONVSCOPE_UPDATE_DOCS") == "1" else tmp_path / "dashboard.png"
        page.mouse.move(0, 0)
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 50_000

        page.locator(f"{_tid('predictions')} li.pinned").click()  # unpin: back to the top-1
        wait(page, "window.convscope.state.cam_class === null")
    finally:
        set_paused(page, False)
    wait_frames(page, 2)
    assert canvas(page, "input-frame") != frozen


def test_a_second_page_receives_frames_and_shares_the_selection(page, live, playwright_browser):
    context = playwright_browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        other = context.new_page()
        other.goto(live.url)
        wait(other, "window.convscope.framesDrawn > 0")
        wait_frames(other, 1)
        wait_frames(page, 1)  # both pages get frames
        wait(other, "window.convscope.status && window.convscope.status.viewers === 2")
        channel = (state(page)["channel"] + 3) % 8
        send(page, {"type": "view", "channel": channel})
        wait(other, f"window.convscope.state.channel === {channel}")
        assert f"channel {channel}" in other.inner_text(_tid("selection"))
    finally:
        context.close()


def test_malformed_message_gets_an_error_and_frames_keep_coming(page):
    set_paused(page, False)
    before = state(page)
    page.evaluate("window.convscope.sendRaw('{not json')")
    wait(page, "window.convscope.errors.length >= 1")
    send(page, {"type": "view", "conv_layer": "no.such.layer"})
    send(page, {"type": "view", "channel": 10**6})
    wait(page, "window.convscope.errors.length >= 3")
    messages = [e["message"] for e in page.evaluate("window.convscope.errors")]
    assert "not valid JSON" in messages[0]
    assert "unknown conv layer" in messages[1] and "out of range" in messages[2]
    assert page.is_visible("#toast")
    assert state(page) == before  # nothing changed
    wait_frames(page, 2)  # and the stream goes on over the same connection
    assert page.evaluate("window.convscope.ws.readyState") == 1


def test_ctrl_c_stops_the_server(live):
    """Last in the module: it ends the shared server."""
    seconds = live.interrupt(timeout=30)
    assert live.proc.returncode in (0, 130)
    assert "Traceback" not in "".join(live.stderr)
    assert seconds < 10, seconds  # the promise is 2 s; this only catches a hang on a noisy machine
    print(f"convscope live stopped {seconds:.2f} s after SIGINT")
