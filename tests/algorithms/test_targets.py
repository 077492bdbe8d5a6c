"""Contrast ("why A rather than B": score A minus score B) and counterfactual (the negated score)
targets, for every registered algorithm, against written-out references on a small seeded CNN.

The reference takes the gradients itself: a copy of the network whose ReLUs are written-out
autograd functions for each rule (standard, guided, deconvnet), the score written out as
``+-(logit_A - logit_B)``, ``torch.autograd.grad`` w.r.t. the conv output and the input. Each
algorithm's ``compute`` then runs on those captures, so a wrong score anywhere in the engine shows.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from helpers.guided import GuidedReLU
from skimage import data
from torch import nn

import convscope.algorithms as algorithms
from convscope.engine import Engine, Target, ViewRequest
from convscope.errors import RequestError
from convscope.models import ModelBundle, Preprocessing
from convscope.models.labels import generic_labels
from convscope.stills.targets import describe_target, target_slug
from convscope.vocabulary import INPUT, Grad

A, B = 1, 3
LAYER = "2"  # the second conv's output


class DeconvReLU(torch.autograd.Function):
    """Reference deconvnet ReLU, written out: backward is ``relu(g)`` whatever the input."""

    @staticmethod
    def forward(ctx, x):
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        return g.clamp(min=0)


class RuleReLU(nn.Module):
    def __init__(self, rule: str) -> None:
        super().__init__()
        self.rule = rule

    def forward(self, x):
        if self.rule == "guided":
            return GuidedReLU.apply(x)
        if self.rule == "deconvnet":
            return DeconvReLU.apply(x)
        return torch.relu(x)


def _net() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
    ).eval()


@pytest.fixture(scope="module")
def tiny():
    module = _net()
    bundle = ModelBundle(module, Preprocessing(input_size=(16, 16)), generic_labels(5), "tiny")
    with Engine(bundle) as engine:
        yield module, engine


class _Ref:
    """Captures computed by the reference network for one input and one written-out score."""

    def __init__(self, module, x, score_of) -> None:
        self.input = x
        self.grads = {}
        for rule in ("standard", "guided", "deconvnet"):
            net = copy.deepcopy(module)
            for i, m in enumerate(net):
                if isinstance(m, nn.ReLU):
                    net[i] = RuleReLU(rule)
            xin = x.clone().requires_grad_()
            act = net[: int(LAYER) + 1](xin)
            logits = net[int(LAYER) + 1 :](act)
            self.acts = act.detach()
            g_act, g_in = torch.autograd.grad(score_of(logits, act)[0], [act, xin])
            self.grads[(LAYER, rule)] = g_act
            self.grads[(INPUT, rule)] = g_in

    def activation(self, layer):
        return self.acts

    def grad(self, need: Grad):
        return self.grads[(need.wrt, need.rule)]


def _has_rows(name: str) -> bool:
    return bool(algorithms.get(name).needs(Target("class", 0), LAYER).rows)


CASES = {
    "contrast": (Target("class", A, versus=B), lambda lg, act: lg[:, A] - lg[:, B]),
    "counterfactual": (Target("class", A, negate=True), lambda lg, act: -lg[:, A]),
    "both": (Target("class", A, versus=B, negate=True), lambda lg, act: lg[:, B] - lg[:, A]),
    "channel_vs_class": (
        Target("channel", 2, LAYER, versus=B),
        lambda lg, act: act[:, 2].flatten(1).amax(dim=1) - lg[:, B],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_algorithm_explains_contrast_and_counterfactual_scores(tiny, case):
    module, engine = tiny
    target, score_of = CASES[case]
    # the batched-row methods are checked in test_rows.py (their rows' scores use the same targets)
    names = tuple(n for n in algorithms.names() if not _has_rows(n))
    req = ViewRequest(algorithms=names, cam_layer=LAYER, cam_target=target, selection_target=target, keep_raw=True)
    res = engine.run(data.astronaut(), req)
    ref = _Ref(module, torch.from_numpy(res.input_tensor.copy()), score_of)
    for name in names:
        algo = algorithms.get(name)
        expected = algo.compute(ref, target, LAYER if algo.uses_layer else None)[0].numpy()
        np.testing.assert_allclose(res.maps[name].raw, expected, rtol=1e-4, atol=1e-6, err_msg=name)
        assert res.maps[name].target == target
    # the references differ from the plain class's maps (the comparison can fail)
    plain = _Ref(module, ref.input, lambda lg, act: lg[:, A])
    assert not torch.allclose(plain.grad(Grad(INPUT, target, "standard")), ref.grad(Grad(INPUT, target, "standard")))


def test_contrast_gradient_is_the_difference_of_gradients(tiny):
    """grad(A - B) = grad A - grad B, and the counterfactual's gradient is -grad A (saliency's raw
    map is the input gradient); Grad-CAM's counterfactual is ReLU(sum_k -alpha_k A_k), Selvaraju et
    al.'s formula, which is not the negated Grad-CAM."""
    _, engine = tiny
    img = data.coffee()

    def raw(target, algo="saliency"):
        req = ViewRequest(algorithms=(algo,), cam_layer=LAYER, cam_target=target, selection_target=target, keep_raw=True)
        return engine.run(img, req).maps[algo].raw

    np.testing.assert_allclose(
        raw(Target("class", A, versus=B)), raw(Target("class", A)) - raw(Target("class", B)), rtol=1e-4, atol=1e-7
    )
    np.testing.assert_allclose(raw(Target("class", A, negate=True)), -raw(Target("class", A)), rtol=1e-5, atol=1e-8)
    req = ViewRequest(algorithms=("gradcam",), cam_layer=LAYER, cam_target=Target("class", A), keep_raw=True)
    res = engine.run(img, req)
    module = engine.module
    x = torch.from_numpy(res.input_tensor.copy())
    act = module[: int(LAYER) + 1](x).detach().requires_grad_()
    (g,) = torch.autograd.grad(module[int(LAYER) + 1 :](act)[0, A], [act])
    counter = torch.relu((-g.mean(dim=(2, 3), keepdim=True) * act).sum(dim=1))[0].detach().numpy()
    assert counter.max() > 0
    np.testing.assert_allclose(raw(Target("class", A, negate=True), "gradcam"), counter, rtol=1e-4, atol=1e-7)


def test_contrast_against_the_top1_and_out_of_range(tiny):
    _, engine = tiny
    res = engine.run(data.coffee(), ViewRequest(algorithms=("gradcam",), cam_layer=LAYER,
                                                cam_target=Target("class", None, versus=B)))
    top1 = res.predictions[0].index
    assert res.maps["gradcam"].target == Target("class", top1, versus=B)
    assert res.maps["gradcam"].target.as_dict() == {"class": top1, "versus": B}
    assert Target("class", 2, negate=True).as_dict() == {"class": 2, "counterfactual": True}
    with pytest.raises(RequestError, match="versus class 9 is out of range"):
        engine.resolve(ViewRequest(cam_target=Target("class", 1, versus=9)))


def test_names_and_captions():
    labels = ("a", "b", "c", "d")
    assert target_slug(Target("class", 1, versus=3)) == "class1_vs3"
    assert target_slug(Target("class", 1, negate=True)) == "class1_counterfactual"
    assert describe_target(Target("class", 1, versus=3), labels) == "class 1 b vs class 3 d"
    assert describe_target(Target("class", 1, negate=True), labels) == "against class 1 b"
