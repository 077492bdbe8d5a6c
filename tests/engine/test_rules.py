"""The guided rule wherever a ReLU hides, checked against written-out guided Functions."""

from __future__ import annotations

import pytest
import torch
from engine_helpers import seeded, tiny_bundle
from helpers.guided import GuidedReLU, GuidedReLU6
from torch import nn

from convscope.engine import Engine, Target, ViewRequest


def reference_grad(ref: nn.Module, x: torch.Tensor, score) -> torch.Tensor:
    x = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(score(ref, x), [x])
    return g


@pytest.mark.parametrize(
    "target", [Target("class", 2), Target("neuron", 3, "fc1"), Target("channel", 4, "conv3")]
)
def test_guided_rule_covers_modules_reuse_inplace_functional_and_relu6(mixed, chelsea, target):
    bundle, ref = mixed
    req = ViewRequest(algorithms=("guided_backprop", "saliency"), selection_target=target, keep_raw=True)
    with Engine(bundle) as engine:
        res = engine.run(chelsea, req)
    x = torch.from_numpy(res.input_tensor.copy())
    acts = {}
    hooks = [
        getattr(ref, n).register_forward_hook(lambda m, i, o, n=n: acts.__setitem__(n, o))
        for n in ("fc1", "conv3")
    ]

    def score(model, inp):
        out = model(inp)
        if target.kind == "class":
            return out[0, target.index]
        if target.kind == "neuron":
            return acts["fc1"][0, target.index]
        return acts["conv3"][0, target.index].amax()

    expected = reference_grad(ref, x, score)
    for h in hooks:
        h.remove()
    got = torch.from_numpy(res.maps["guided_backprop"].raw)
    assert res.maps["guided_backprop"].rule == "guided"
    assert expected.abs().amax() > 0
    torch.testing.assert_close(got[None], expected, rtol=1e-4, atol=1e-6)
    # the same graph also gave the standard gradient: it must differ from the guided one
    plain = torch.from_numpy(res.maps["saliency"].raw)
    assert res.maps["saliency"].rule == "standard"
    assert not torch.allclose(plain, got, atol=1e-6)


def test_plain_gradient_is_unchanged_by_the_hooks(mixed, chelsea):
    bundle, _ = mixed
    with Engine(bundle) as engine:
        res = engine.run(chelsea, ViewRequest(algorithms=("guided_backprop", "saliency"), keep_raw=True))
    x = torch.from_numpy(res.input_tensor.copy()).requires_grad_()
    cls = res.maps["saliency"].target.index
    (expected,) = torch.autograd.grad(bundle.module(x)[0, cls], [x])
    torch.testing.assert_close(
        torch.from_numpy(res.maps["saliency"].raw)[None], expected, rtol=1e-4, atol=1e-6
    )


class SiLUNet(nn.Module):
    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.act = act
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = self.relu(self.act(self.conv(x)))
        return self.fc(x.mean(dim=(2, 3)))


@pytest.mark.parametrize(
    ("act", "label"), [(nn.SiLU(), "SiLU"), (nn.GELU(), "GELU"), (nn.Hardswish(), "Hardswish")]
)
def test_activations_without_a_guided_rule_are_reported(chelsea, act, label):
    bundle = tiny_bundle(seeded(SiLUNet, act), classes=3)
    with Engine(bundle) as engine:
        res = engine.run(chelsea, ViewRequest(algorithms=("gradcam", "guided_backprop", "guided_gradcam")))
    assert res.maps["guided_backprop"].rule == f"guided ({label}: standard)"
    assert res.maps["guided_gradcam"].rule == f"guided ({label}: standard)"
    assert res.maps["gradcam"].rule == "standard"


def test_reference_function_is_what_it_claims():
    x = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    (g,) = torch.autograd.grad((GuidedReLU.apply(x) * torch.tensor([1.0, -1.0, 3.0])).sum(), [x])
    assert g.tolist() == [0.0, 0.0, 3.0]


class ModuleOnlyNet(nn.Module):
    """ReLUs only as modules: one in-place ReLU used three times, an in-place ReLU6."""

    def __init__(self, reference: bool = False) -> None:
        super().__init__()
        self.reference = reference
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.conv3 = nn.Conv2d(6, 8, 3, stride=2)
        self.relu = nn.ReLU(inplace=True)
        self.relu6 = nn.ReLU6(inplace=True)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        r = GuidedReLU.apply if self.reference else self.relu
        r6 = GuidedReLU6.apply if self.reference else self.relu6
        x = r(self.conv1(x))
        x = r(r(self.conv2(x) * 3.0) + x)
        x = r6(self.conv3(x) * 8.0)
        return self.fc(x.mean(dim=(2, 3)))


def test_module_hooks_and_mode_give_the_reference_guided_gradient(chelsea):
    net = seeded(ModuleOnlyNet)
    ref = ModuleOnlyNet(reference=True)
    ref.load_state_dict(net.state_dict())
    bundle = tiny_bundle(net, classes=5)
    req = ViewRequest(algorithms=("guided_backprop",), selection_target=Target("class", 4), keep_raw=True)
    maps = {}
    for mechanism in ("auto", "mode"):
        with Engine(bundle, rule_mechanism=mechanism) as engine:
            expected_mechanism = "module hooks" if mechanism == "auto" else "torch-function mode"
            assert engine._rules.mechanism == expected_mechanism
            res = engine.run(chelsea, req)
            assert engine._rules.hooked == 0  # reset after the frame
        maps[mechanism] = torch.from_numpy(res.maps["guided_backprop"].raw)
    x = torch.from_numpy(res.input_tensor.copy())
    expected = reference_grad(ref.eval(), x, lambda model, inp: model(inp)[0, 4])
    assert expected.abs().amax() > 0
    for got in maps.values():
        torch.testing.assert_close(got[None], expected, rtol=1e-4, atol=1e-6)


def test_functional_relu_switches_to_the_mode(mixed):
    bundle, _ = mixed
    with Engine(bundle) as engine:
        assert engine._rules.mechanism == "torch-function mode"
