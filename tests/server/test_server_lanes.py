"""Expensive maps never stall the cheap ones (issue 13, item 4): the background lane.

The real engine on the tiny seeded CNN and the real demo source. A map with extra input rows
(Integrated Gradients, SmoothGrad) runs in the background on the newest frame; the frame loop
keeps publishing, and the page is told each background map's age and cost. Its picture is the
one the frame loop itself would compute for that frame.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from server_helpers import Built
from server_models import SPEC
from skimage import data

from convscope.engine import Engine
from convscope.models import load_model
from convscope.server.dashboard import make_dashboard
from convscope.server.encode import unpack_blob
from convscope.server.lanes import Lanes, background_engine_factory, row_maps
from convscope.server.security import Guard
from convscope.sources import open_source

ROWS = ("integrated_gradients", "smoothgrad")


class Frames:
    """Collects published frames; ``until(test)`` waits for one that passes."""

    def __init__(self) -> None:
        self.frames: list = []
        self.cond = threading.Condition()

    def __call__(self, frame) -> None:
        with self.cond:
            self.frames.append(frame)
            self.cond.notify_all()

    def until(self, test, timeout: float = 90.0):
        with self.cond:
            found: list = []

            def ready() -> bool:
                found[:] = [f for f in self.frames if test(f)]
                return bool(found)

            assert self.cond.wait_for(ready, timeout), f"no such frame in {len(self.frames)} frames"
            return found[0]


def _blob(frame, name: str) -> bytes | None:
    return next((unpack_blob(b)[2] for b in frame.blobs if unpack_blob(b)[1] == name), None)


def _ready(name: str):
    return lambda f: (f.meta.get("background", {}).get(name) or {}).get("pending") is False


@pytest.fixture
def lane_built(request, tmp_path):
    """A dashboard whose background lane is on (``share`` from the test's param)."""
    share, source = request.param
    b = Built.__new__(Built)
    b.bundle = load_model(SPEC, input_size=64, device="cpu")
    b.engine = Engine(b.bundle)
    if source == "still":
        path = tmp_path / "astronaut.png"
        Image.fromarray(data.astronaut()).save(path)
        source = str(path)
    b.source = open_source(source, realtime=True)
    b.dashboard = make_dashboard(b.engine, b.source, Guard(None, True), net_probe=False,
                                 background=background_engine_factory(b.bundle), background_share=share)
    yield b
    b.close()


def _with(pipe, *names: str) -> None:
    pipe.update(replace(pipe.state, algorithms=("gradcam", *names)))


def test_row_maps_are_the_algorithms_with_rows(built):
    state = replace(built.dashboard.pipeline.state, algorithms=("gradcam", "guided_backprop", *ROWS))
    assert row_maps(built.engine, state.to_request()) == ROWS
    lanes = Lanes(built.engine, background_engine_factory(built.bundle))
    request, background = lanes.split(state)
    assert background == ROWS and request.algorithms == ("gradcam", "guided_backprop")
    assert lanes.split(state, every_frame=True) == (state.to_request(), ())  # playback "every frame"
    off = Lanes(built.engine, None)  # --no-background
    assert off.split(state) == (state.to_request(), ())
    with pytest.raises(ValueError):
        Lanes(built.engine, None, share=1.5)


@pytest.mark.parametrize("lane_built", [(0.0, "demo")], indirect=True)
def test_background_maps_come_with_their_age_and_the_loop_keeps_going(lane_built):
    pipe = lane_built.dashboard.pipeline
    got = Frames()
    pipe.set_publisher(got)
    _with(pipe, *ROWS)
    pipe.start()
    try:
        first = got.until(_ready("integrated_gradients"))
        got.until(_ready("smoothgrad"))
        later = got.until(lambda f: f.seq > first.seq + 3 and _ready("integrated_gradients")(f))
    finally:
        assert pipe.stop(timeout=10)
    before = [f for f in got.frames if f.seq < first.seq]
    assert before, "the frame loop published nothing while the first background map was computed"
    for frame in before:  # not ready: said so, and no stale picture is sent
        assert frame.meta["background"]["integrated_gradients"]["pending"] is True
        assert _blob(frame, "map:integrated_gradients") is None
        assert _blob(frame, "map:gradcam") is not None  # the cheap map is there every frame
    for frame in (first, later):
        info = frame.meta["background"]["integrated_gradients"]
        assert isinstance(info["frames_old"], int) and info["frames_old"] >= 0
        assert info["ms"] > 0 and info["stale"] is False
        assert _blob(frame, "map:integrated_gradients") is not None
        assert "integrated_gradients" in frame.meta["maps"]
        assert frame.meta["costs"]["map:gradcam"] >= 0  # every panel's own cost, in ms
        assert "map:integrated_gradients" not in frame.meta["costs"]  # not computed in the loop
    assert pipe.stats()["error"] is None


@pytest.mark.parametrize("lane_built", [(0.0, "still")], indirect=True)
def test_a_background_map_is_the_map_the_loop_would_compute(lane_built):
    pipe = lane_built.dashboard.pipeline
    got = Frames()
    pipe.set_publisher(got)
    _with(pipe, "integrated_gradients")
    pipe.start()
    try:
        got.until(lambda f: _ready("integrated_gradients")(f)
                  and f.meta["background"]["integrated_gradients"]["frames_old"] == 0)
        state = pipe.state
    finally:
        assert pipe.stop(timeout=10)
    shown = pipe.last_result.maps["integrated_gradients"]  # what was published, before JPEG
    image = np.array(Image.open(lane_built.source.info.spec).convert("RGB"))
    inline = lane_built.engine.run(image, state.to_request()).maps["integrated_gradients"]
    assert shown.target == inline.target and shown.value_range == pytest.approx(inline.value_range, rel=1e-5)
    assert np.abs(shown.picture().astype(float) - inline.picture().astype(float)).max() <= 1


@pytest.mark.parametrize("lane_built", [(1.0, "demo")], indirect=True)
def test_a_cheap_row_map_moves_into_the_frame_loop(lane_built):
    """On the tiny model Integrated Gradients' 16 rows cost less than the share: measured, it joins
    the frame loop and is then computed (and charged) every frame."""
    pipe = lane_built.dashboard.pipeline
    got = Frames()
    pipe.set_publisher(got)
    _with(pipe, "integrated_gradients")
    pipe.start()
    try:
        frame = got.until(lambda f: "integrated_gradients" not in f.meta["background"]
                          and "map:integrated_gradients" in f.meta["costs"] and f.seq > 2)
    finally:
        assert pipe.stop(timeout=10)
    assert "integrated_gradients" in pipe.lanes.inline
    assert _blob(frame, "map:integrated_gradients") is not None
