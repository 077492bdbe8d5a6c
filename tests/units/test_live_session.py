"""The unit explorer's live side (issue 15): the ``units`` view feeding a bound session through the
engine, checked against an independent forward hook on the user's model; the ``units`` message's
checks; the source follower; the background feature visualisation (same image as a direct
optimisation, cancelled when another unit is asked for, at most its share of the wall clock)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from skimage import data
from torch import nn

from convscope.engine import Engine
from convscope.errors import RequestError
from convscope.models import ModelBundle, Preprocessing
from convscope.models.preprocess import to_input
from convscope.request import ViewRequest
from convscope.server import protocol, unit_commands
from convscope.units.featvis import FeatureVis
from convscope.units.session import FeatVisWorker, UnitsSession
from convscope.views.units import bind, session_for, unbind


def _bundle() -> ModelBundle:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 5, 3, stride=2, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3)).eval()
    return ModelBundle(net, Preprocessing(input_size=(48, 48)), ("a", "b", "c"), "tiny-units")


PHOTOS = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]


def _maxima(bundle: ModelBundle, engine_input: torch.Tensor) -> torch.Tensor:
    """Per-channel maxima of layer "3" (the ReLU after the 2nd conv) by a plain forward hook."""
    got = []
    h = bundle.module[3].register_forward_hook(lambda m, i, o: got.append(o.detach().clone()))
    try:
        with torch.no_grad():
            bundle.module(engine_input)
    finally:
        h.remove()
    return got[0].flatten(2).amax(2)[0]


def test_view_feeds_the_bound_session_and_matches_a_forward_hook():
    bundle = _bundle()
    with Engine(bundle) as engine, Engine(bundle) as other:
        session = UnitsSession(bundle, engine.layer_info, k=9, patch=16)
        bind(engine.layer_info, session)
        try:
            req = engine.resolve(ViewRequest(conv_layer="3", algorithms=()))
            maxima = []
            for i, photo in enumerate(PHOTOS):
                session.frame_index = 10 + i
                result = engine.run(photo, req)
                maxima.append(_maxima(bundle, to_input(photo, bundle.preprocessing, bundle.device)))
            assert result.panels["units"].meta()["frames"] == len(PHOTOS)
            # an engine no session is bound to computes nothing for the view
            assert "units" not in other.run(PHOTOS[0], other.resolve(req)).panels
        finally:
            unbind(engine.layer_info)
        assert session_for(engine.layer_info) is None
    m = torch.stack(maxima)  # frames x channels
    for c in range(5):
        ans = session.query("3", c, featvis=False)
        if (m[:, c] > 0).any():
            want = sorted(zip(m[:, c].tolist(), range(10, 14), strict=True), key=lambda t: (-round(t[0], 3), t[1]))
            got = [(t["score"], t["frame"]) for t in ans["top"]]
            assert [s for s, _ in got] == sorted((s for s, _ in got), reverse=True)  # best first
            got = sorted(got, key=lambda t: (-round(t[0], 3), t[1]))  # ties (0.0) in any order
            assert [f for _, f in got] == [f for _, f in want]
            assert np.allclose([s for s, _ in got], [s for s, _ in want], rtol=1e-3, atol=1e-5)
            assert all(t["image"].startswith("data:image/jpeg;base64,") for t in ans["top"])
        assert sum(ans["histogram"]["counts"]) == len(PHOTOS)
    ov = session.query("3", 0, featvis=False)["overview"]
    assert np.allclose(ov["mean"], m.mean(0).numpy(), rtol=1e-3, atol=1e-5)
    assert ov["dead"] == [c for c in range(5) if not (m[:, c] > 0).any()]
    assert ov["order"] == torch.argsort(m.mean(0), descending=True, stable=True).tolist()
    by_frame = session.query("3", 0, order="frame", featvis=False)["overview"]
    assert by_frame["order"][0] == int(m[-1].argmax())
    assert session.query("3", 0)["featvis"] is None  # no worker: no visualisation


def test_follow_tags_frames_with_the_source_index():
    class Frame:
        def __init__(self, index):
            self.index = index

    class Source:
        def __init__(self):
            self.frames = [Frame(7), None, Frame(8)]

        def latest(self, timeout=0.0):
            return self.frames.pop(0)

    bundle = _bundle()
    session = UnitsSession(bundle, {})
    src = Source()
    session.follow(src)
    seen = []
    for _ in range(3):
        src.latest(0.05)
        seen.append(session.frame_index)
    assert seen == [7, 7, 8]  # None (no new frame) keeps the frame being recomputed


def test_units_message_checks():
    space = protocol.ModelSpace(conv={"a": 4, "b": None}, linear={}, num_classes=3, algorithms=())
    ok = unit_commands.parse({"type": "units", "channel": 3}, space, "a", True)
    assert ok == unit_commands.UnitsMessage("a", 3, "mean", True)
    assert unit_commands.parse({"type": "units", "channel": 99, "layer": "b", "order": "frame", "featvis": False},
                               space, "a", True).channel == 99  # unknown count: checked when run
    bad = [
        ({"type": "units", "channel": 4}, "out of range"),
        ({"type": "units", "channel": -1}, "out of range"),
        ({"type": "units", "channel": True}, "must be an integer"),
        ({"type": "units", "channel": "1"}, "must be an integer"),
        ({"type": "units", "channel": 1, "layer": "fc"}, "feature-map layer"),
        ({"type": "units", "channel": 1, "order": "size"}, "order must be one of"),
        ({"type": "units", "channel": 1, "featvis": 1}, "featvis must be true or false"),
        ({"type": "units", "channel": 1, "chanel": 2}, "unknown field"),
    ]
    for msg, words in bad:
        with pytest.raises(RequestError, match=words) as err:
            unit_commands.parse(msg, space, "a", True)
        assert "\n" not in str(err.value)
    with pytest.raises(RequestError, match="without the unit explorer"):
        unit_commands.parse({"type": "units", "channel": 1}, space, "a", False)


def _wait(worker: FeatVisWorker, layer: str, channel: int, states: tuple[str, ...], timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = worker.state(layer, channel)
        if st is not None and st["state"] in states:
            return st
        time.sleep(0.02)
    raise AssertionError(f"{layer}:{channel} never reached {states}: {worker.state(layer, channel)}")


def test_featvis_worker_matches_a_direct_run_is_cancelled_and_yields():
    bundle = _bundle()
    layers = {la.name: la for la in Engine(bundle).layers}
    layer = layers["3"]
    worker = FeatVisWorker(bundle, steps=6, size=32, share=0.5, threads=1)
    try:
        t0 = time.perf_counter()
        assert worker.request(layer, 1)["state"] in ("queued", "running")
        assert _wait(worker, "3", 1, ("done",))["step"] == 6
        wall = time.perf_counter() - t0
        busy = sum(worker.step_s)
        assert wall >= 0.8 * busy / 0.5  # slept at least as long as it optimised (share 0.5)
        direct = FeatureVis(bundle).render(layer, 1, steps=6, size=32)
        assert np.abs(worker.image("3", 1).astype(int) - direct.astype(int)).max() <= 2
        assert worker.request(layer, 1)["state"] == "done"  # cached: nothing recomputed
        # asking for another unit stops the one running
        slow = FeatVisWorker(bundle, steps=10_000, size=32, share=0.5)
        try:
            slow.request(layer, 2)
            _wait(slow, "3", 2, ("running",))
            slow.request(layer, 3)
            assert _wait(slow, "3", 2, ("cancelled",))["step"] < 10_000
            _wait(slow, "3", 3, ("running",))
        finally:
            slow.stop()
    finally:
        worker.stop()
    # the main thread's torch threads are its own: the worker's one thread did not change them
    assert torch.get_num_threads() >= 1


def test_units_outdir_replaces_the_session_patches_and_is_checked(tmp_path):
    import json

    from PIL import Image

    from convscope.cli.live import _units_dir
    from convscope.errors import UsageError

    bundle = _bundle()
    with Engine(bundle) as engine:
        session = UnitsSession(bundle, engine.layer_info, k=3, patch=8)
        bind(engine.layer_info, session)
        try:
            req = engine.resolve(ViewRequest(conv_layer="3", algorithms=()))
            for photo in PHOTOS[:2]:
                engine.run(photo, req)
        finally:
            session.close()
    doc = {"model": "tiny-units", "layers": {"3": [{"channel": 0, "top": [
        {"source": "sub/a.jpg", "frame": None, "box": [0, 0, 4, 4], "score": 2.5},
        {"source": "b.mp4", "frame": 12, "box": [1, 1, 5, 5], "score": 1.5}]}]}}
    (tmp_path / "units.json").write_text(json.dumps(doc))
    (tmp_path / "patches" / "3").mkdir(parents=True)
    for rank in range(2):
        Image.fromarray(np.full((4, 4, 3), 60 * rank, np.uint8)).save(tmp_path / "patches" / "3" / f"c0000_{rank}.jpg")
    assert _units_dir(str(tmp_path)) == tmp_path.resolve()
    assert session.load(tmp_path) == ["3"]
    ans = session.query("3", 0, featvis=False)
    assert ans["source"] == "dataset"
    assert [(t["source"], t["frame"], t["score"]) for t in ans["top"]] == [("sub/a.jpg", None, 2.5), ("b.mp4", 12, 1.5)]
    assert all(t["image"].startswith("data:image/jpeg;base64,") for t in ans["top"])
    assert sum(ans["histogram"]["counts"]) == 2  # the histogram and overview still come from the session
    assert ans["overview"]["frames"] == 2
    for bad, words in ((tmp_path / "nothing", "no units.json"), (tmp_path / "broken", "cannot be read")):
        bad.mkdir()
        if bad.name == "broken":
            (bad / "units.json").write_text("{not json")
        with pytest.raises(UsageError, match=words):
            _units_dir(str(bad))
