"""The dashboard's trust messages (issue 17): the sanity toggle and per-frame deletion scores.

The worker against references computed here from the definitions (an engine on a copy randomised
by hand, scipy's Spearman, the deletion curve from :func:`convscope.evaluate.metrics.deletion`), and
the messages through the real app: one-line errors, nothing computed until asked.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import spearmanr
from server_helpers import BASE_URL, WS, receive_json
from server_models import SPEC
from skimage import data
from starlette.testclient import TestClient

from convscope.engine import Engine, Target
from convscope.evaluate import metrics
from convscope.evaluate.evaluator import importance
from convscope.evaluate.randomize import parametrised_layers, randomize_top
from convscope.models import load_model
from convscope.server import protocol, trust
from convscope.server.app import create_app

pytestmark = pytest.mark.timeout(300)


def _image(url: str) -> np.ndarray:
    assert url.startswith("data:image/jpeg;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"), dtype=float)


def test_messages_are_checked_in_one_line():
    bad = [
        ({"type": "sanity"}, "sanity needs on: true or false, got null"),
        ({"type": "sanity", "on": 1}, "sanity needs on: true or false, got 1"),
        ({"type": "sanity", "on": True, "top_layers": 5}, "top_layers must be from 1 to 4"),
        ({"type": "sanity", "on": True, "top_layers": 0}, "top_layers must be from 1 to 4"),
        ({"type": "sanity", "on": True, "top_layers": "2"}, "top_layers must be an integer"),
        ({"type": "sanity", "on": True, "layers": 2}, "unknown field 'layers' in a 'sanity' message"),
        ({"type": "deletion", "steps": 1}, "steps must be from 2 to 50, got 1"),
        ({"type": "deletion", "steps": True}, "steps must be an integer"),
        ({"type": "deletion", "step": 4}, "unknown field 'step' in a 'deletion' message"),
    ]
    for msg, want in bad:
        with pytest.raises(Exception) as exc:
            trust.parse(msg, layers=4)
        assert want in str(exc.value) and "\n" not in str(exc.value), (msg, str(exc.value))
    assert trust.parse({"type": "sanity", "on": True, "top_layers": 4}, 4) == trust.SanityMessage(True, 4)
    assert trust.parse({"type": "sanity", "on": False}, 4) == trust.SanityMessage(False, None)
    assert trust.parse({"type": "deletion"}, 4) == trust.DeletionMessage(trust.DEFAULT_STEPS)


def test_worker_matches_a_copy_randomised_by_hand_and_the_deletion_definition():
    bundle = load_model(SPEC, input_size=64, device="cpu")
    space = protocol.ModelSpace.from_layers(Engine(bundle).layers, 10, ("gradcam", "saliency"))
    state = protocol.ViewState.initial(space)
    state = dataclasses.replace(state, algorithms=("gradcam", "saliency"))
    frame = np.ascontiguousarray(data.chelsea()[::3, ::3])
    with Engine(bundle) as live:  # the dashboard's own engine stays on the model while the worker copies it
        shown = live.run(frame, state.to_request())
        pipeline = SimpleNamespace(engine=live, state=state, last_result=shown, computed=[7])
        worker = trust.TrustWorker(pipeline, seed=3)
        assert worker.layers == 4 and worker._thread is None  # nothing runs until asked
        got: dict = {}
        arrived = threading.Event()

        def publish(kind, msg):
            got[kind] = msg
            arrived.set()

        worker.publish = publish
        replies: list = []
        worker.ask_deletion(6, lambda reply, error: replies.append((reply, error)))
        worker.apply(trust.SanityMessage(True, 2))
        assert arrived.wait(120), "no trust message"
        worker.apply(trust.SanityMessage(False, None))
        worker.stop(60)
    msg = got["trust"]
    assert set(msg["maps"]) == {"gradcam", "saliency"} and msg["top_layers"] == 2 and msg["frame"] == 7

    # the reference: the same input, an engine on the trained model and one on a copy randomised by hand
    image = shown.panels["input"].image
    request = state.to_request(keep_raw=True, panels=("input", "predictions"))
    with Engine(bundle) as engine:
        real = engine.run(image, request)
    cls = real.predictions[0].index
    assert msg["class"] == cls
    pinned = dataclasses.replace(request, cam_target=Target("class", cls), selection_target=Target("class", cls))
    copy = randomize_top(bundle.module, parametrised_layers(bundle.module), 2, seed=3)
    with Engine(dataclasses.replace(bundle, module=copy)) as engine:
        rand = engine.run(image, pinned)
    h, w = real.input_tensor.shape[2:]
    for name in ("gradcam", "saliency"):
        a = importance(real.maps[name].raw, (h, w)).numpy().ravel()
        b = importance(rand.maps[name].raw, (h, w)).numpy().ravel()
        assert msg["maps"][name]["rho"] == pytest.approx(spearmanr(a, b).statistic, abs=1e-3), name
        # the picture sent is the randomised map itself (JPEG encoding is deterministic: same bytes)
        assert msg["maps"][name]["image"] == trust.data_url(rand.maps[name].picture()), name
    assert msg["maps"]["gradcam"]["rho"] < 0.99  # randomising fc1 and fc2 changes Grad-CAM

    (reply, error), = replies
    assert error is None and reply["steps"] == 6 and reply["class"] == cls
    x = torch.as_tensor(real.input_tensor)

    def score(batch, i):
        with torch.no_grad():
            return torch.softmax(bundle.module(batch), 1)[:, cls]

    for name in ("gradcam", "saliency"):
        auc, _ = metrics.deletion(score, x, importance(real.maps[name].raw, (h, w))[None], 6)
        assert reply["scores"][name] == pytest.approx(float(auc[0]), abs=1e-5), name


def test_app_sends_sanity_panels_and_deletion_scores(dashboard):
    app = create_app(dashboard)
    with TestClient(app, base_url=BASE_URL) as client, client.websocket_connect(WS) as ws:
        hello_sanity = receive_json(ws, "sanity")
        assert hello_sanity == {"type": "sanity", "on": False, "top_layers": 1, "layers": 4}
        receive_json(ws, "frame")
        assert app.state.trust._thread is None  # off: no thread, no work beside the frame loop
        ws.send_text(json.dumps({"type": "sanity", "on": True, "top_layers": 9}))
        err = receive_json(ws, "error")
        assert err["about"] == "sanity" and err["message"] == \
            "top_layers must be from 1 to 4 (the model's conv and linear layers), got 9"
        ws.send_text(json.dumps({"type": "sanity", "on": True, "top_layers": 4}))
        assert receive_json(ws, "sanity")["on"] is True
        msg = receive_json(ws, "trust", limit=2000)
        algorithms = dashboard.pipeline.state.algorithms
        assert set(msg["maps"]) == set(algorithms) and msg["layers"] == 4
        for m in msg["maps"].values():
            assert m["rho"] is None or -1 <= m["rho"] <= 1
            assert _image(m["image"]).shape[:2] == (64, 64)
        ws.send_text(json.dumps({"type": "deletion", "steps": 4}))
        reply = receive_json(ws, "deletion", limit=2000)
        assert set(reply["scores"]) == set(algorithms) and reply["steps"] == 4
        assert all(0 <= v <= 1 for v in reply["scores"].values())
        ws.send_text(json.dumps({"type": "sanity", "on": False}))
        assert receive_json(ws, "sanity") == {"type": "sanity", "on": False, "top_layers": 4, "layers": 4}
