"""Layer discovery: execution order, shapes, and addressing by name or index."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convscope.errors import LayerError
from convscope.models import ModelBundle, Preprocessing, discover_layers, load_model, resolve_layer


def test_resnet50_layers():
    layers = discover_layers(load_model("resnet50", weights="random"))
    convs = [la for la in layers if la.kind == "conv"]
    linears = [la for la in layers if la.kind == "linear"]
    assert len(convs) == 53 and len(linears) == 1
    assert convs[0].name == "conv1" and convs[0].shape == (64, 112, 112)
    assert convs[-1].name == "layer4.2.conv3" and convs[-1].shape == (2048, 7, 7)
    assert linears[0].shape == (1000,)
    # the downsample conv of a block runs after its main branch's convs
    names = [la.name for la in convs]
    assert names.index("layer1.0.downsample.0") == names.index("layer1.0.conv3") + 1


def test_vgg16_layers():
    layers = discover_layers(load_model("vgg16", weights="random"))
    assert sum(la.kind == "conv" for la in layers) == 13
    assert [la.shape for la in layers if la.kind == "linear"] == [(4096,), (4096,), (1000,)]
    assert [la.index for la in layers] == list(range(len(layers)))
    # every module that runs once is listed: convs, activations, pools, the containers
    kinds = {la.name: la.kind for la in layers}
    assert kinds["features.1"] == "act" and kinds["features"] == "block" and kinds["classifier.6"] == "linear"
    assert [la.name for la in layers if la.default] == ["features"]


class Reordered(nn.Module):
    """Registers its head before its trunk: execution order differs from registration order."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(8, 2)
        self.trunk = nn.Conv2d(3, 8, 3, stride=2)
        self.unused = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        return self.head(self.trunk(x).relu().mean((2, 3)))


def test_execution_order_not_registration_order():
    bundle = ModelBundle(Reordered().eval(), Preprocessing(input_size=(32, 32)), ("a", "b"), "reordered")
    layers = discover_layers(bundle)
    assert [(la.name, la.kind, la.shape) for la in layers] == [
        ("trunk", "conv", (8, 15, 15)),
        ("head", "linear", (2,)),
    ]
    assert bundle.module.training is False


def test_resolve_by_index_and_name():
    layers = discover_layers(load_model("efficientnet_lite0"))
    last = resolve_layer(layers, -1, "conv")
    assert last.name == "conv_head" and last.shape == (1280, 7, 7)
    assert resolve_layer(layers, "-1", "conv") == last
    assert resolve_layer(layers, 0, "conv").name == "conv_stem"
    assert resolve_layer(layers, "classifier", "linear").shape == (1000,)
    with pytest.raises(LayerError, match=r"conv layer index 99 is out of range: the model has 49"):
        resolve_layer(layers, 99, "conv")
    with pytest.raises(LayerError, match="did you mean: conv_head"):
        resolve_layer(layers, "conv_haed", "conv")


def test_discovery_leaves_no_hooks():
    bundle = load_model("resnet18", weights="random")
    discover_layers(bundle)
    assert all(not m._forward_hooks for m in bundle.module.modules())
    with torch.no_grad():
        assert bundle.module(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)


def test_names_win_over_index_strings():
    seq = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3), nn.Flatten(), nn.LazyLinear(2))
    seq(torch.zeros(1, 3, 16, 16))
    layers = discover_layers(ModelBundle(seq.eval(), Preprocessing(input_size=(16, 16)), ("a", "b"), "seq"))
    assert resolve_layer(layers, "2", "conv").name == "2"  # the module named "2", not conv index 2
    assert resolve_layer(layers, 1, "conv").name == "2"  # an int is always an index
    assert resolve_layer(layers, "-1", "conv").name == "2"


def test_grid_default_is_a_legible_middle_layer_and_cam_stays_on_the_head():
    """Issue 14, item 6: the activation grid starts on the last block/act/norm output with at most
    256 channels on at least 14x14 (written out here from the layer list), Grad-CAM on the head."""
    from convscope import algorithms
    from convscope.models import load_model
    from convscope.models.layers import discover_layers, grid_layer
    from convscope.server.protocol import ModelSpace, ViewState

    lite0 = discover_layers(load_model("efficientnet_lite0"))
    head = next(la for la in lite0 if la.default)
    expected = [la.name for la in lite0 if la.index <= head.index and la.kind in ("block", "act", "norm")
                and la.shape and len(la.shape) == 3 and la.shape[0] <= 256 and min(la.shape[1:]) >= 14]
    assert grid_layer(lite0) == expected[-1] == "blocks.4"
    space = ModelSpace.from_layers(lite0, 1000, algorithms.names())
    state = ViewState.initial(space)
    assert (state.conv_layer, state.cam_layer) == ("blocks.4", "bn2")
