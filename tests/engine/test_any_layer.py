"""Any module is a layer: blocks, norms, token layers, linear layers on tokens, TorchScript.

References are written out here: hooks on the plain module and ``torch.autograd.grad``, never
the engine's own code paths.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from engine_helpers import tiny_bundle
from torch import nn

from convscope.engine import Engine, Target, ViewRequest
from convscope.errors import LayerError, RequestError
from convscope.models import load_model
from convscope.models.layers import discover_layers
from convscope.models.preprocess import to_input


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.fixture(scope="module")
def vit():
    return load_model("timm:vit_tiny_patch16_224", weights="random")


def test_default_layer_is_the_map_that_feeds_the_head():
    # ResNet: the last stage (not its last conv, before BatchNorm and the residual sum)
    resnet = discover_layers(load_model("resnet18", weights="random"))
    assert [la.name for la in resnet if la.default] == ["layer4"]
    # EfficientNet-Lite0: after the head conv's norm and ReLU6 (timm's BatchNormAct2d), not conv_head
    lite0 = discover_layers(load_model("efficientnet_lite0"))
    assert [la.name for la in lite0 if la.default] == ["bn2"]
    # VGG: the features, not the adaptive pool that repeats them
    vgg = discover_layers(load_model("vgg11_bn", weights="random"))
    assert [la.name for la in vgg if la.default] == ["features"]


def test_vit_default_layer_has_signal_and_its_gradcam_matches_a_written_out_reference(vit, chelsea):
    layers = {la.name: la for la in discover_layers(vit)}
    default = next(la for la in layers.values() if la.default)
    # the last block's output reaches the head only through the class token: zero gradient on the
    # patch grid. norm1 of the last block feeds the class token's attention.
    assert default.name == "blocks.11.norm1"
    assert default.layout == "tokens" and default.grid == (14, 14) and default.prefix == 1
    # reference: pytorch-grad-cam's ViT recipe, written out (drop the class token, reshape 14x14);
    # random weights leave many classes with an all-zero map: explain the first with some signal
    module = vit.module
    store = {}
    handle = dict(module.named_modules())["blocks.11.norm1"].register_forward_hook(
        lambda m, i, o: store.setdefault("a", o)
    )
    x = to_input(chelsea, vit.preprocessing, "cpu").requires_grad_()
    with torch.enable_grad():
        logits = module(x)
        for cls in logits[0].argsort(descending=True).tolist():
            (g,) = torch.autograd.grad(logits[0, cls], store["a"], retain_graph=True)
            a = store["a"][0, 1:].reshape(14, 14, -1).permute(2, 0, 1).detach()
            gm = g[0, 1:].reshape(14, 14, -1).permute(2, 0, 1)
            expected = (gm.mean(dim=(1, 2))[:, None, None] * a).sum(0).clamp(min=0).numpy()
            if expected.max() > 0:
                break
    handle.remove()
    req = ViewRequest(algorithms=("gradcam",), keep_raw=True, cam_target=Target("class", cls),
                      panels=("input", "predictions", "activations"))
    with Engine(vit) as engine:
        res = engine.run(chelsea, req)
    assert res.maps["gradcam"].layer == "blocks.11.norm1"
    assert res.activations is not None and res.activations.channels == 192
    raw = res.maps["gradcam"].raw
    assert raw.shape == (14, 14) and expected.max() > 0
    assert _pearson(raw, expected) > 0.999


def test_a_neuron_of_a_linear_layer_on_tokens(vit, chelsea):
    """The neuron index is the last dimension; its score the max over tokens."""
    layer = "blocks.11.mlp.fc2"
    req = ViewRequest(fc_layer=layer, neuron=100, algorithms=("saliency",), keep_raw=True,
                      selection_target=Target("neuron", 100, layer), panels=("input", "predictions", "fc"))
    with Engine(vit) as engine:
        res = engine.run(chelsea, req)
        assert res.fc is not None and res.fc.neurons == 192
        with pytest.raises(RequestError, match=r"0\.\.191"):
            engine.run(chelsea, ViewRequest(fc_layer=layer, neuron=196, algorithms=()))
    module = vit.module
    store = {}
    handle = dict(module.named_modules())[layer].register_forward_hook(lambda m, i, o: store.setdefault("a", o))
    x = to_input(chelsea, vit.preprocessing, "cpu").requires_grad_()
    with torch.enable_grad():
        module(x)
        (g,) = torch.autograd.grad(store["a"][0, :, 100].amax(), x)
    handle.remove()
    assert res.fc.selected_value == pytest.approx(float(store["a"][0, :, 100].amax().detach()), rel=1e-4)
    assert _pearson(res.maps["saliency"].raw, g[0].numpy()) > 0.999


class ChannelsLast(nn.Module):
    """A conv stem, then a norm and a linear on B x h x w x C (as Swin / ConvNeXt blocks do)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.norm = nn.LayerNorm(8)
        self.mix = nn.Linear(8, 12)
        self.head = nn.Linear(12, 6)

    def forward(self, x):
        x = self.stem(x).permute(0, 2, 3, 1)
        x = self.mix(self.norm(x)).relu()
        return self.head(x.mean(dim=(1, 2)))


def test_channels_last_layers_give_maps_equal_to_the_permuted_reference(chelsea):
    torch.manual_seed(0)
    bundle = tiny_bundle(ChannelsLast(), size=64)
    layers = {la.name: la for la in discover_layers(bundle)}
    assert layers["norm"].layout == "channels_last" and layers["norm"].grid == (16, 16)
    assert layers["mix"].kind == "linear" and layers["mix"].channels == 12
    req = ViewRequest(cam_layer="mix", conv_layer="norm", channel=3, algorithms=("gradcam",), keep_raw=True)
    with Engine(bundle) as engine:
        res = engine.run(chelsea, req)
    store = {}
    hooks = [dict(bundle.module.named_modules())[n].register_forward_hook(
        lambda m, i, o, n=n: store.setdefault(n, o)) for n in ("norm", "mix")]
    x = to_input(chelsea, bundle.preprocessing, "cpu").requires_grad_()
    with torch.enable_grad():
        logits = bundle.module(x)
        (g,) = torch.autograd.grad(logits[0, int(logits.argmax())], store["mix"])
    for h in hooks:
        h.remove()
    a = store["mix"][0].permute(2, 0, 1).detach()
    expected = (g[0].permute(2, 0, 1).mean(dim=(1, 2))[:, None, None] * a).sum(0).clamp(min=0)
    assert _pearson(res.maps["gradcam"].raw, expected.numpy()) > 0.999
    # the activation grid shows the norm's channels as maps: 8 tiles, ranges from the permuted output
    norm = store["norm"][0].permute(2, 0, 1).detach()
    np.testing.assert_allclose(res.activations.ranges[:, 1], norm.amax(dim=(1, 2)).numpy(), rtol=1e-5, atol=1e-6)
    assert res.activations.channels == 8


def test_layers_that_cannot_be_maps_or_run_twice_are_refused_with_one_line():
    bundle = load_model("resnet18", weights="random")
    with Engine(bundle) as engine:
        with pytest.raises(LayerError, match="runs 2 times"):
            engine.resolve(ViewRequest(cam_layer="layer4.0.relu"))
        with pytest.raises(LayerError, match="not a feature map"):
            engine.resolve(ViewRequest(cam_layer="fc"))
        # --convindex keeps counting conv layers only
        assert engine.resolve(ViewRequest(cam_layer="-1")).cam_layer == "layer4.1.conv2"


def test_top_k_comes_from_the_logits_with_ties_broken_by_index(chelsea):
    """Equal logits: the explained class (the argmax) is the first prediction shown."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 6))
    with torch.no_grad():
        net[4].weight.zero_()
        net[4].bias.copy_(torch.tensor([0.0, 2.0, 1.0, 2.0, 2.0, -1.0]))
    bundle = tiny_bundle(net)
    with Engine(bundle) as engine:
        res = engine.run(chelsea, ViewRequest(top_k=4, algorithms=("gradcam",)))
    assert [p.index for p in res.predictions] == [1, 3, 4, 2]
    assert res.maps["gradcam"].target == Target("class", 1)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_torchscript_runs_input_gradient_algorithms(chelsea):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 6)).eval()
    plain = tiny_bundle(net)
    scripted = tiny_bundle(torch.jit.script(net))
    import dataclasses

    scripted = dataclasses.replace(scripted, scripted=True)
    req = ViewRequest(algorithms=("saliency",), panels=("input", "predictions"), keep_raw=True)
    with Engine(scripted) as engine:
        got = engine.run(chelsea, req)
        with pytest.raises(RequestError, match="TorchScript"):
            engine.run(chelsea, ViewRequest(algorithms=("guided_backprop",), panels=("input",)))
    with Engine(plain) as engine:
        want = engine.run(chelsea, req)
    np.testing.assert_allclose(got.maps["saliency"].raw, want.maps["saliency"].raw, rtol=1e-4, atol=1e-7)


def test_mlp_mixer_zero_head_falls_back_to_the_structural_rule_and_token_mixing_is_a_map(chelsea):
    """timm initialises the Mixer's head to zero: every gradient is zero, so the default layer is the
    last spatial output by structure (the final norm); token-mixing outputs (B x C x N) are maps."""
    bundle = load_model("timm:mixer_s16_224", weights="random")
    layers = {la.name: la for la in discover_layers(bundle)}
    assert [n for n, la in layers.items() if la.default] == ["norm"]
    mixing = layers["blocks.7.mlp_tokens.fc2"]
    assert (mixing.layout, mixing.grid, mixing.channels) == ("map", (14, 14), 512)
    with Engine(bundle) as engine:
        res = engine.run(chelsea, ViewRequest(conv_layer="blocks.7.mlp_tokens.fc2", algorithms=("gradcam",)))
    assert res.activations.channels == 512 and res.maps["gradcam"].empty is not None  # zero head: said so
