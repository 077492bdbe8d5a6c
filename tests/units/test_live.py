"""LiveUnits: trackers fed with captured activations, a channel's answer, the overview, a dataset."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import torch
from PIL import Image
from torch import nn

from convscope.models import ModelBundle, Preprocessing, discover_layers
from convscope.units.live import LiveUnits


def _bundle():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 5, 3, stride=2, padding=1),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3)).eval()
    return ModelBundle(net, Preprocessing(input_size=(32, 32)), ("a", "b", "c"), "tiny")


def test_session_answers():
    bundle = _bundle()
    layer = {la.name: la for la in discover_layers(bundle)}["2"]
    live = LiveUnits(bundle, k=3, patch=8, history=4)
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, 32, 32, generator=gen) * 255
    acts = torch.randn(6, 5, 16, 16, generator=gen)
    acts[:, 4] = -1.0  # a dead channel
    live.observe(layer, acts[:3], [0, 1, 2], images[:3])
    live.observe(layer, acts[3:], [3, 4, 5], images[3:])
    assert live.rfs["2"].method == "architecture" and live.rfs["2"].size == (5, 5)
    ans = live.channel("2", 1)
    maxima = acts[:, 1].flatten(1).amax(1)
    assert [t["frame"] for t in ans["top"]] == torch.argsort(maxima, descending=True)[:3].tolist()
    img = Image.open(io.BytesIO(base64.b64decode(ans["top"][0]["image"].split(",", 1)[1])))
    assert img.size == (8, 8)
    # histogram over the last 4 frames' maxima only (a ring)
    assert sum(ans["histogram"]["counts"]) == 4
    assert np.isclose(ans["histogram"]["max"], float(maxima[2:].max()))
    ov = live.overview("2")
    assert ov["dead"] == [4] and ov["frames"] == 6
    assert ov["order"][0] == int(acts.flatten(2).amax(2).mean(0).argmax())
    last = live.overview("2", order="frame")
    assert last["order"][0] == int(acts[5].flatten(1).amax(1).argmax())


def test_dataset_answers(tmp_path):
    bundle = _bundle()
    doc = {"model": "tiny", "layers": {"2": [{"channel": 0, "top": [
        {"source": "a.jpg", "frame": None, "box": [0, 0, 4, 4], "score": 2.0}]}]}}
    (tmp_path / "units.json").write_text(json.dumps(doc))
    (tmp_path / "patches" / "2").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "patches" / "2" / "c0000_0.jpg")
    live = LiveUnits(bundle)
    live.load(tmp_path)
    ans = live.channel("2", 0)
    assert ans["source"] == "dataset" and ans["top"][0]["score"] == 2.0
    assert ans["top"][0]["image"].startswith("data:image/jpeg;base64,")
