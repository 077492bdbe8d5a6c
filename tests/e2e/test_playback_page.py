"""The dashboard as an instrument, in Chromium (issue 14): playback of a file (starts paused until
the first viewer, seek by clicking the timeline, step keys, every frame, replay, speed) and the
class search (pin any class, unpin with the x).

One ``convscope live`` on a small seeded 1000-class CNN (ImageNet's labels, many frames a second)
and a 100-frame clip at 10 fps serve the module; the tests run in order on one page.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chromium import dashboard_page
from live_process import LiveProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

N = 100
WAIT_MS = 60_000


def tid(name: str) -> str:
    return f"[data-testid={name}]"


@pytest.fixture(scope="module")
def live(video_factory, playwright_browser, tmp_path_factory) -> Iterator[LiveProcess]:
    video = video_factory("h264", ".mp4", frames=N, fps=10)
    here = str(Path(__file__).resolve().parent)
    snaps = tmp_path_factory.mktemp("snapshots")
    proc = LiveProcess("--no-featvis", "--source", str(video), "-m", "e2e_models:tiny_imagenet", "--input-size", "96",
                       "--no-token", "--snapshots", str(snaps), env={"PYTHONPATH": here})
    proc.snapshots = snaps
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def page(live, playwright_browser):
    time.sleep(3.0)  # a clip that played on its own would be 30 frames in by now
    yield from dashboard_page(playwright_browser, live.url, WAIT_MS)


def wait(page, condition: str) -> None:
    page.wait_for_function(condition, timeout=WAIT_MS)


def shown(page) -> int:
    return page.evaluate("window.convscope.meta.source_frame.index")


def pause(page) -> None:
    if page.evaluate("window.convscope.playback.playing"):
        page.keyboard.press(" ")
    wait(page, "!window.convscope.playback.playing")


def test_playback(page):
    # starts paused on its first frame until the first viewer: the first frame drawn is frame 0
    assert page.evaluate("window.convscope.firstSourceFrame") == 0
    assert page.is_visible(tid("timeline")) and page.is_visible(tid("position"))
    wait(page, "window.convscope.playback && window.convscope.playback.playing")
    status = page.inner_text(tid("status"))
    assert "skipped" not in status  # a file skips nothing; "skipped" is for live sources
    pause(page)

    # seek: click three quarters along the timeline
    box = page.locator(tid("timeline")).bounding_box()
    page.mouse.click(box["x"] + 0.75 * box["width"], box["y"] + box["height"] / 2)
    wait(page, "Math.abs(window.convscope.playback.position - 74) <= 3")
    target = page.evaluate("window.convscope.playback.position")
    wait(page, f"window.convscope.meta.source_frame.index === {target}")
    assert f"frame {target + 1} / {N}" in page.inner_text(tid("position"))
    assert page.eval_on_selector(tid("timeline"), "e => Number(e.value)") == target

    # drag the thumb back to the start
    box = page.locator(tid("timeline")).bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 0.75 * box["width"], y)
    page.mouse.down()
    page.mouse.move(box["x"] + 0.4 * box["width"], y, steps=5)
    page.mouse.move(box["x"] + 0.1 * box["width"], y, steps=5)
    page.mouse.up()
    wait(page, "window.convscope.playback.position <= 12")
    target = page.evaluate("window.convscope.playback.position")
    wait(page, f"window.convscope.meta.source_frame.index === {target}")

    # step: . forward, , back (keys), and the buttons
    page.keyboard.press(".")
    wait(page, f"window.convscope.meta.source_frame.index === {target + 1}")
    page.keyboard.press(",")
    page.keyboard.press(",")
    wait(page, f"window.convscope.meta.source_frame.index === {target - 1}")
    page.click(tid("step-forward"))
    wait(page, f"window.convscope.meta.source_frame.index === {target}")
    assert not page.evaluate("window.convscope.playback.playing")  # stepping keeps it paused

    # every frame, from frame 90 to the end, then replay
    page.evaluate("window.convscope.send({type: 'seek', frame: 90})")
    wait(page, "window.convscope.meta.source_frame.index === 90")
    page.select_option(tid("speed"), "every")
    wait(page, "window.convscope.playback.every_frame === true")
    page.click(tid("play"))
    wait(page, "window.convscope.playback.ended === true")
    wait(page, f"window.convscope.meta.source_frame.index === {N - 1}")
    assert page.inner_text(tid("play")).strip() == "↻ Replay"
    assert "ended" in page.inner_text(tid("status"))
    page.click(tid("play"))  # replay from the start
    wait(page, "window.convscope.playback.ended === false")
    wait(page, "window.convscope.sourceFrames.slice(-3).includes(0) || window.convscope.meta.source_frame.index < 20")

    # speed: 2x on the media clock
    page.select_option(tid("speed"), "2")
    wait(page, "window.convscope.playback.speed === 2 && window.convscope.playback.every_frame === false")
    pause(page)
    assert page.eval_on_selector(tid("speed"), "e => e.value") == "2"


def test_hostile_playback_message_gets_an_error(page):
    page.evaluate("window.convscope.sendRaw(JSON.stringify({type: 'seek', frame: 10000}))")
    wait(page, "window.convscope.errors.some((e) => e.message.includes('out of range'))")
    page.evaluate(f"window.convscope.sendRaw({json.dumps(json.dumps({'type': 'speed', 'speed': 100}))})")
    wait(page, "window.convscope.errors.some((e) => e.message.includes('speed must be'))")
    assert page.evaluate("window.convscope.ws.readyState") == 1


def test_class_search_pins_any_class_and_the_x_unpins(page):
    from convscope.models.labels import imagenet_labels

    labels = imagenet_labels()
    assert page.evaluate("window.convscope.hello.labels.length") == 1000
    search = page.locator(tid("class-search"))
    search.fill("tabby")
    wait(page, "document.querySelectorAll('[data-testid=class-results] li[data-index]').length > 0")
    found = [int(i) for i in page.eval_on_selector_all(f"{tid('class-results')} li[data-index]", "ls => ls.map(l => l.dataset.index)")]
    assert set(found) == {i for i, name in enumerate(labels) if "tabby" in name.lower()}
    page.locator(f"{tid('class-results')} li[data-index='{found[0]}']").click()
    wait(page, f"window.convscope.state.cam_class === {found[0]}")
    wait(page, f"(window.convscope.meta.maps.gradcam.target || {{}}).class === {found[0]}")
    chip = page.locator(tid("pinned-class"))
    assert chip.is_visible() and labels[found[0]] in chip.inner_text() and str(found[0]) in chip.inner_text()
    assert not page.is_visible(tid("class-results"))

    # by index, chosen with the keyboard; a class outside the top-5
    top5 = {p["index"] for p in page.evaluate("window.convscope.meta.predictions")}
    index = next(i for i in (963, 964, 965, 966, 967, 968) if i not in top5)
    search.fill(str(index))
    wait(page, f"document.querySelector('[data-testid=class-results] li[data-index]').dataset.index === '{index}'")
    search.press("Enter")
    wait(page, f"window.convscope.state.cam_class === {index}")
    wait(page, f"(window.convscope.meta.maps.gradcam.target || {{}}).class === {index}")
    assert labels[index] in chip.inner_text()
    assert labels[index] in page.inner_text(tid("selection"))
    search.fill("no such class xyz")
    wait(page, "document.querySelector('[data-testid=class-results] li.none') !== null")
    search.press("Escape")

    page.click(tid("unpin"))
    wait(page, "window.convscope.state.cam_class === null")
    # following the top-1 again: the map explains the newest frame's top prediction
    wait(page, "(window.convscope.meta.maps.gradcam.target || {}).class === window.convscope.meta.predictions[0].index")
    assert not chip.is_visible()


def test_snapshot_key_and_button_write_files_and_offer_a_zip(page, live):
    pause(page)
    with page.expect_download(timeout=WAIT_MS) as first:
        page.keyboard.press("s")
    with page.expect_download(timeout=WAIT_MS) as second:
        page.click(tid("snapshot"))
    for download in (first.value, second.value):
        assert download.suggested_filename.startswith("convscope-") and download.suggested_filename.endswith(".zip")
    folders = sorted(p for p in live.snapshots.iterdir() if p.is_dir())
    assert len(folders) == 2
    report = json.loads((folders[-1] / "snapshot.json").read_text())
    position = page.evaluate("window.convscope.playback.position")
    assert report["frame"]["index"] == position and report["source"]["kind"] == "file"
    assert all((folders[-1] / m["png"]).is_file() and (folders[-1] / m["npy"]).is_file() for m in report["maps"].values())
    assert page.is_visible(tid("snapshot-download"))



def test_record_every_frame_writes_an_mp4_and_a_gif(page, live):
    import av

    pause(page)
    page.evaluate("window.convscope.send({type: 'seek', frame: 90})")
    wait(page, "window.convscope.meta.source_frame.index === 90 && !!window.convscope.meta.maps.gradcam")
    page.click(tid("record-options"))
    assert page.is_visible(tid("record-panel"))
    page.uncheck(tid("record-all"))  # not the whole dashboard: the ticked panels (input and Grad-CAM)
    page.check(tid("record-panel-input"))
    page.check(tid("record-panel-map-gradcam"))
    page.uncheck(tid("record-panel-activations"))
    page.check(tid("record-every-frame"))
    page.select_option(tid("record-size"), "96")
    page.click(tid("record"))
    wait(page, "window.convscope.recording && window.convscope.recording.active === true")
    assert "Stop" in page.inner_text(tid("record"))
    page.click(tid("play"))
    wait(page, "window.convscope.playback.ended === true")
    wait(page, f"window.convscope.meta.source_frame.index === {N - 1}")  # the last frame is on screen
    with page.expect_download(timeout=WAIT_MS) as download:
        page.click(tid("record"))
    assert download.value.suggested_filename.startswith("convscope-recording-")
    wait(page, "window.convscope.lastRecording && window.convscope.recording.active === false")
    done = page.evaluate("window.convscope.lastRecording")
    assert page.is_visible(tid("record-download-mp4")) and page.is_visible(tid("record-download-gif"))
    assert done["panels"] == ["input", "map:gradcam"] and done["fps"] == 10
    for f in done["files"]:  # frames 90..99: one output frame per input frame, two 96 px tiles and the gap
        with av.open(str(live.snapshots / f["name"])) as container:
            frames = [x.to_ndarray(format="rgb24") for x in container.decode(video=0)]
        assert len(frames) == N - 90, f
        assert {x.shape for x in frames} == {(96, 2 * 96 + 4, 3)}, f
    assert not page.evaluate("window.convscope.playback.every_frame")  # the player's mode is back


BOXES = """() => {
  const vis = (el) => { const r = el.getBoundingClientRect(); const st = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && st.visibility !== 'hidden' && !el.closest('[hidden]'); };
  const box = (el) => { const r = el.getBoundingClientRect();
    return {id: el.id || el.dataset.testid || el.dataset.algorithm || el.tagName, x: r.left, y: r.top, r: r.right, b: r.bottom}; };
  const panels = [...document.querySelectorAll('main .panel')].filter(vis).filter((p) => !p.parentElement.closest('.panel'));
  const header = [...document.querySelectorAll('header > *, #playback > *')].filter(vis);
  return {w: innerWidth, h: innerHeight, scrollW: document.documentElement.scrollWidth,
          panels: panels.map(box), header: header.map(box), canvases: [...document.querySelectorAll('main canvas')].filter(vis).map(box)};
}"""


FITS = """() => {
  const vis = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0 && !el.closest('[hidden]')
    && getComputedStyle(el).visibility !== 'hidden'; };
  const inPanel = (el) => { const r = el.getBoundingClientRect(); const p = el.closest('.panel').getBoundingClientRect();
    return r.left >= p.left - 0.5 && r.right <= p.right + 0.5 && r.top >= p.top - 0.5 && r.bottom <= p.bottom + 0.5; };
  const bars = [...document.querySelectorAll('main .colorbar')].filter(vis);
  const nums = bars.flatMap((b) => [...b.querySelectorAll('.lo, .hi, .what')]).filter(vis);
  const titles = [...document.querySelectorAll('main .panel h2, main figure.panel figcaption')].filter(vis);
  const fc = document.getElementById('fc').getBoundingClientRect();
  const box = document.getElementById('fc-box').getBoundingClientRect();
  const sel = document.querySelector('[data-testid=selection]').closest('.panel').getBoundingClientRect();
  const colA = document.querySelector('.col-a');
  return {bars: bars.length, bars_out: nums.filter((n) => !inPanel(n)).map((n) => n.textContent),
          cut_titles: titles.filter((t) => t.scrollWidth > t.clientWidth + 1).map((t) => t.textContent),
          fc_fill: Math.max(fc.width / box.width, fc.height / box.height),
          selection_in_view: sel.top >= 0 && sel.bottom <= innerHeight + 0.5, col_a_scrolls: colA.scrollHeight > colA.clientHeight + 1,
          sel: [sel.top, sel.bottom, colA.scrollHeight, colA.clientHeight]};
}"""


def _inside(b, w, h) -> bool:
    return b["x"] >= -0.5 and b["y"] >= -0.5 and b["r"] <= w + 0.5 and b["b"] <= h + 0.5


def _overlap(a, b) -> float:
    return max(0.0, min(a["r"], b["r"]) - max(a["x"], b["x"])) * max(0.0, min(a["b"], b["b"]) - max(a["y"], b["y"]))


def test_layout_fits_from_1024x640_to_2560x1440_and_a_title_enlarges_its_panel(page):
    names = [a["name"] for a in page.evaluate("window.convscope.hello.algorithms")]
    page.evaluate(f"window.convscope.send({{type: 'view', algorithms: {json.dumps(names)}}})")
    wait(page, f"Object.keys(window.convscope.meta.maps || {{}}).length === {len(names)}")
    for w, h, strict in ((1440, 900, True), (2560, 1440, True), (1024, 640, False)):
        page.set_viewport_size({"width": w, "height": h})
        page.wait_for_timeout(400)
        wait(page, "true")
        got = page.evaluate(BOXES)
        assert got["scrollW"] <= w, (w, h, got["scrollW"])  # no horizontal scrolling, nothing cut at the right
        for b in got["header"]:
            assert _inside(b, w, h), (w, h, b)  # the header and the playback bar are whole
        for i, a in enumerate(got["panels"]):
            for b in got["panels"][i + 1:]:
                assert _overlap(a, b) < 1, (w, h, a, b)
        if strict:  # every panel, every map included, in view without scrolling
            for b in got["panels"] + got["canvases"]:
                assert _inside(b, w, h), (w, h, b)
        fits = page.evaluate(FITS)
        assert not fits["bars_out"], (w, h, fits["bars_out"])  # colour-bar numbers stay inside their panel
        assert fits["bars"] >= 3, (w, h, fits)  # the grid's, the heatmaps', the magnitude maps'
        assert fits["fc_fill"] > 0.9, (w, h, fits)  # the FC map fills its box's width or height
        if w == 1024:
            assert not fits["cut_titles"], fits["cut_titles"]  # titles wrap, never cut
            assert fits["selection_in_view"] and not fits["col_a_scrolls"], fits  # Selection: no scrolling
    page.set_viewport_size({"width": 1440, "height": 900})
    wait(page, "document.querySelector('[data-testid=colorbar-gradcam] .hi').textContent !== ''")
    bar = page.locator(tid("colorbar-gradcam"))
    assert bar.is_visible() and page.locator(tid("colorbar-gradcam-pp")).is_visible()
    shown_hi, hi = page.evaluate("""() => [Number(document.querySelector('[data-testid=colorbar-gradcam] .hi').textContent),
                                      window.convscope.meta.maps.gradcam.value_range[1]]""")
    assert shown_hi == pytest.approx(hi, rel=0.01, abs=1e-6)  # the bar's right end is the raw map's max
    assert not page.locator(tid("colorbar-guided-backprop")).is_visible()  # a gradient image: no colormap
    page.locator("figure.map[data-algorithm=gradcam] figcaption").click()
    box = page.locator("figure.map[data-algorithm=gradcam] canvas").bounding_box()
    assert box["height"] > 600  # enlarged to (nearly) the whole window
    page.keyboard.press("Escape")
    assert page.locator("figure.map[data-algorithm=gradcam] canvas").bounding_box()["height"] < 400

    # FC map hover: index and class label of the cell under the pointer (cell 0: top left)
    fc = page.locator(tid("fc-map")).bounding_box()
    page.mouse.move(fc["x"] + 2, fc["y"] + 2)
    tip = page.locator(tid("fc-tooltip"))
    label0 = page.evaluate("window.convscope.hello.labels[0]")
    assert tip.is_visible() and tip.inner_text().startswith(f"neuron 0 “{label0}”")
    # every neuron's value: the tooltip of a cell far from the selection shows its value; a click on
    # the re-tiled map selects the neuron under the pointer
    f = page.evaluate("window.convscope.meta.fc")
    k = 777
    cell_w, cell_h = fc["width"] / f["cols"], fc["height"] / f["rows"]
    x, y = fc["x"] + (k % f["cols"] + 0.5) * cell_w, fc["y"] + (k // f["cols"] + 0.5) * cell_h
    page.mouse.move(x, y)
    value = page.evaluate(f"window.convscope.formatValue(window.convscope.fcValues[{k}])")
    assert tip.inner_text().startswith(f"neuron {k} “{page.evaluate('window.convscope.hello.labels[777]')}” = {value}")
    page.mouse.click(x, y)
    wait(page, f"window.convscope.state.neuron === {k}")
    page.mouse.move(0, 0)
    page.evaluate("window.convscope.send({type: 'view', algorithms: ['gradcam', 'guided_backprop', 'guided_gradcam']})")
