"""Receptive fields against the gradient's support, and the mapping back to the source frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convscope.models.bundle import Preprocessing
from convscope.models.preprocess import resize_crop, to_input
from convscope.units.receptive_field import _Stop, input_gradient_support, receptive_field, to_source

# (model, layer, the textbook receptive field size at that layer)
CASES = [
    ("resnet50", "layer3", 267),
    ("vgg16", "features.16", 44),
    ("efficientnet_lite0", "blocks.1", 19),
    ("efficientnet_lite0", "blocks.3.0.conv_dw", 83),
]


def _max_unit_gradient(bundle, layer, x, channel):
    """Input gradient of ``channel``'s maximum on ``x``, and the max's position."""
    module = bundle.module
    got = []

    def hook(_m, _i, out):
        got.append(out)
        raise _Stop

    handle = dict(module.named_modules())[layer.name].register_forward_hook(hook)
    try:
        x = x.clone().requires_grad_()
        try:
            module(x)
        except _Stop:
            pass
        m = layer.as_map(got[0])[0, channel]
        pos = int(m.flatten().argmax())
        y, xx = divmod(pos, m.shape[1])
        (g,) = torch.autograd.grad(m[y, xx], x)
    finally:
        handle.remove()
    return g[0], (y, xx)


@pytest.mark.parametrize("model,name,size", CASES)
def test_box_contains_the_gradient_of_the_channel_max(units_models, photos, model, name, size):
    bundle, layers = units_models(model)
    layer = layers[name]
    rf = receptive_field(bundle, layer, method="architecture")
    assert rf.method == "architecture"
    assert rf.size == (size, size)  # the well-known figure, from the walk
    x = to_input(photos["chelsea"], bundle.preprocessing, "cpu")
    checked = 0
    for channel in (0, layer.channels // 2):
        g, (y, xx) = _max_unit_gradient(bundle, layer, x, channel)
        support = input_gradient_support(g)
        if support is None:
            continue
        box = rf.box(y, xx)
        assert box[0] <= support[0] and box[1] <= support[1] and box[2] >= support[2] and box[3] >= support[3], (
            f"{model} {name} channel {channel} at {(y, xx)}: gradient {support} outside {box}")
        checked += 1
    assert checked >= 2


def test_gradient_method_matches_the_architecture(units_models):
    bundle, layers = units_models("vgg16")
    layer = layers["features.16"]
    arch = receptive_field(bundle, layer, method="architecture")
    grad = receptive_field(bundle, layer, method="gradient")
    assert grad.method == "gradient"
    assert grad.stride == arch.stride
    gh, gw = layer.grid
    # an interior position: the measured box is the architecture's (random input: every path is live)
    assert grad.box(gh // 2, gw // 2) == arch.box(gh // 2, gw // 2)


def test_auto_falls_back_to_gradient_for_tokens():
    timm = pytest.importorskip("timm")
    from convscope.models import ModelBundle, discover_layers

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64, num_classes=5).eval()
    bundle = ModelBundle(vit, Preprocessing(input_size=(64, 64)), tuple(f"c{i}" for i in range(5)), "vit")
    layers = {la.name: la for la in discover_layers(bundle)}
    rf = receptive_field(bundle, layers["patch_embed.proj"])
    assert rf.method == "architecture" and rf.size == (16, 16)  # a 16x16/16 conv
    rf = receptive_field(bundle, layers["blocks.0.norm1"])
    assert rf.method == "gradient" and "architecture walk stopped" in rf.note
    assert rf.stride == (16.0, 16.0)


@pytest.mark.parametrize("policy", ["stretch", "center_crop"])
def test_to_source_inverts_the_preprocessing(photos, policy):
    """A box of the model input holds, in the source frame, the pixels that were resized into it."""
    frame = photos["astronaut"][:, :200]  # 256 x 200, not square
    prep = Preprocessing(input_size=(64, 64), resize_size=72, policy=policy)
    # mark a 6x6 block of the source; where it lands in the input must map back inside the box
    img = np.zeros_like(frame)
    img[100:106, 60:66] = 255
    x = resize_crop(torch.from_numpy(img).permute(2, 0, 1)[None], prep)[0].sum(0)
    ys, xs = torch.nonzero(x > 0, as_tuple=True)
    box_in = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    src = to_source(box_in, frame.shape[:2], prep)
    assert src[0] <= 60 and src[1] <= 100 and src[2] >= 66 and src[3] >= 106
    # and not much more than the scaled box (antialiasing spreads by about one input pixel)
    scale = frame.shape[1] / (64 if policy == "stretch" else 72)  # source pixels per input pixel
    assert src[2] - src[0] <= (box_in[2] - box_in[0] + 1) * scale + 2
