"""The engine on a CUDA device gives the CPU's maps (run by benchmarks/gpu.sh; skipped without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from convscope.engine import Engine, Target, ViewRequest
from convscope.models import load_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

ALL = ("gradcam", "gradcam_pp", "guided_backprop", "guided_gradcam", "saliency")


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])


@pytest.mark.parametrize("strategy", ["sequential", "batched"])
@pytest.mark.parametrize("selection_target", [Target("class"), Target("channel", 5, "layer4.1.conv2")])
def test_cuda_maps_match_cpu(strategy, selection_target):
    frame = data.chelsea()
    req = ViewRequest(algorithms=ALL, selection_target=selection_target, keep_raw=True)
    with Engine(load_model("resnet18", weights="random")) as cpu_engine:
        ref = cpu_engine.run(frame, req)
    with Engine(load_model("resnet18", weights="random", device="cuda"), strategy=strategy) as gpu_engine:
        got = gpu_engine.run(frame, req)
    assert [p.index for p in got.predictions] == [p.index for p in ref.predictions]
    for name in ALL:
        assert corr(got.maps[name].raw, ref.maps[name].raw) > 0.999, name
    assert np.abs(got.activations.image.astype(int) - ref.activations.image.astype(int)).mean() < 2.0


def test_cuda_memory_is_flat_over_frames():
    frame = data.coffee()
    with Engine(load_model("efficientnet_lite0", device="cuda")) as engine:
        for _ in range(5):
            engine.run(frame)
        torch.cuda.synchronize()
        start = torch.cuda.memory_allocated()
        for _ in range(100):
            engine.run(frame)
        torch.cuda.synchronize()
        assert torch.cuda.memory_allocated() - start < 1 << 20


def test_cuda_folded_channels_last_copy_matches_the_model_as_loaded():
    frame = data.chelsea()
    bundle = load_model("resnet18", weights="random", device="cuda")
    req = ViewRequest(algorithms=ALL, keep_raw=True)
    with Engine(bundle) as fast, Engine(bundle, optimize=False) as plain:
        assert fast.optimization == "20 BatchNorm folded into convs, channels_last"
        a, b = fast.run(frame, req), plain.run(frame, req)
    assert [p.index for p in a.predictions] == [p.index for p in b.predictions]
    for name in ALL:
        assert corr(a.maps[name].raw, b.maps[name].raw) > 0.999, name
    assert corr(a.activations.raw, b.activations.raw) > 0.9999
