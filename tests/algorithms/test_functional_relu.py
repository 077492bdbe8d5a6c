"""DenseNet-121 applies ReLU through ``F.relu`` inside ``forward`` (module hooks cannot see it,
captum misses it): guided backprop against a hand-written reference in which ``F.relu`` itself
is replaced by a written-out guided Function for the reference pass."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from algo_helpers import pearson
from helpers.guided import GuidedReLU

from convscope.engine import Engine, ViewRequest
from convscope.models import load_model


def _guided_relu(x, inplace=False):
    return GuidedReLU.apply(x)


@pytest.fixture(scope="module")
def densenet():
    return load_model("densenet121", weights="random", input_size=128)


@pytest.mark.slow
def test_densenet_functional_relu_matches_hand_reference(densenet, chelsea):
    with Engine(densenet) as engine:
        res = engine.run(chelsea, ViewRequest(algorithms=("guided_backprop", "saliency"), keep_raw=True))
    cls = res.maps["guided_backprop"].target.index
    x = torch.from_numpy(res.input_tensor.copy()).requires_grad_()
    # every nn.ReLU module calls F.relu too, so patching it makes the whole network guided
    with mock.patch.object(F, "relu", _guided_relu):
        (expected,) = torch.autograd.grad(densenet.module(x)[0, cls], [x])
    got = res.maps["guided_backprop"].raw
    assert pearson(expected, got) >= 0.999
    torch.testing.assert_close(torch.from_numpy(got)[None], expected, rtol=1e-3, atol=1e-7)
    assert pearson(res.maps["saliency"].raw, got) < 0.9  # the functional ReLUs really were guided
