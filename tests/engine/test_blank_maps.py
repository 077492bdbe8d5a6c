"""Blank maps are reported, never drawn silently; guided Grad-CAM shows structure at any scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from engine_helpers import MixedReLUNet, seeded, tiny_bundle
from helpers.blank_models import dead_net

from convscope.engine import Engine, ViewRequest
from convscope.models import Preprocessing
from convscope.models.bundle import ModelBundle
from convscope.models.labels import generic_labels
from convscope.render import ALL_ZERO, NON_FINITE

ALL = ("gradcam", "gradcam_pp", "guided_backprop", "guided_gradcam", "saliency")


def dead_bundle() -> ModelBundle:
    prep = Preprocessing(input_size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    return ModelBundle(dead_net(), prep, generic_labels(6), "dead")


def test_zero_gamma_layer_gives_an_empty_gradcam_with_its_reason(chelsea):
    """timm's resnet18d case: gamma = 0 in the BN after the CAM layer, so its gradient is zero."""
    request = ViewRequest(cam_layer="conv2", algorithms=ALL, keep_raw=True, conv_layer="conv2", channel=1,
                          fc_layer="fc", panels=("input", "predictions", "activations", "channel", "fc"))
    with Engine(dead_bundle()) as engine:
        res = engine.run(chelsea, request)
    for name in ("gradcam", "gradcam_pp", "guided_gradcam"):
        out = res.maps[name]
        assert not np.any(out.raw), name
        assert out.empty == ALL_ZERO and out.value_range == (0.0, 0.0), name
        assert out.layer == "conv2"
    for name in ("guided_backprop", "saliency"):  # the residual path still carries a gradient
        out = res.maps[name]
        assert out.empty is None and np.any(out.raw), name
        assert out.value_range == (float(out.raw.min()), float(out.raw.max()))
        assert out.image.std() > 5
    # the layer itself is alive: nothing to report on the grid, the channel or the FC map
    assert res.activations.empty is None and res.channel_empty is None and res.fc.empty is None


def test_dead_layers_give_an_empty_grid_channel_and_fc_map(chelsea):
    request = ViewRequest(cam_layer="conv2", conv_layer="conv_dead", channel=2, fc_layer="fc_dead",
                          panels=("input", "predictions", "activations", "channel", "fc"), algorithms=("gradcam",))
    with Engine(dead_bundle()) as engine:
        res = engine.run(chelsea, request)
        alive = engine.run(chelsea, ViewRequest(conv_layer="conv1", fc_layer="fc", algorithms=("gradcam",),
                                                cam_layer="conv1"))
    assert res.activations.empty == ALL_ZERO and res.channel_empty == ALL_ZERO and res.fc.empty == ALL_ZERO
    assert alive.activations.empty is None and alive.fc.empty is None
    assert alive.maps["gradcam"].empty is None  # conv1 still gets a gradient (through the residual)


def test_nan_in_a_layer_is_reported_and_drawn(chelsea):
    net = seeded(MixedReLUNet)
    with torch.no_grad():
        net.conv4.bias[3] = float("nan")  # one channel of the last conv, and everything after it
    with Engine(tiny_bundle(net)) as engine:
        res = engine.run(chelsea, ViewRequest(conv_layer="conv4", fc_layer="fc2", cam_layer="conv4",
                                              algorithms=("gradcam", "guided_backprop", "saliency")))
    assert res.activations.empty == f"{NON_FINITE} in 1 of 16 channels"
    assert res.fc.empty == NON_FINITE
    assert res.maps["gradcam"].empty == NON_FINITE  # the CAM sums the nan channel
    assert res.maps["gradcam"].image.reshape(-1, 3).std(axis=0).max() == 0  # drawn flat, no crash in the lookup
    for out in res.maps.values():  # the ReLU6 after conv4 blocks nan gradients (nan > 0 is False)
        assert out.empty in (None, NON_FINITE) and out.image.dtype == np.uint8, out.algorithm




def test_guided_gradcam_of_tiny_gradients_is_not_flat_and_matches_its_definition(chelsea, mixed):
    """Scale the classifier by 1e-12: the CAM is ~1e-12 and guided * CAM ~1e-24, which the old
    fixed thresholds drew as flat grey; the map is also checked against its written-out definition."""
    bundle, ref = mixed
    with torch.no_grad():
        for net in (bundle.module, ref):
            net.fc2.weight.mul_(1e-12)
            net.fc2.bias.mul_(1e-12)
    with Engine(bundle) as engine:
        res = engine.run(chelsea, ViewRequest(keep_raw=True, cam_layer="conv4",
                                              algorithms=("gradcam", "guided_backprop", "guided_gradcam")))
    x = torch.from_numpy(res.input_tensor.copy())
    cls = res.maps["gradcam"].target.index
    # Grad-CAM at conv4 by hand, standard backward on the model itself
    feats = {}
    plain = bundle.module
    h = plain.conv4.register_forward_hook(lambda m, i, o: feats.__setitem__("a", o))
    with torch.enable_grad():
        out = plain(x.clone().requires_grad_())
    h.remove()
    (grad_a,) = torch.autograd.grad(out[0, cls], [feats["a"]])
    cam = (grad_a.mean(dim=(-2, -1), keepdim=True) * feats["a"]).sum(1).clamp(min=0).detach()
    xg = x.clone().requires_grad_()
    (guided,) = torch.autograd.grad(ref(xg)[0, cls], [xg])  # the twin's ReLUs are the guided reference
    up = F.interpolate(cam.unsqueeze(1), size=x.shape[-2:], mode="bilinear", align_corners=False)
    expected = (guided * up / up.max()).detach()
    got = torch.from_numpy(res.maps["guided_gradcam"].raw)
    assert float(cam.max()) < 1e-9  # the premise: tiny maps
    torch.testing.assert_close(got, expected[0], rtol=1e-3, atol=1e-4 * float(expected.abs().max()))
    for name in ("gradcam", "guided_backprop", "guided_gradcam"):
        out = res.maps[name]
        assert out.empty is None, name
        assert out.image.std() > 10, name  # a picture, not flat grey or one colour


@pytest.mark.slow
@pytest.mark.parametrize("name", ["convnext_tiny", "vgg11_bn"])
def test_guided_gradcam_of_random_weight_models_is_not_flat(name, chelsea):
    from convscope.models import load_model

    torch.manual_seed(0)
    bundle = load_model(name, weights="random")
    with Engine(bundle) as engine:
        res = engine.run(chelsea, ViewRequest(keep_raw=True, algorithms=("gradcam", "guided_backprop", "guided_gradcam")))
    ggc = res.maps["guided_gradcam"]
    assert ggc.empty is None and np.isfinite(ggc.raw).all()
    assert ggc.image.std() > 10  # was flat grey (std 0) with the fixed 1e-5 in the standard deviation
    # the definition: guided backprop (same target, shared backward) times the CAM scaled to [0, 1]
    cam = torch.from_numpy(res.maps["gradcam"].raw)[None, None]
    up = F.interpolate(cam, size=ggc.raw.shape[-2:], mode="bilinear", align_corners=False)[0]
    expected = res.maps["guided_backprop"].raw * (up / up.max()).numpy()
    np.testing.assert_allclose(ggc.raw, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


@pytest.mark.slow
def test_timm_resnet18d_zero_gamma_is_reported_and_the_default_layer_has_signal(chelsea):
    """The finding itself: timm zero-initialises the last BN gamma of each block, so Grad-CAM at the
    last conv (followed by that BN) is exactly zero with random weights and is labelled so. The
    default layer (the block's output, after the residual sum) still carries the class signal."""
    pytest.importorskip("timm")
    from convscope.models import load_model

    bundle = load_model("timm:resnet18d", weights="random")
    with Engine(bundle) as engine:
        last_conv = ViewRequest(algorithms=("gradcam", "guided_backprop", "guided_gradcam"), cam_layer="layer4.1.conv2")
        res = engine.run(chelsea, last_conv)
        default = engine.run(chelsea, ViewRequest(algorithms=("gradcam",)))
    assert res.maps["gradcam"].empty == ALL_ZERO and res.maps["guided_gradcam"].empty == ALL_ZERO
    assert res.maps["gradcam"].layer == "layer4.1.conv2"
    assert res.maps["guided_backprop"].empty is None
    assert default.maps["gradcam"].layer == "layer4"
