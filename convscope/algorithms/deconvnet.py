"""Deconvnet (Zeiler & Fergus 2014, "Visualizing and understanding convolutional networks",
https://arxiv.org/abs/1311.2901).

The gradient of the target with respect to the input where every ReLU passes back only the
positive part of the gradient, *whatever its input was*: ``grad_in = relu(grad_out)`` (guided
backprop also masks by ``x > 0``). For ReLU6 the upper clamp stays: ``relu(grad_out) * (x < 6)``,
which is what captum's ``Deconvolution`` gives on ReLU followed by a clamp at 6. The rule is
``deconvnet`` in :mod:`convscope.engine.rules`. Captum's ``Deconvolution`` computes the same.
"""

from __future__ import annotations

import torch

from convscope.algorithms.base import Algorithm, Captured
from convscope.algorithms.registry import register
from convscope.vocabulary import INPUT, Grad, Needs, Target


@register
class Deconvnet(Algorithm):
    name = "deconvnet"
    order = 170
    title = "Deconvnet"
    summary = "input gradient where each ReLU passes back only positive gradients, whatever its input"
    target_role = "selection"
    display = "gradient"

    def needs(self, target: Target, layer: str | None) -> Needs:
        return Needs(grads=(Grad(INPUT, target, "deconvnet"),))

    def compute(self, captured: Captured, target: Target, layer: str | None) -> torch.Tensor:
        return captured.grad(Grad(INPUT, target, "deconvnet"))
