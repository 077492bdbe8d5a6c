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
from convscope.server.lanes import (
    BackgroundMap,
    Lanes,
    _background_request,
    background_engine_factory,
    row_maps,
)
from convscope.server.security import Guard
from convscope.sources import open_source
from convscope.views import Result

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


def test_the_split_follows_measured_costs(built):
    """A background map whose own cost is under half the share of a frame joins the frame loop;
    one whose cost in the loop grows past the share of the rest of the frame goes back."""
    state = replace(built.dashboard.pipeline.state, algorithms=("gradcam", "integrated_gradients"))
    lanes = Lanes(built.engine, background_engine_factory(built.bundle), share=0.2)
    request, background = lanes.split(state)
    assert background == ("integrated_gradients",)
    lanes._wanted, lanes._newest = background, (None, 5, state)  # as offer() leaves them, without the thread
    done = BackgroundMap("panel", _background_request(state, "integrated_gradients"), frame=3, seconds=0.5, cost=0.02)
    lanes._done = {"integrated_gradients": done}
    merged, info = lanes.merge(Result(panels={}, costs={"map:gradcam": 0.001}), frame=5, seconds=0.1)
    assert merged.panels["map:integrated_gradients"] == "panel"
    assert info == {"integrated_gradients": {"pending": False, "frames_old": 2, "ms": 500.0, "stale": False}}
    assert lanes.inline == set()  # 20 ms > half of 0.2 x 100 ms: stays in the background
    lanes._done["integrated_gradients"] = replace(done, cost=0.009)
    lanes.merge(Result(), frame=6, seconds=0.1)
    assert lanes.inline == {"integrated_gradients"}  # 9 ms <= 10 ms: every frame from now on
    assert lanes.split(state) == (state.to_request(), ())
    lanes.merge(Result(costs={"map:integrated_gradients": 0.01}), frame=7, seconds=0.1)
    assert lanes.inline == {"integrated_gradients"}  # 10 ms <= 0.2 x the rest of the frame
    _, info = lanes.merge(Result(costs={"map:integrated_gradients": 0.05}), frame=8, seconds=0.1)
    assert lanes.inline == set()  # 50 ms > 0.2 x the rest: back to the background, to be measured anew
    assert info["integrated_gradients"]["pending"] is True
    lanes._done["integrated_gradients"] = done
    changed = replace(state, cam_class=3)  # a new selection: the old picture is labelled stale
    lanes._newest = (None, 8, changed)
    assert lanes.merge(Result(), frame=8, seconds=0.1)[1]["integrated_gradients"]["stale"] is True
