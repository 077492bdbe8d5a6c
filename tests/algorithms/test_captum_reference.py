"""Our raw maps against captum's on a real photo: Grad-CAM, guided backprop, guided Grad-CAM,
neuron guided backprop (a conv channel's maximum and an FC neuron).

ResNet-50 reuses one in-place ReLU module three times per Bottleneck; VGG16 puts in-place ReLUs
right after the captured conv and linear layers; EfficientNet-Lite0 (real weights) uses ReLU6.
captum's guided backprop only overrides ``nn.ReLU`` modules, so for ReLU6 the reference runs on
a deep copy in which every ``nn.ReLU6`` becomes ``ReLU`` followed by a clamp at 6 (``Hardtanh``
from -inf to 6). That is the same function, and its guided backward is the same rule:
``relu(g * (y < 6)) * (x > 0) = relu(g) * (0 < x < 6)``, which is what our ReLU6 rule applies.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from algo_helpers import pearson
from captum.attr import GuidedBackprop, GuidedGradCam, LayerGradCam, NeuronGuidedBackprop
from torch import nn

from convscope.engine import Engine, Target, ViewRequest

R_MIN = 0.999
CHANNEL = 5
NEURON = 7


def relu6_as_relu_and_clamp(model: nn.Module) -> nn.Module:
    ref = copy.deepcopy(model)
    for module in list(ref.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU6):
                setattr(module, name, nn.Sequential(nn.ReLU(), nn.Hardtanh(float("-inf"), 6.0)))
    return ref


@pytest.mark.parametrize(
    "name", ["resnet50", "efficientnet_lite0", pytest.param("vgg16", marks=pytest.mark.slow)]
)
def test_maps_match_captum(name, small_zoo, chelsea):
    bundle = small_zoo(name)  # 128 px: the references do not depend on the input size
    with Engine(bundle) as engine:
        request = ViewRequest(keep_raw=True, algorithms=("gradcam", "guided_backprop", "guided_gradcam"))
        cam_layer = engine.resolve(request).cam_layer
        fc_layer = engine.linear_layers[0].name
        res = engine.run(chelsea, request)
        by_channel = engine.run(
            chelsea,
            ViewRequest(
                keep_raw=True,
                algorithms=("guided_backprop",),
                selection_target=Target("channel", CHANNEL, cam_layer),
            ),
        )
        by_neuron = engine.run(
            chelsea,
            ViewRequest(
                keep_raw=True, algorithms=("guided_backprop",), selection_target=Target("neuron", NEURON, fc_layer)
            ),
        )
    x = torch.from_numpy(res.input_tensor.copy())
    cls = res.maps["gradcam"].target.index
    assert cls == res.predictions[0].index
    ref_model = relu6_as_relu_and_clamp(bundle.module) if name == "efficientnet_lite0" else bundle.module
    layers = dict(ref_model.named_modules())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # captum warns on every guided call
        cam = LayerGradCam(ref_model, layers[cam_layer]).attribute(x, target=cls, relu_attributions=True)
        gb = GuidedBackprop(ref_model).attribute(x.clone().requires_grad_(), target=cls)
        ggc = GuidedGradCam(ref_model, layers[cam_layer]).attribute(
            x.clone().requires_grad_(), target=cls, interpolate_mode="bilinear"
        )
        ch = NeuronGuidedBackprop(ref_model, layers[cam_layer]).attribute(
            x.clone().requires_grad_(), neuron_selector=lambda out: out[:, CHANNEL].amax(dim=(-2, -1))
        )
        fc = NeuronGuidedBackprop(ref_model, layers[fc_layer]).attribute(
            x.clone().requires_grad_(), neuron_selector=NEURON
        )
    assert res.maps["gradcam"].raw.shape == tuple(cam.shape[-2:])
    assert pearson(cam, res.maps["gradcam"].raw) >= R_MIN
    assert pearson(gb, res.maps["guided_backprop"].raw) >= R_MIN
    assert pearson(ggc, res.maps["guided_gradcam"].raw) >= R_MIN
    assert pearson(ch, by_channel.maps["guided_backprop"].raw) >= R_MIN
    assert pearson(fc, by_neuron.maps["guided_backprop"].raw) >= R_MIN
    # the comparison can fail: a plain gradient is far from the guided one
    xg = x.clone().requires_grad_()
    (plain,) = torch.autograd.grad(bundle.module(xg)[0, cls], [xg])
    assert pearson(plain, res.maps["guided_backprop"].raw) < 0.9
