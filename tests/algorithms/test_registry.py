"""The registry is the one list of algorithms; a new one needs no change to the engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data
from torch import nn

import convscope.algorithms as algorithms
from convscope.algorithms import Algorithm
from convscope.engine import Engine, Target, ViewRequest
from convscope.errors import RequestError
from convscope.models import ModelBundle, Preprocessing
from convscope.models.labels import generic_labels
from convscope.vocabulary import INPUT, Grad, Needs

BUILTIN = ("gradcam", "guided_backprop", "guided_gradcam", "saliency", "gradcam_pp")


def test_builtin_algorithms_are_registered_with_metadata():
    assert set(BUILTIN) <= set(algorithms.names())
    for algo in algorithms.all():
        assert algo.title and algo.summary and "\n" not in algo.summary
        assert algo.target_role in ("cam", "selection")
        assert algo.display in ("heatmap", "gradient", "magnitude")
        assert algorithms.get(algo.name) is algo


def test_duplicate_names_are_refused():
    with pytest.raises(ValueError, match="already registered"):

        @algorithms.register
        class Again(Algorithm):
            name = "gradcam"
            title = summary = "x"
            target_role = "cam"
            display = "heatmap"

            def needs(self, target, layer):
                return Needs()

            def compute(self, captured, target, layer):
                return torch.zeros(1)

    assert type(algorithms.get("gradcam")).__name__ == "GradCAM"


def test_unknown_name_is_a_one_line_request_error():
    with pytest.raises(RequestError, match=r"unknown algorithm 'gradcm'.*did you mean: gradcam") as err:
        algorithms.get("gradcm")
    assert "\n" not in str(err.value)


@pytest.fixture()
def input_x_gradient():
    """A new plugin defined here, without touching the engine: input times its plain gradient."""

    @algorithms.register
    class InputXGradient(Algorithm):
        name = "test_input_x_gradient"
        title = "Input x gradient"
        summary = "the input times the plain gradient of the selection"
        target_role = "selection"
        display = "gradient"

        def needs(self, target: Target, layer: str | None) -> Needs:
            return Needs(grads=(Grad(INPUT, target, "standard"),))

        def compute(self, captured, target, layer):
            return captured.input * captured.grad(Grad(INPUT, target, "standard"))

    yield InputXGradient.name
    algorithms.unregister(InputXGradient.name)


def test_a_new_algorithm_is_computed_by_the_engine(input_x_gradient):
    torch.manual_seed(1)
    module = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    ).eval()
    bundle = ModelBundle(module, Preprocessing(input_size=(24, 24)), generic_labels(3), "tiny")
    req = ViewRequest(algorithms=(input_x_gradient, "saliency"), selection_target=Target("class", 1), keep_raw=True)
    with Engine(bundle) as engine:
        assert len(engine.plan(req).passes) == 1  # shares saliency's standard input gradient
        res = engine.run(data.astronaut(), req)
    x = torch.from_numpy(res.input_tensor.copy()).requires_grad_()
    (g,) = torch.autograd.grad(module(x)[0, 1], [x])
    np.testing.assert_allclose(
        res.maps[input_x_gradient].raw, (x * g)[0].detach().numpy(), rtol=1e-5, atol=1e-8
    )
    assert res.maps[input_x_gradient].image.shape == (24, 24, 3)
