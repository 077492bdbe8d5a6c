"""The page alone in Chromium, fed by a mocked WebSocket: layer menus and blank-panel labels.

No ``convscope live`` process: Playwright serves ``convscope/server/static`` and plays the server
(``page.route_web_socket``): a hello, a state, then one real frame that ``encode_result`` made from
an engine run of DeadNet (``tests/helpers/blank_models.py``), whose Grad-CAM, activation grid,
zoomed channel and FC map are all zero. Checks what the user sees: the reason over each blank
panel (``data-testid="empty-<panel>"``), the layer in the CAM panel titles, and layer menus grouped
by kind with ``<optgroup>`` (the lead's richer hello) or flat (today's hello, no ``kind``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

STATIC = Path(__file__).resolve().parents[2] / "convscope" / "server" / "static"
ORIGIN = "http://convscope.test"
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def _frame():
    """One encoded frame of DeadNet with blank panels: (meta dict, packed binary message)."""
    from helpers.blank_models import dead_net
    from skimage import data

    from convscope.engine import Engine, ViewRequest
    from convscope.models import Preprocessing
    from convscope.models.bundle import ModelBundle
    from convscope.server.encode import encode_result

    bundle = ModelBundle(dead_net(), Preprocessing(input_size=(32, 32)), tuple("abcdef"), "dead")
    request = ViewRequest(cam_layer="conv2", conv_layer="conv_dead", channel=1, fc_layer="fc_dead",
                          panels=("input", "predictions", "activations", "channel", "fc"),
                          algorithms=("gradcam", "guided_backprop"))
    with Engine(bundle) as engine:
        frame = encode_result(engine.run(data.chelsea(), request), seq=1)
    return frame.meta, frame.packed()


def _layer(index, name, shape, kind=None, layout=None):
    out = {"name": name, "index": index, "shape": shape}
    if kind:
        out.update(kind=kind, layout=layout)
    return out


def _hello(with_kinds: bool) -> dict:
    k = with_kinds
    conv = [
        _layer(0, "conv1", [8, 16, 16], "conv" if k else None, "map"),
        _layer(1, "conv1.act", [8, 16, 16], "act" if k else None, "map"),
        _layer(2, "conv2", [8, 16, 16], "conv" if k else None, "map"),
        _layer(3, "bn2", [8, 16, 16], "norm" if k else None, "map"),
        _layer(4, "block1", [8, 16, 16], "block" if k else None, "map"),
        _layer(5, "conv_dead", [4, 16, 16], "conv" if k else None, "map"),
        _layer(6, "blocks.0", [197, 384], "tokens" if k else None, "tokens"),
    ]
    linear = [_layer(7, "fc", [6], "linear" if k else None, "vector"),
              _layer(8, "fc_dead", [5], "linear" if k else None, "vector")]
    algorithms = [{"name": "gradcam", "title": "Grad-CAM", "summary": "", "target_role": "cam"},
                  {"name": "guided_backprop", "title": "Guided backprop", "summary": "", "target_role": "selection"}]
    return {"type": "hello", "model": "dead", "conv_layers": conv, "linear_layers": linear,
            "labels": list("abcdef"), "num_classes": 6, "algorithms": algorithms,
            "source": {"kind": "demo", "spec": "demo"}, "max_message_bytes": 65536}


STATE = {"type": "state", "conv_layer": "conv_dead", "channel": 1, "fc_layer": "fc_dead", "neuron": None,
         "cam_layer": "conv2", "cam_class": None, "selection": "class", "gb_source": "class", "grayscale": False,
         "normalize": "channel", "algorithms": ["gradcam", "guided_backprop"], "paused": False}


@pytest.fixture(scope="module")
def browser(playwright_browser):
    return playwright_browser


@pytest.fixture(scope="module")
def frame():
    return _frame()


def _open(browser, hello: dict, frame):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def serve(route):
        path = route.request.url[len(ORIGIN):].split("?")[0]
        name = "index.html" if path in ("", "/") else path.removeprefix("/static/")
        file = STATIC / name
        if not file.is_file():
            return route.fulfill(status=404, body="")
        return route.fulfill(status=200, body=file.read_bytes(), content_type=TYPES.get(file.suffix, "text/plain"))

    def server(ws):
        ws.send(json.dumps(hello))
        ws.send(json.dumps(STATE))
        meta, packed = frame
        ws.send(json.dumps(meta))
        ws.send(packed)
        ws.on_message(lambda message: None)  # acks

    page.route(f"{ORIGIN}/**", serve)
    page.route_web_socket("**/ws*", server)
    page.goto(f"{ORIGIN}/?token=t")
    page.wait_for_function("window.convscope && window.convscope.framesDrawn > 0", timeout=60_000)
    return context, page, errors


def test_blank_panels_say_why_and_cam_titles_name_the_layer(browser, frame, tmp_path):
    from convscope.render import ALL_ZERO

    context, page, errors = _open(browser, _hello(True), frame)
    try:
        for panel in ("gradcam", "activations", "channel", "fc"):
            tag = page.locator(f"[data-testid=empty-{panel}]")
            assert tag.is_visible(), panel
            assert tag.inner_text() == ALL_ZERO, panel
        assert page.locator("[data-testid=empty-guided-backprop]").count() == 0  # it has a signal
        assert page.locator("figure.map[data-algorithm=gradcam] .title").inner_text() == "Grad-CAM · conv2"
        assert page.locator("figure.map[data-algorithm=guided_backprop] .title").inner_text() == "Guided backprop"
        page.screenshot(path=str(Path(os.environ.get("CONVSCOPE_SHOT_DIR", tmp_path)) / "blank_panels.png"))
    finally:
        context.close()
    assert not errors, errors


def test_layer_menus_group_by_kind_and_keep_names_as_values(browser, frame):
    context, page, errors = _open(browser, _hello(True), frame)
    try:
        groups = page.evaluate("""() => [...document.querySelectorAll('[data-testid=conv-layer-select] optgroup')]
            .map((g) => [g.dataset.kind, g.label, [...g.querySelectorAll('option')].map((o) => o.value)])""")
        assert groups == [
            ["conv", "conv · 3", ["conv1", "conv2", "conv_dead"]],
            ["block", "blocks · 1", ["block1"]],
            ["norm", "norm · 1", ["bn2"]],
            ["act", "activations · 1", ["conv1.act"]],
            ["tokens", "tokens · 1", ["blocks.0"]],
        ]
        assert page.locator("#cam-layer optgroup").count() == 5
        assert page.locator("[data-testid=fc-layer-select] optgroup").count() == 1
        assert page.eval_on_selector("[data-testid=conv-layer-select]", "s => s.value") == "conv_dead"
        assert "(tokens)" in page.locator("[data-testid=conv-layer-select] option[value='blocks.0']").inner_text()
    finally:
        context.close()
    assert not errors, errors
    context, page, errors = _open(browser, _hello(False), frame)  # today's hello: no kind, one flat list
    try:
        assert page.locator("[data-testid=conv-layer-select] optgroup").count() == 0
        values = page.evaluate("[...document.querySelectorAll('[data-testid=conv-layer-select] option')].map(o => o.value)")
        assert values == ["conv1", "conv1.act", "conv2", "bn2", "block1", "conv_dead", "blocks.0"]
        assert page.eval_on_selector("[data-testid=conv-layer-select]", "s => s.value") == "conv_dead"
    finally:
        context.close()
    assert not errors, errors
