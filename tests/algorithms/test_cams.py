"""Grad-CAM and Grad-CAM++ on a tiny network with set weights, worked out by hand."""

from __future__ import annotations

import numpy as np
import torch
from skimage import data
from torch import nn

from convscope.algorithms.gradcam import gradcam_map
from convscope.algorithms.gradcam_pp import gradcam_pp_map
from convscope.engine import Engine, Target, ViewRequest
from convscope.models import ModelBundle, Preprocessing
from convscope.models.labels import generic_labels


def _net() -> nn.Module:
    """1x1 conv (2 channels) -> ReLU -> global average -> linear; weights chosen by hand."""
    conv = nn.Conv2d(3, 2, 1)
    fc = nn.Linear(2, 2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.5]]).view(2, 3, 1, 1))
        conv.bias.copy_(torch.tensor([0.1, -0.2]))
        fc.weight.copy_(torch.tensor([[2.0, -1.0], [-0.5, 3.0]]))
        fc.bias.zero_()
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc).eval()


def test_gradcam_by_hand_on_a_tiny_network():
    module = _net()
    bundle = ModelBundle(module, Preprocessing(input_size=(8, 8)), generic_labels(2), "tiny")
    # the conv's own output (the default layer is the ReLU after it: the map that feeds the head)
    req = ViewRequest(algorithms=("gradcam", "gradcam_pp"), cam_target=Target("class", 1), keep_raw=True,
                      cam_layer="0")
    with Engine(bundle) as engine:
        res = engine.run(data.coffee(), req)
    x = torch.from_numpy(res.input_tensor.copy())[0].numpy()
    a = (
        np.einsum("kc,chw->khw", module[0].weight[:, :, 0, 0].detach().numpy(), x)
        + module[0].bias.detach().numpy()[:, None, None]
    )
    # d y1 / d A_k(ij) = W[1, k] * [A_k(ij) > 0] / (h * w)
    grad = module[4].weight[1].detach().numpy()[:, None, None] * (a > 0) / a[0].size
    alpha = grad.mean(axis=(1, 2))
    expected = np.maximum((alpha[:, None, None] * a).sum(axis=0), 0)
    assert expected.max() > 0
    np.testing.assert_allclose(res.maps["gradcam"].raw, expected, rtol=1e-4, atol=1e-7)
    assert res.maps["gradcam"].layer == "0"
    # Grad-CAM++ on the same captures, by its closed form
    g2, g3 = grad**2, grad**3
    denom = 2 * g2 + a.sum(axis=(1, 2), keepdims=True) * g3
    coef = np.where(denom != 0, g2 / np.where(denom != 0, denom, 1), 0)
    w = (coef * np.maximum(grad, 0)).sum(axis=(1, 2))
    expected_pp = np.maximum((w[:, None, None] * a).sum(axis=0), 0)
    np.testing.assert_allclose(res.maps["gradcam_pp"].raw, expected_pp, rtol=1e-4, atol=1e-9)


def test_cam_maps_are_relu_of_weighted_sums():
    torch.manual_seed(0)
    a = torch.randn(2, 5, 4, 4)
    g = torch.randn(2, 5, 4, 4)
    cam = gradcam_map(a, g)
    assert cam.shape == (2, 4, 4) and (cam >= 0).all()
    manual = torch.relu(torch.einsum("bk,bkhw->bhw", g.mean(dim=(2, 3)), a))
    torch.testing.assert_close(cam, manual)
    assert (gradcam_pp_map(a, g) >= 0).all()
