"""The dashboard's trust backend: maps on a randomised copy, and a frame's deletion scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from convscope.engine import Engine, ViewRequest
from convscope.evaluate import metrics
from convscope.evaluate.evaluator import importance
from convscope.evaluate.live import LiveTrust
from convscope.evaluate.randomize import parametrised_layers, randomize_top
from convscope.models import load_model


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_randomized_maps_and_deletion_scores_match_their_definitions():
    bundle = load_model("mobilenet_v3_small", weights="random", input_size=64)
    frame = np.ascontiguousarray(data.chelsea()[::2, ::2])
    req = ViewRequest(algorithms=("gradcam", "saliency"), panels=("input", "predictions"), keep_raw=True)
    trust = LiveTrust(bundle, top_layers=3, seed=7)
    try:
        with Engine(bundle) as real:
            result = real.run(frame, req)
        rand = trust.randomized(frame, req, result)
        # the same as an engine on a copy randomised by hand with the same seed, for the same class
        layers = parametrised_layers(bundle.module)
        copy = randomize_top(bundle.module, layers, 3, seed=7)
        import dataclasses

        from convscope.engine import Target

        top = Target("class", result.predictions[0].index)
        with Engine(dataclasses.replace(bundle, module=copy)) as by_hand:
            want = by_hand.run(frame, dataclasses.replace(req, cam_target=top, selection_target=top))
        for name in ("gradcam", "saliency"):
            assert np.ptp(want.maps[name].raw) > 0, name  # a map with structure, not a blank one
            np.testing.assert_array_equal(rand.maps[name].raw, want.maps[name].raw)
        # randomising the classifier and the head convs changes Grad-CAM (a map that explains the model)
        h, w = result.input_tensor.shape[2:]
        rho = metrics.spearman(importance(result.maps["gradcam"].raw, (h, w))[None],
                               importance(rand.maps["gradcam"].raw, (h, w))[None])
        assert float(rho[0]) < 0.99
        scores = trust.deletion_scores(result, steps=5)
        assert set(scores) == {"gradcam", "saliency"}
        x = torch.as_tensor(result.input_tensor)
        cls = result.predictions[0].index

        def score(batch, i):
            with torch.no_grad():
                return torch.softmax(bundle.module(batch), 1)[:, cls]

        auc, _ = metrics.deletion(score, x, importance(result.maps["gradcam"].raw, (h, w))[None], 5)
        assert scores["gradcam"] == float(auc[0])
        assert 0 <= scores["saliency"] <= 1
    finally:
        trust.close()
