"""The engine's folded, channels_last copy: same numbers as the user's model, which stays untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from engine_helpers import seeded, tiny_bundle
from torch import nn

from convscope.engine import Engine, Target, ViewRequest
from convscope.engine.engine import _logits
from convscope.engine.fastmodel import prepare
from convscope.models import load_model
from convscope.models.preprocess import to_input

VIEWS = ViewRequest(
    algorithms=("gradcam", "guided_backprop", "guided_gradcam", "saliency"),
    selection_target=Target("channel", 5),
    keep_raw=True,
)


@pytest.fixture(scope="module")
def lite0():
    return load_model("efficientnet_lite0")


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _trained_looking(module: nn.Module, seed: int = 1) -> nn.Module:
    """Give every BatchNorm statistics far from identity, as a trained network has."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.2)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.2)
    return module.eval()


class SharedConvOutput(nn.Module):
    """conv1's output feeds its BatchNorm *and* a skip connection: folding it would be wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 6)

    def forward(self, x):
        y = self.conv1(x)
        x = torch.relu(self.bn1(y)) + y
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean(dim=(2, 3)))


def test_lite0_copy_folds_every_batchnorm_and_leaves_the_model_alone(lite0, chelsea):
    module = lite0.module
    before = {k: v.clone() for k, v in module.state_dict().items()}
    x = to_input(chelsea, lite0.preprocessing, "cpu")
    fast = prepare(module, x, _logits)
    bns = [n for n, m in module.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(fast.folded) == len(bns) == 49
    assert fast.channels_last and fast.module is not module
    assert fast.note == "49 BatchNorm folded into convs, channels_last"
    with torch.no_grad():
        expected = module(x)
        got = fast.module(fast.input(x))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert got.argmax().item() == 285  # Egyptian cat
    # the user's module: same values, same layout; the copy shares what it does not change
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k]), k
        assert v.is_contiguous(), k
    twin = dict(fast.module.named_modules())
    assert twin["bn1"].running_mean is module.bn1.running_mean
    assert twin["classifier"].weight is module.classifier.weight
    assert twin["conv_stem"].weight is not module.conv_stem.weight
    assert module.bn1.act.inplace and not twin["bn1.act"].inplace  # the copy's ReLU6 is out of place


def test_unfolding_switches_a_pair_back_to_the_models_own_conv_output(lite0, chelsea):
    x = to_input(chelsea, lite0.preprocessing, "cpu")
    fast = prepare(lite0.module, x, _logits)
    seen = {}
    conv = dict(fast.module.named_modules())["blocks.2.1.conv_pwl"]
    handle = conv.register_forward_hook(lambda m, i, o: seen.__setitem__("a", o.clone()))
    ref = {}
    own = lite0.module.blocks[2][1].conv_pwl.register_forward_hook(lambda m, i, o: ref.__setitem__("a", o.clone()))
    try:
        with torch.no_grad():
            lite0.module(x)
            fast.module(fast.input(x))
            folded = seen["a"]
            fast.exact(["blocks.2.1.conv_pwl"])
            fast.module(fast.input(x))
            exact = seen["a"]
            fast.exact([])
    finally:
        handle.remove()
        own.remove()
    torch.testing.assert_close(exact, ref["a"], rtol=1e-4, atol=1e-4)  # upstream layers are folded
    assert (folded - ref["a"]).abs().max() > 0.1  # folded, it is the BatchNorm's output


def test_a_conv_output_used_twice_is_detected_and_the_plain_model_runs(chelsea):
    module = _trained_looking(seeded(SharedConvOutput))
    bundle = tiny_bundle(module)
    with Engine(bundle) as engine:
        assert engine.optimization.startswith("plain module (the folded copy's logits differ")
        assert engine.prepared is module
        got = engine.run(chelsea, VIEWS)
    with Engine(bundle, optimize=False) as plain:
        assert plain.optimization.startswith("plain module")
        expected = plain.run(chelsea, VIEWS)
    for name in VIEWS.algorithms:
        np.testing.assert_array_equal(got.maps[name].raw, expected.maps[name].raw)


def test_optimised_engine_gives_the_same_views_as_the_plain_one(chelsea, coffee):
    bundle = load_model("resnet18", weights="random")
    _trained_looking(bundle.module)
    requests = [
        VIEWS,
        ViewRequest(conv_layer="layer3.1.conv2", keep_raw=True, algorithms=("gradcam", "gradcam_pp")),
        ViewRequest(algorithms=(), keep_raw=True),
    ]
    with Engine(bundle) as fast, Engine(bundle, optimize=False) as plain:
        assert fast.optimization == "20 BatchNorm folded into convs, channels_last"
        for req in requests:
            for frame in (chelsea, coffee):
                a, b = fast.run(frame, req), plain.run(frame, req)
                assert [p.index for p in a.predictions] == [p.index for p in b.predictions]
                np.testing.assert_allclose(
                    [p.probability for p in a.predictions], [p.probability for p in b.predictions], atol=1e-4
                )
                # the captured layer is exact: pre-BatchNorm, as the user's model computes it
                # (up to float32 rounding: upstream layers are folded)
                scale = np.abs(b.activations.raw).max()
                assert np.abs(a.activations.raw - b.activations.raw).max() <= 2e-5 * scale
                for name, m in b.maps.items():
                    assert _pearson(a.maps[name].raw, m.raw) > 0.9999, name


def test_engine_hooks_live_on_the_copy_not_on_the_users_model(lite0, chelsea):
    def hooks(module: nn.Module) -> int:
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())

    with Engine(lite0) as engine:
        engine.run(chelsea, VIEWS)
        assert hooks(engine.prepared) > 0
        assert hooks(lite0.module) == 0


def test_a_copy_whose_input_gradient_differs_is_not_used():
    """Equal logits are not enough: timm's LeViT gets equal logits and a wrong input gradient from
    channels_last on the CPU. Here a hook falsifies the copy's gradient the same silent way."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 4)).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    example = torch.randn(1, 3, 16, 16)
    assert prepare(net, example, lambda out: out).module is not net  # a faithful copy is used

    class WrongGradient(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() and x.requires_grad:
                x = x + 0.0
                x.register_hook(lambda g: g.flip(-1))
            return self.net(x)

    wrapped = WrongGradient().eval()
    # the folded copy in the default layout is faithful: that one is used, and says why
    fast = prepare(wrapped, example, lambda out: out)
    assert fast.module is not wrapped and not fast.channels_last
    assert fast.note.startswith("1 BatchNorm folded into convs (channels_last off: its input gradient differs, r = ")
    # without that way out, the plain module runs
    plain = prepare(wrapped, example, lambda out: out, fold=False)
    assert plain.module is wrapped and "input gradient differs: r = " in plain.note
