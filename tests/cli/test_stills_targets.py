"""Top-K runs through the engine: grouped batches give the same maps as one run per image."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from convscope.engine import Engine, Target, ViewRequest
from convscope.models import load_model
from convscope.stills.targets import run_targets


@pytest.fixture(scope="module")
def engine():
    with Engine(load_model("efficientnet_lite0")) as e:
        yield e


@pytest.mark.slow
def test_top_k_targets_follow_each_images_ranking(engine):
    cat = data.chelsea()
    frames = [cat, np.ascontiguousarray(cat[:, ::-1]), data.coffee()]  # two share their top-2
    request = ViewRequest(cam_layer="conv_head", algorithms=("gradcam", "guided_backprop"),
                          panels=("predictions",), keep_raw=True)
    out = run_targets(engine, frames, request, top_k=2)
    assert [len(r) for r in out] == [2, 2, 2]
    for frame, per_image in zip(frames, out, strict=True):
        ranked = [p.index for p in per_image[0].predictions]
        for k, result in enumerate(per_image):
            cam = result.maps["gradcam"]
            assert cam.target == Target("class", ranked[k])
            alone = engine.run(frame, ViewRequest(cam_layer="conv_head", algorithms=("gradcam",),
                                                  cam_target=Target("class", ranked[k]), keep_raw=True))
            np.testing.assert_allclose(cam.raw, alone.maps["gradcam"].raw, rtol=1e-4,
                                       atol=1e-5 * float(np.abs(cam.raw).max()))


def test_fixed_unit_target_runs_once(engine):
    frames = [data.chelsea(), data.coffee()]
    request = ViewRequest(algorithms=("gradcam", "guided_backprop"), panels=("predictions",))
    unit = Target("neuron", 285, "classifier")
    out = run_targets(engine, frames, request, top_k=2, unit=unit)
    for per_image in out:
        assert per_image[0].maps["guided_backprop"].target == unit
        assert "guided_backprop" not in per_image[1].maps and "gradcam" in per_image[1].maps
    fixed = run_targets(engine, frames, request, top_k=4, class_index=7)
    assert all(len(r) == 1 and r[0].maps["gradcam"].target == Target("class", 7) for r in fixed)
