"""The unit explorer in the live dashboard (issue 15), in Chromium: select a channel by clicking its
tile in the activation grid and see its top patches (scores best first, each from a frame of this
session), its histogram, the layer overview and its feature visualisation (progress, then the
image) appear while the frames keep changing; clicking a patch seeks the file to its frame; a
channel clicked in the overview becomes the selection; a malformed ``units`` message gets a one-line
error.

One ``convscope live`` of a small seeded CNN on a 60-frame looping clip serves the module.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_process import LiveProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

WAIT_MS = 60_000


def tid(name: str) -> str:
    return f"[data-testid={name}]"


@pytest.fixture(scope="module")
def live(video_factory, playwright_browser, tmp_path_factory) -> Iterator[LiveProcess]:
    video = video_factory("h264", ".mp4", frames=60, fps=10)
    here = str(Path(__file__).resolve().parent)
    proc = LiveProcess("--source", str(video), "-m", "e2e_models:tiny_imagenet", "--input-size", "96",
                       "--no-token", "--loop", "--autoplay", "--snapshots", str(tmp_path_factory.mktemp("s")),
                       env={"PYTHONPATH": here})
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def page(live, playwright_browser):
    context = playwright_browser.new_context(viewport={"width": 1440, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(live.url)
    pg.wait_for_function("window.convscope && window.convscope.framesDrawn > 0", timeout=WAIT_MS)
    yield pg
    context.close()
    assert not errors, errors


def click_cell(page, testid: str, index: int, geometry: str) -> None:
    """Click tile ``index`` of the activation grid, placed as the frame header says."""
    x, y = page.evaluate(
        """([sel, i, geo]) => {
            const c = document.querySelector(sel);
            const g = window.convscope.meta[geo];
            const r = c.getBoundingClientRect();
            return [r.left + ((i % g.cols) + 0.5) * g.tile_w * r.width / c.width,
                    r.top + (Math.floor(i / g.cols) + 0.5) * g.tile_h * r.height / c.height];
        }""",
        [tid(testid), index, geometry],
    )
    page.mouse.click(x, y)


def wait(page, condition: str, arg=None) -> None:
    page.wait_for_function(condition, arg=arg, timeout=WAIT_MS)


def test_select_a_channel_shows_its_patches_histogram_overview_and_visualisation(page):
    page.wait_for_selector(tid("units"), state="visible", timeout=WAIT_MS)  # once the hello is read
    assert not page.locator(tid("units-body")).is_visible()  # collapsed until a channel is selected
    hello = page.evaluate("window.convscope.hello")
    assert hello["units"] == {"dataset": None, "dataset_layers": [], "featvis": True}
    channel = 5
    click_cell(page, "activation-grid", channel, "activations")
    wait(page, f"window.convscope.state.channel === {channel}")
    seen = {page.evaluate("window.convscope.meta.source_frame.index")}
    # the top patches arrive, as images, while frames keep coming
    wait(page, f"""window.convscope.units && window.convscope.units.channel === {channel}
                  && window.convscope.units.top.length >= 3
                  && [...document.querySelectorAll('[data-testid=unit-patch] img')]
                       .every((i) => i.complete && i.naturalWidth > 0)""")
    # one snapshot of the reply and of what was drawn from it (replies keep coming)
    units, patches, hist_frames, ov_channels = page.evaluate("""() => [window.convscope.units,
        document.querySelectorAll('[data-testid=unit-patch]').length,
        Number(document.querySelector('[data-testid=unit-histogram]').dataset.frames),
        Number(document.querySelector('[data-testid=unit-overview]').dataset.channels)]""")
    scores = [t["score"] for t in units["top"]]
    assert scores == sorted(scores, reverse=True)
    assert all(isinstance(t["frame"], int) and 0 <= t["frame"] < 60 for t in units["top"])
    assert units["source"] == "session" and units["frames"] >= len(units["top"])
    assert patches == len(units["top"])
    # the histogram counts every frame observed (at most the ring's length), the overview every channel
    assert 0 < sum(units["histogram"]["counts"]) <= units["frames"]
    assert hist_frames == sum(units["histogram"]["counts"])
    assert sorted(units["overview"]["order"]) == list(range(16)) and ov_channels == 16
    # the feature visualisation: a progress bar or the finished image, and the image in the end
    wait(page, "['queued', 'running', 'done'].includes(document.querySelector('[data-testid=units]').dataset.featvis)")
    wait(page, """(() => { const i = document.querySelector('[data-testid=featvis]');
                  return !i.hidden && i.complete && i.naturalWidth > 0; })()""")
    for _ in range(50):
        seen.add(page.evaluate("window.convscope.meta.source_frame.index"))
        if len(seen) >= 3:
            break
        time.sleep(0.1)
    assert len(seen) >= 3, "frames stopped changing"


def test_click_a_patch_seeks_the_file_to_its_frame(page):
    page.click(tid("pause"))
    wait(page, "window.convscope.state.paused")
    patches = page.locator(tid("unit-patch"))
    frames = [int(f) for f in patches.evaluate_all("(els) => els.map((e) => e.dataset.frame)")]
    now = page.evaluate("window.convscope.meta.source_frame.index")
    i = next((j for j, f in enumerate(frames) if f != now), 0)
    patches.nth(i).click()
    wait(page, f"window.convscope.meta.source_frame.index === {frames[i]}")


def test_overview_click_selects_that_channel(page):
    order = page.evaluate("window.convscope.units.overview.order")
    overview = page.locator(tid("unit-overview"))
    overview.scroll_into_view_if_needed()
    box = overview.bounding_box()
    i = len(order) - 1  # the last bar: a channel other than the selected one
    page.mouse.click(box["x"] + (i + 0.5) * box["width"] / len(order), box["y"] + box["height"] / 2)
    wait(page, f"window.convscope.state.channel === {order[i]}")
    wait(page, f"window.convscope.units.channel === {order[i]}")


def test_malformed_units_message_gets_one_line_error(page):
    before = len(page.evaluate("window.convscope.errors"))
    page.evaluate("window.convscope.sendRaw(JSON.stringify({type: 'units', channel: 99}))")
    page.evaluate("window.convscope.sendRaw(JSON.stringify({type: 'units', channel: 1, order: 'size'}))")
    wait(page, f"window.convscope.errors.length >= {before + 2}")
    errors = page.evaluate("window.convscope.errors")[before:]
    text = " | ".join(str(e) for e in errors)
    assert "out of range" in text and "order must be" in text, text
    assert all("\n" not in str(e) for e in errors)
